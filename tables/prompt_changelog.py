"""A table whose changelog writes go out on their own producer connection, at once.

Why: aiokafka keeps one produce request in flight per broker connection
(``aiokafka/producer/sender.py``, ``Sender._in_flight``), so a changelog write queues behind
every lane record, event and other changelog write the worker produces. Measured on a
two-worker burst (``scripts/crash_runs.py --scenario failover``, a hook timing each ledger
write from ``send_changelog`` to the broker's ack): p50 100-450 ms, p90 up to 670 ms. A send
whose ledger write has not reached the broker when its worker dies is sent again by the
partition's next owner, so that wait was the failover duplicate window. The delivery ledger
therefore uses this table: a second producer with no linger, fed in order by one task.

Writes keep their order per partition (one task hands them to one producer), which matters
because each write replaces a whole bucket of a user's entries (tables/expiring.py).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

import faust
from faust.types import CodecArg, ProducerT, RecordMetadata
from mode import Service

from tables.notify_table import NotifyTable

log = logging.getLogger(__name__)

Pending = tuple[str, bytes | None, bytes | None, int | None]


@dataclass(frozen=True)
class Placed:
    """What Faust's Table.on_key_set/on_key_del read of send_changelog's answer:
    ``.message.partition`` (known up front: the partition of the event being processed)."""

    partition: int

    @property
    def message(self) -> Placed:
        return self


class PromptChangelogTable(NotifyTable):
    _writes: asyncio.Queue[Pending]
    _producer: ProducerT | None = None
    _idle: asyncio.Event
    # The producer's batching wait (``NOTIFY_LEDGER_LINGER_MS``): 0 sends each write at once.
    linger_ms: float = 0.0

    def __init__(self, app: faust.App, *, linger_ms: float = 0.0, **kwargs: Any) -> None:
        self.linger_ms = linger_ms
        super().__init__(app, **kwargs)

    def __post_init__(self) -> None:
        super().__post_init__()
        self._writes = asyncio.Queue()
        self._idle = asyncio.Event()
        self._idle.set()

    async def on_start(self) -> None:
        # The app's transport builds it from the same settings as the app's own producer
        # (servers, credentials, acks), with its own linger: a write waits for no other record.
        producer = self.app.transport.create_producer(beacon=self.beacon)
        producer.linger_ms = round(self.linger_ms)  # aiokafka takes whole milliseconds
        await self.add_runtime_dependency(producer)
        self._producer = producer
        await super().on_start()

    def send_changelog(  # type: ignore[override]  # the table reads only the partition
        self,
        partition: int | None,
        key: Any,
        value: Any,
        key_serializer: CodecArg | None = None,
        value_serializer: CodecArg | None = None,
    ) -> Placed:
        if partition is None:  # only with use_partitioner, which no table here sets
            raise ValueError(f"{self.name}: a changelog write needs its event's partition")
        raw_key, raw_value = self.serialized(key, value, key_serializer, value_serializer)
        self._idle.clear()
        self._writes.put_nowait(
            (self.changelog_topic.get_topic_name(), raw_key, raw_value, partition)
        )
        return Placed(partition)

    @Service.task
    async def _hand_over_writes(self) -> None:
        while not self.should_stop:
            write = await self._writes.get()
            await self._hand_over(write)
            if self._writes.empty():
                self._idle.set()

    async def _hand_over(self, write: Pending) -> None:
        if self._producer is None:  # started in on_start, before any stream runs
            raise RuntimeError(f"{self.name}: a changelog write before the table started")
        topic, key, value, partition = write
        try:
            sent = await self._producer.send(topic, key, value, partition, None, None)
        except Exception:
            # A lost ledger write can only cause a second send after a crash, never a loss.
            log.exception("changelog write to %s[%s] not handed over", topic, partition)
            return
        asyncio.ensure_future(sent).add_done_callback(self._on_sent)

    def _on_sent(self, sent: asyncio.Future[RecordMetadata]) -> None:
        if sent.cancelled() or sent.exception() is not None:
            log.error("changelog write failed: %r", None if sent.cancelled() else sent.exception())
            return
        # What Faust's _on_changelog_sent does outside transactions (this app runs none):
        # RocksDB keeps the offset it has, so a restart recovers only what came after it.
        written = sent.result()
        self.persist_later(written.topic_partition, written.offset)

    async def flush_changelog(self) -> None:
        """Every write so far is at the broker (a rebalance and shutdown wait for this)."""
        await self._idle.wait()
        if self._producer is not None:
            await self._producer.flush()

    async def on_stop(self) -> None:
        await asyncio.wait_for(self.flush_changelog(), timeout=10.0)
        await super().on_stop()
