"""The app's table class hands its changelog writes to the producer itself
(tables/notify_table.py, ``ChangelogWrite``): on a real broker, the changelog it writes must be
the one upstream's ``faust.Table`` writes (the same keys, values and partitions, in the same
order), be drained by the producer's flush (what Faust awaits before it commits), keep the
acked offsets for RocksDB, and make the hand-off wait once the buffer is over its limit."""

from __future__ import annotations

import asyncio
import itertools
import json
import weakref
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import faust
import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from faust.streams import _current_event
from faust.types import TP, TableT

from patches import bounded_flush
from tables.notify_table import WRITES_BETWEEN_YIELDS, ChangelogWrite, NotifyTable

pytestmark = pytest.mark.integration

PARTITIONS = 4
# Writes spread over the partitions, some keys rewritten and one deleted: the order matters.
WRITES: list[tuple[int, str, Any]] = [
    (i % PARTITIONS, f"n-{i % 37}", {"status": "sent", "attempt": i}) for i in range(300)
]
DELETED = (WRITES[5][0], WRITES[5][1])
# Every write, and a deletion after each write of DELETED.
RECORDS = len(WRITES) + sum((p, k) == DELETED for p, k, _ in WRITES)


class _Message:
    def __init__(self, partition: int) -> None:
        self.partition = partition


class _Event:
    """What a table reads of the event being processed: its partition."""

    def __init__(self, partition: int) -> None:
        self.message = _Message(partition)


async def _started_app(
    broker: str, tmp_path: Path, table_class: type[faust.Table[Any, Any]], app_id: str
) -> tuple[faust.App, TableT[Any, Any]]:
    app = faust.App(
        app_id,
        broker=f"kafka://{broker}",
        store=f"rocksdb://{tmp_path}/{app_id}/",
        datadir=str(tmp_path / app_id),
        Table=table_class,
        autodiscover=False,
        producer_linger=0.02,
    )
    table: TableT[Any, Any] = app.Table("status", partitions=PARTITIONS)
    admin = AIOKafkaAdminClient(bootstrap_servers=broker)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(table.changelog_topic.get_topic_name(), PARTITIONS, 1)])
    finally:
        await admin.close()
    await app.producer.start()
    return app, table


def _write(
    table: TableT[Any, Any], partition: int, key: str, value: Any, **serializers: Any
) -> Any:
    """One write as an agent makes it: the event being processed decides the partition."""
    token = _current_event.set(weakref.ref(_Event(partition)))  # type: ignore[arg-type]
    try:
        return table.send_changelog(partition, key, value, **serializers)
    finally:
        _current_event.reset(token)


def _write_all(table: TableT[Any, Any]) -> list[Any]:
    """Every write in WRITES, and a deletion after each write of DELETED."""
    returned = []
    for partition, key, value in WRITES:
        returned.append(_write(table, partition, key, value))
        if (partition, key) == DELETED:
            _write(table, partition, key, None, value_serializer="raw")
    return returned


