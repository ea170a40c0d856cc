"""What a table lookup and a changelog ack cost, Faust's Table against this app's
(``tables/notify_table.py``): ``python -m bench.table_cost`` times, on a real RocksDB store in
a temporary directory holding 10,000 status-sized values, ``table.get`` of a key that is there
and of one that is not, and ``_on_changelog_sent`` (what runs once per changelog write's ack;
the app's class writes the offsets once a second, a cost included here per ack).

CPU microseconds per call, best of three rounds: the figures are the per-record costs a
delivery pays about a dozen times (lookups) and about four times (changelog acks).
"""

from __future__ import annotations

import asyncio
import tempfile
import time
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

import faust
from faust.streams import _current_event
from faust.types import TP, RecordMetadata, TableT

from tables.notify_table import NotifyTable

KEYS = 10_000
CALLS = 50_000
PARTITION = 3
CHANGELOG = TP("bench-status-changelog", PARTITION)
VALUE = {"user_id": "user-00042", "status": "sent", "expected": 1, "deliveries": {"d": {}}}


class _Message:
    partition = PARTITION


class _Event:
    """What the store reads of the event being processed: its partition."""

    message = _Message()


def _table(directory: Path, table_class: type[faust.Table[Any, Any]]) -> TableT[Any, Any]:
    app = faust.App(
        "bench-table-cost",
        store=f"rocksdb://{directory}/",
        datadir=str(directory),
        Table=table_class,
        autodiscover=False,
    )
    table: TableT[Any, Any] = app.Table("status", default=None, partitions=8)
    for i in range(KEYS):
        table.data[f"n-{i}".encode()] = VALUE
    return table


def _micros_per_call(call: Callable[[int], object]) -> float:
    best = float("inf")
    for _ in range(3):
        started = time.process_time()
        for i in range(CALLS):
            call(i)
        best = min(best, time.process_time() - started)
    return best / CALLS * 1e6


def _acks() -> list[asyncio.Future[RecordMetadata]]:
    loop = asyncio.new_event_loop()
    acks = []
    for offset in range(CALLS):
        sent: asyncio.Future[RecordMetadata] = loop.create_future()
        sent.set_result(RecordMetadata(CHANGELOG.topic, PARTITION, CHANGELOG, offset))
        acks.append(sent)
    return acks


def measure(table_class: type[faust.Table[Any, Any]]) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as directory:
        table = _table(Path(directory), table_class)
        acks = _acks()

        def acked(i: int) -> None:
            table._on_changelog_sent(acks[i])  # type: ignore[attr-defined]  # noqa: SLF001
            if isinstance(table, NotifyTable) and i % 300 == 0:
                table.persist_offsets()  # once a second at ~300 acks/s, what the timer does

        return {
            "get, key present": _micros_per_call(lambda i: table.get(f"n-{i % KEYS}".encode())),
            "get, key absent": _micros_per_call(lambda i: table.get(f"x-{i}".encode())),
            "changelog ack": _micros_per_call(acked),
        }


def main() -> None:
    event = _Event()
    _current_event.set(weakref.ref(event))  # type: ignore[arg-type]  # inside an agent
    upstream, notify = measure(faust.Table), measure(NotifyTable)
    print(f"{'CPU µs per call':<20} {'faust.Table':>12} {'NotifyTable':>12}")
    for name, before in upstream.items():
        print(f"{name:<20} {before:>12.2f} {notify[name]:>12.2f}")


if __name__ == "__main__":
    main()
