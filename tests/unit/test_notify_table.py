"""The app's table class (tables/notify_table.py) on a real RocksDB store: one read per lookup,
and persisted offsets written in batches, never ahead of the changelog's acks. Upstream's
behaviour beside it, so that the class goes once faust-streaming stops reading twice."""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import faust
import pytest
from faust.streams import _current_event
from faust.types import TP, RecordMetadata, TableT

from tables.notify_table import NotifyTable

CHANGELOG = TP("notify-test-status-changelog", 3)


class _Message:
    partition = CHANGELOG.partition


class _Event:
    """What the RocksDB store reads of the event being processed: its partition."""

    message = _Message()


def _app(tmp_path: Path, table_class: type[faust.Table[Any, Any]]) -> faust.App:
    return faust.App(
        "notify-test",
        store=f"rocksdb://{tmp_path}/",
        datadir=str(tmp_path),
        Table=table_class,
        autodiscover=False,
    )


@pytest.fixture
def processing_an_event() -> Iterator[None]:
    """Inside an agent: the store reads the event's partition only."""
    event = _Event()
    token = _current_event.set(weakref.ref(event))  # type: ignore[arg-type]
    yield
    _current_event.reset(token)


def _counting_reads(table: TableT[Any, Any]) -> list[str]:
    """Every RocksDB read the store makes for a key, by the method that made it."""
    reads: list[str] = []
    store: Any = table.data
    for name in ("_get", "_contains"):
        original = getattr(store, name)

        def counted(key: bytes, original: Any = original, name: str = name) -> Any:
            reads.append(name)
            return original(key)

        setattr(store, name, counted)
    return reads


def _table(app: faust.App, default: Any = None) -> TableT[Any, Any]:
    table: TableT[Any, Any] = app.Table("status", default=default, partitions=8)
    table.data[b"known"] = {"status": "sent"}  # the store itself: no changelog write
    return table


@pytest.mark.usefixtures("processing_an_event")
def test_a_lookup_reads_rocksdb_once_hit_or_miss(tmp_path: Path) -> None:
    table = _table(_app(tmp_path, NotifyTable))
    assert isinstance(table, NotifyTable)
    reads = _counting_reads(table)

    assert table[b"known"] == {"status": "sent"}
    assert reads == ["_get"]
    reads.clear()
    assert table.get(b"missing") is None
    assert reads == ["_get"]
    with pytest.raises(KeyError):
        table[b"missing"]
    assert b"known" in table and b"missing" not in table


@pytest.mark.usefixtures("processing_an_event")
def test_a_missing_key_still_gets_the_tables_default(tmp_path: Path) -> None:
    table = _table(_app(tmp_path, NotifyTable), default=dict)

    assert table[b"missing"] == {}
    assert table.get(b"known") == {"status": "sent"}


@pytest.mark.usefixtures("processing_an_event")
def test_upstream_reads_rocksdb_twice_for_a_hit(tmp_path: Path) -> None:
    """The cost NotifyTable exists for: when this fails, drop its ``__getitem__``."""
    table = _table(_app(tmp_path, faust.Table))
    reads = _counting_reads(table)

    assert table.get(b"known") == {"status": "sent"}
    assert reads == ["_contains", "_get"]


def _acked(offset: int) -> asyncio.Future[RecordMetadata]:
    sent: asyncio.Future[RecordMetadata] = asyncio.get_running_loop().create_future()
    sent.set_result(RecordMetadata(CHANGELOG.topic, CHANGELOG.partition, CHANGELOG, offset))
    return sent


@pytest.mark.usefixtures("processing_an_event")
async def test_persisted_offsets_wait_for_the_next_batch_and_keep_the_newest(
    tmp_path: Path,
) -> None:
    table = _table(_app(tmp_path, NotifyTable))
    assert isinstance(table, NotifyTable)
    store: Any = table.data

    for offset in (10, 12, 11):  # acks of two producers may arrive out of order
        table._on_changelog_sent(_acked(offset))  # type: ignore[arg-type]
    assert store.persisted_offset(CHANGELOG) is None  # nothing written per ack

    table.persist_offsets()
    assert store.persisted_offset(CHANGELOG) == 12
    table.persist_offsets()  # nothing new: nothing rewritten, nothing lost
    assert store.persisted_offset(CHANGELOG) == 12


@pytest.mark.usefixtures("processing_an_event")
async def test_a_rebalance_writes_the_offsets_before_the_store_closes_revoked_partitions(
    tmp_path: Path,
) -> None:
    table = _table(_app(tmp_path, NotifyTable))
    assert isinstance(table, NotifyTable)
    store: Any = table.data
    closed_with: list[int | None] = []
    original = store.revoke_partitions

    def revoke(tbl: Any, tps: set[TP]) -> None:
        closed_with.append(store.persisted_offset(CHANGELOG))
        original(tbl, tps)

    store.revoke_partitions = revoke
    table._on_changelog_sent(_acked(40))  # type: ignore[arg-type]

    await table.on_rebalance(set(), {CHANGELOG}, set())

    assert closed_with == [40]


@pytest.mark.usefixtures("processing_an_event")
async def test_upstream_writes_an_offset_per_changelog_ack(tmp_path: Path) -> None:
    """The cost NotifyTable defers: one RocksDB put per changelog write."""
    table = _table(_app(tmp_path, faust.Table))
    assert isinstance(table, faust.Table)
    store: Any = table.data

    table._on_changelog_sent(_acked(7))  # type: ignore[arg-type]

    assert store.persisted_offset(CHANGELOG) == 7