async def _changelog(
    broker: str, topic: str, count: int, idle_ms: int = 0
) -> list[tuple[int, bytes, bytes | None]]:
    """At least ``count`` records; with ``idle_ms``, then on until a fetch that long is empty."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=broker, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    records: list[tuple[int, bytes, bytes | None]] = []
    try:
        async with asyncio.timeout(60):
            while len(records) < count:
                for tp, messages in (await consumer.getmany(timeout_ms=500)).items():
                    records += [(tp.partition, m.key, m.value) for m in messages]
            while idle_ms and (fetched := await consumer.getmany(timeout_ms=idle_ms)):
                for tp, messages in fetched.items():
                    records += [(tp.partition, m.key, m.value) for m in messages]
    finally:
        await consumer.stop()
    return records


def _by_partition(records: list[tuple[int, bytes, bytes | None]]) -> dict[int, list[Any]]:
    ordered: dict[int, list[Any]] = {}
    for partition, key, value in records:
        ordered.setdefault(partition, []).append((key, value))
    return ordered


@pytest.fixture
async def apps(broker: str, tmp_path: Path) -> AsyncIterator[list[faust.App]]:
    started: list[faust.App] = []
    yield started
    for app in started:
        await app.producer.stop()


async def test_the_changelog_is_upstreams_write_for_write_and_flush_drains_it(
    broker: str, tmp_path: Path, apps: list[faust.App]
) -> None:
    ours_app, ours = await _started_app(broker, tmp_path, NotifyTable, "notify-ours")
    theirs_app, theirs = await _started_app(broker, tmp_path, faust.Table, "notify-theirs")
    apps += [ours_app, theirs_app]
    assert isinstance(ours, NotifyTable)

    returned = _write_all(ours)
    _write_all(theirs)
    # What Table.on_key_set reads of the answer: the partition, known at once.
    assert all(isinstance(w, ChangelogWrite) for w in returned)
    assert [w.message.partition for w in returned] == [p for p, _, _ in WRITES]
    assert ours_app.producer.buffer.size == RECORDS  # nothing sent outside the buffer

    # What Faust awaits before it commits: afterwards every write is at the broker.
    await ours_app.producer.flush()
    await theirs_app.producer.flush()
    assert ours_app.producer.buffer.size == 0
    written = await _changelog(broker, ours.changelog_topic.get_topic_name(), RECORDS)
    upstream = await _changelog(broker, theirs.changelog_topic.get_topic_name(), RECORDS)
    assert len(written) == RECORDS
    assert _by_partition(written) == _by_partition(upstream)
    assert (DELETED[0], b'"' + DELETED[1].encode() + b'"', None) in written

    # The acks leave the newest offset of each partition for RocksDB, as upstream's do.
    newest = {p: len(records) - 1 for p, records in _by_partition(written).items()}
    changelog = ours.changelog_topic.get_topic_name()
    # Each ack's callback was scheduled before the flush's waiter woke: they have all run.
    await asyncio.sleep(0)
    assert ours._unpersisted == {TP(changelog, p): o for p, o in newest.items()}


async def test_the_hand_off_still_waits_for_them_while_the_buffer_is_over_its_limit(
    broker: str, tmp_path: Path, apps: list[faust.App]
) -> None:
    """What Faust's hand-off awaits before each fetched record (streams/changelog_buffer.py):
    it counts these writes, and returns once the buffer's task has sent its limit's worth."""
    app, table = await _started_app(broker, tmp_path, NotifyTable, "notify-ebb")
    apps.append(app)
    buffer = app.producer.buffer
    _write_all(table)  # no await in between: all of them are still in the buffer
    before = buffer.size
    assert before == RECORDS > buffer.max_messages

    await asyncio.wait_for(buffer.wait_until_ebb(), timeout=30)

    assert buffer.size <= before - buffer.max_messages


async def test_the_buffers_task_lets_other_tasks_run_while_it_publishes_a_backlog(
    broker: str, tmp_path: Path, apps: list[faust.App]
) -> None:
    """Nothing in a write's publish suspends: without its own yields, the buffer's task would
    publish a whole backlog while every other task (an urgent record's too) waited."""
    app, table = await _started_app(broker, tmp_path, NotifyTable, "notify-yield")
    apps.append(app)
    buffer = app.producer.buffer
    # What the buffer still held each time another task got to run.
    seen: list[int] = []

    async def another_task() -> None:
        while True:
            await asyncio.sleep(0)
            seen.append(buffer.size)

    _write_all(table)
    ticking = asyncio.ensure_future(another_task())
    await app.producer.flush()
    ticking.cancel()

    # It ran between every few writes, not once before and once after the whole backlog.
    while_draining = [size for size in seen if size > 0]
    assert len(while_draining) >= RECORDS // WRITES_BETWEEN_YIELDS - 1
    assert max(a - b for a, b in itertools.pairwise(while_draining)) <= WRITES_BETWEEN_YIELDS


async def test_a_commits_flush_returns_while_writes_go_on_with_every_earlier_one_sent(
    broker: str, tmp_path: Path, apps: list[faust.App]
) -> None:
    """What a commit awaits under load (patches/bounded_flush.py): agents keep writing tables
    while the flush runs; it returns without waiting for them, and every write made before it
    began is at the broker."""
    bounded_flush.install()
    app, table = await _started_app(broker, tmp_path, NotifyTable, "notify-flush-under-load")
    apps.append(app)
    written = 0
    warmed_up = asyncio.Event()

    async def agents_writing() -> None:
        nonlocal written
        while True:
            for _ in range(20):
                _write(table, written % PARTITIONS, f"n-{written}", {"seq": written})
                written += 1
            if written >= 2_000:
                warmed_up.set()
            await asyncio.sleep(0)

    writing = asyncio.ensure_future(agents_writing())
    await asyncio.wait_for(warmed_up.wait(), timeout=30)
    before = written
    await asyncio.wait_for(app.producer.flush(), timeout=30)
    still_writing = not writing.done()
    after = written
    writing.cancel()

    assert still_writing and after > before  # writes went on while it ran
    # Whatever else reached the broker too: read until it has nothing more.
    records = await _changelog(broker, table.changelog_topic.get_topic_name(), before, idle_ms=2000)
    sent = {json.loads(value)["seq"] for _, _, value in records if value is not None}
    assert set(range(before)) <= sent
