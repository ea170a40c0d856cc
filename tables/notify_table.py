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

Measured: ``python -m bench.table_cost`` (README, Performance, ninth sitting).
"""

from __future__ import annotations

from typing import Any

import faust
from faust.types import TP, FutureMessage, RecordMetadata
from mode import Service

# At most this much changelog per partition is replayed beyond need after a worker is killed.
PERSIST_INTERVAL_SECONDS = 1.0


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
