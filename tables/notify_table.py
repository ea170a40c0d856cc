"""The class every table of this app is built from (``app.py`` sets it as Faust's ``Table``
setting; the ledger's and the global tables' classes derive from it): Faust's Table with two
per-record costs of faust-streaming 0.15.3 taken out.

**One RocksDB read per lookup.** ``table[key]`` and ``table.get(key)`` go through mode's
``FastUserDict.__getitem__``, which asks ``key in self.data`` and then reads ``self.data[key]``:
two key encodings and two RocksDB reads for every lookup, a hit or a miss. Every delivery makes
about a dozen (ledger, erasures, status, devices, contacts, fallbacks, rate window, dedup).
Here it is one read, and a miss is the store's ``KeyError``, as before.

**Persisted offsets written once a second, not once per changelog write.** After each changelog
write's ack, Faust writes that offset into the partition's RocksDB (``_on_changelog_sent``),
so that a restart replays only the changelog written after it: about four extra RocksDB puts
per delivery. Here the newest acked offset of each changelog partition is kept in memory and
written every ``PERSIST_INTERVAL_SECONDS``, before a rebalance closes revoked partitions'
databases, and at stop. A persisted offset that lags only makes a restart replay a little
more of the changelog: the values RocksDB already holds, re-applied in the order they were
written, so the recovered state is the same. (One ahead of the data would lose writes; it
cannot be, because a value is in RocksDB before its changelog write is even sent.)

**Changelog writes handed to the producer directly, through Faust's producer buffer.**
Upstream, each write becomes a ``FutureMessage`` around a ``PendingMessage`` (``send_soon``),
and the buffer's task publishes it through ``Topic.publish_message``: the channel lookups,
``_get_producer``, send sensors and two chained futures and callbacks per write. In the
floor benchmark's profile (README, Performance, tenth sitting) a changelog write cost 1.7
times one of the stages' own records, which ``agents/produce.py`` hands to the producer
directly. Here the write is a ``ChangelogWrite``. It carries the serialized key and value and
the partition, and goes into the same buffer, so everything that relies on that buffer holds:

- the writes keep their order, since one task empties the buffer;
- the hand-off still waits while the buffer is over its limit (streams/changelog_buffer.py);
- ``producer.flush()``, which Faust awaits before it commits an offset, waits for them
  (for those in the buffer when it began: patches/bounded_flush.py).

The write then publishes itself with one ``producer.send``. A write that the producer loses
after its retries is logged and stops the worker's commits (``agents/produce.py`` explains
why), where upstream would only log it from the callback.

Measured: ``python -m bench.table_cost`` (README, Performance, ninth sitting) and
``python -m bench.run floor`` (tenth).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, ClassVar

import faust
from faust.types import TP, CodecArg, FutureMessage, RecordMetadata
from mode import Service

from patches import commit_guard

log = logging.getLogger(__name__)

# At most this much changelog per partition is replayed beyond need after a worker is killed.
PERSIST_INTERVAL_SECONDS = 1.0
# The longest stretch of changelog writes the producer buffer's task publishes without letting
# other tasks run (ChangelogWrite.published): about 16 x 20 µs.
WRITES_BETWEEN_YIELDS = 16


class NotifyTable(faust.Table[Any, Any]):
    _unpersisted: dict[TP, int]  # changelog partition -> newest acked offset not yet in RocksDB

    def __post_init__(self) -> None:
        super().__post_init__()
        self._unpersisted = {}

    def __getitem__(self, key: Any) -> Any:
        self.on_key_get(key)  # what ManagedUserDict.__getitem__ does first (Faust's sensors)
        try:
            return self.data[key]
        except KeyError:
            return self.__missing__(key)  # the table's default, or KeyError

    def send_changelog(  # type: ignore[override]  # the table reads only .message.partition
        self,
        partition: int | None,
        key: Any,
        value: Any,
        key_serializer: CodecArg | None = None,
        value_serializer: CodecArg | None = None,
    ) -> FutureMessage | ChangelogWrite:
        if partition is None or self.app.in_transaction or self.app.conf.producer_threaded:
            # Faust's own path where its semantics differ: a partition left to the partitioner,
            # writes inside a transaction, a buffer that hands writes to a producer thread.
            return super().send_changelog(partition, key, value, key_serializer, value_serializer)
        raw_key, raw_value = self.serialized(key, value, key_serializer, value_serializer)
        topic = self.changelog_topic.get_topic_name()
        write = ChangelogWrite(self, topic, raw_key, raw_value, partition)
        self.app.producer.buffer.put(write)  # type: ignore[arg-type]  # publishes itself, as a FutureMessage
        return write

    def serialized(
        self,
        key: Any,
        value: Any,
        key_serializer: CodecArg | None = None,
        value_serializer: CodecArg | None = None,
    ) -> tuple[bytes | None, bytes | None]:
        """A changelog write's key and value as the changelog topic carries them (what
        upstream's ``send_soon`` serializes): the table's serializers unless given others."""
        topic = self.changelog_topic
        raw_key, _ = topic.prepare_key(key, key_serializer or self.key_serializer)
        raw_value, _ = topic.prepare_value(value, value_serializer or self.value_serializer)
        return raw_key, raw_value

    def on_changelog_written(self, sent: asyncio.Future[RecordMetadata], topic: str) -> None:
        """A ``ChangelogWrite``'s ack: its offset, as for upstream's writes; or its loss."""
        if sent.cancelled() or sent.exception() is not None:
            error = "cancelled" if sent.cancelled() else repr(sent.exception())
            log.error("a changelog write to %s was lost by the producer: %s", topic, error)
            # A commit past the event that made it would leave the changelog without the write
            # that RocksDB holds: a standby or a rebuilt store would miss it. Restart instead.
            commit_guard.stop_committing(f"a changelog write to {topic} was lost: {error}")
            return
        written = sent.result()
        self.persist_later(written.topic_partition, written.offset)

    def _on_changelog_sent(self, fut: FutureMessage) -> None:
        if self.app.in_transaction:  # exactly-once: upstream writes it at the commit already
            super()._on_changelog_sent(fut)
            return
        written: RecordMetadata = fut.result()
        self.persist_later(written.topic_partition, written.offset)

    def persist_later(self, tp: TP, offset: int) -> None:
        """Records that the changelog holds ``tp`` up to ``offset`` (acks may come out of order
        across producers: the newest stands)."""
        if offset > self._unpersisted.get(tp, -1):
            self._unpersisted[tp] = offset

    def persist_offsets(self) -> None:
        """Writes every offset recorded since the last call into its partition's RocksDB."""
        pending, self._unpersisted = self._unpersisted, {}
        for tp, offset in pending.items():
            self.data.set_persisted_offset(tp, offset)

    @Service.timer(PERSIST_INTERVAL_SECONDS)
    async def _persist_offsets_periodically(self) -> None:
        self.persist_offsets()

    async def on_rebalance(
        self,
        assigned: set[TP],
        revoked: set[TP],
        newly_assigned: set[TP],
        generation_id: int = 0,
    ) -> None:
        # Before the store closes the revoked partitions' databases: their offsets go with them.
        self.persist_offsets()
        await super().on_rebalance(assigned, revoked, newly_assigned, generation_id)

    async def on_stop(self) -> None:
        self.persist_offsets()
        await super().on_stop()


