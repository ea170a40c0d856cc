"""Embedded-broker only: correct changelog high watermarks for table recovery on Tansu.

Tansu 0.6 answers ListOffsets(LATEST) with (base offset of the newest record batch) + 1, so
``end_offsets()`` is short by the size of the last batch minus one. Faust builds its recovery
target from ``end_offsets()``; on Tansu a restarted worker either crashes with
``ConsistencyError`` or silently restores a partial table (BROKER.md). The high watermark in a
Fetch response is right, so for each changelog partition we fetch once from the reported
position and read the high watermark the broker sends back.

Installed only when ``NOTIFY_BROKER_FLAVOR=tansu``: against a real Kafka nothing here runs.
Pinned to the faust-streaming version whose internals it replaces; it refuses to install on any
other version so an upgrade fails loudly instead of recovering tables wrongly.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import faust
from aiokafka import AIOKafkaConsumer
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP

from patches.pin import wrap_method

WORKS_AROUND = "Tansu 0.6: ListOffsets(LATEST) answers the newest batch's base offset + 1"

EXPECTED_SOURCE = {"AIOKafkaConsumerThread._highwaters": "a7f4f97d"}

log = logging.getLogger(__name__)

FETCH_DEADLINE_SECONDS = 10.0


async def fetch_highwaters(bootstrap: str, reported: Mapping[TP, int]) -> dict[TP, int]:
    """True high watermarks, reading one Fetch response per non-empty partition."""
    result = dict(reported)
    pending = {tp for tp, offset in reported.items() if offset and offset > 0}
    if not pending:
        return result
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        fetch_max_wait_ms=100,
        max_partition_fetch_bytes=1024,
    )
    await consumer.start()
    try:
        consumer.assign(list(pending))
        for tp in pending:
            # reported - 1 is the newest batch's base offset: a real record, at or below the end.
            consumer.seek(tp, reported[tp] - 1)
        deadline = time.monotonic() + FETCH_DEADLINE_SECONDS
        while pending and time.monotonic() < deadline:
            await consumer.getmany(*pending, timeout_ms=200)
            for tp in list(pending):
                highwater = consumer.highwater(tp)
                if highwater is not None:
                    result[tp] = max(highwater, reported[tp])
                    pending.discard(tp)
        if pending:
            raise RuntimeError(f"no Fetch high watermark for {sorted(pending)} in time")
    finally:
        await consumer.stop()
    return result


def _bootstrap(app: faust.App) -> str:
    return ",".join(f"{url.host}:{url.port or 9092}" for url in app.conf.broker)


def install() -> None:
    """Wraps the aiokafka driver's high-watermark lookup. Idempotent; raises UpstreamChanged
    on upstream code this was not written against."""

    def wrap(original: Callable[..., Any]) -> Callable[..., Any]:
        async def _highwaters(self: Any, partitions: Iterable[TP]) -> Mapping[TP, int]:
            reported: Mapping[TP, int] = await original(self, partitions)
            if self.consumer.in_transaction:
                return reported
            fixed = await fetch_highwaters(_bootstrap(self.app), reported)
            changed = {tp: (reported[tp], fixed[tp]) for tp in fixed if fixed[tp] != reported[tp]}
            if changed:
                log.info("tansu: corrected ListOffsets high watermarks %s", changed)
            return fixed

        return _highwaters

    wrap_method(
        faust_aiokafka.AIOKafkaConsumerThread,
        "_highwaters",
        "__tansu_fix__",
        "patches/tansu/recovery_highwaters.py",
        EXPECTED_SOURCE["AIOKafkaConsumerThread._highwaters"],
        wrap,
    )