class ChangelogWrite:
    """One changelog write in Faust's producer buffer. The buffer's task calls
    ``fut.message.channel.publish_message(fut, wait=False)`` on what it holds, and
    ``Table.on_key_set`` reads ``fut.message.partition`` of what ``send_changelog`` returns: here
    the write itself is the future, the message and the channel."""

    __slots__ = ("key", "partition", "table", "topic", "value")

    # Writes published since the buffer's task last let the loop run. Nothing in a write's
    # publish suspends, and the buffer's queue hands over what it holds without suspending,
    # so a backlog of writes (up to NOTIFY_CHANGELOG_BUFFER_MESSAGES) would be drained in one
    # stretch that holds every other task, an urgent record's too. Upstream's path suspends
    # several times per write (``Topic._get_producer``), so it never did that.
    published: ClassVar[int] = 0

    def __init__(
        self, table: NotifyTable, topic: str, key: bytes | None, value: bytes | None, partition: int
    ) -> None:
        self.table = table
        self.topic = topic
        self.key = key
        self.value = value
        self.partition = partition

    @property
    def message(self) -> ChangelogWrite:
        return self

    @property
    def channel(self) -> ChangelogWrite:
        return self

    async def publish_message(self, fut: object, wait: bool = False) -> None:
        """Called by the producer buffer's task, once, in buffer order."""
        producer = self.table.app.producer
        try:
            sent = await producer.send(self.topic, self.key, self.value, self.partition, None, None)
        except Exception:
            # Refused outright (a value over the producer's request size): upstream raises in
            # the same task, which stops the buffer. Here no commit passes it either.
            log.exception("a changelog write to %s was refused by the producer", self.topic)
            commit_guard.stop_committing(f"a changelog write to {self.topic} was refused")
            return
        topic, table = self.topic, self.table
        asyncio.ensure_future(sent).add_done_callback(
            lambda done: table.on_changelog_written(done, topic)
        )
        ChangelogWrite.published += 1
        if ChangelogWrite.published % WRITES_BETWEEN_YIELDS == 0:
            await asyncio.sleep(0)
