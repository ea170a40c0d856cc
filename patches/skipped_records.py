"""No record aiokafka fetched is dropped by Faust without being fetched again.

Three ways faust-streaming 0.15.3 moves a partition past records it never handed over, all
measured with the crash runner (``scripts/crash_runs.py --scenario failover``: up to 1,040 of
17,771 deliveries, every one on a partition whose aiokafka position was at its end while
Faust's read offset still stood at the committed offset):

1. ``Consumer.getmany`` drops every record of a fetched batch whose partition left the active
   set while the batch was handed over (paused by a rebalance, by table recovery), after
   aiokafka's position had moved past them.
2. The active set is handed to the consumer thread by reference, and aiokafka's
   ``fetched_records`` reads an empty set as "every partition": once the set empties during a
   fetch (everything paused), records of paused partitions are drained too, then dropped by 1.
3. Seeks run concurrently with a batch being handed over: records fetched before
   ``perform_seek`` (whose recovery caller resumes the partitions first) are handed over after
   it, and the records read again from the committed offset are then dropped as "already
   read" below Faust's read offset.

Here a batch is fetched and handed over under one lock that every stream-partition seek also
takes (``perform_seek``, ``seek``), so no seek interleaves with a batch; the consumer thread
gets a copy of the active set, never an empty one; and each partition whose records a batch
dropped is sought back to its first dropped offset, under the same lock, before any other
seek. The commit guard (``patches/commit_guard.py``) is the net under this: even a record
dropped some other way cannot be committed past.

Upstream: worth one report (1 and 3; 2 is aiokafka's documented ``partitions=None`` reading
of a falsy argument).
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

from faust.transport.consumer import Consumer, ThreadDelegateConsumer
from faust.types import TP, Message

from patches.pin import is_patched, require_unchanged

log = logging.getLogger(__name__)

WORKS_AROUND = "faust 0.15.3: Consumer.getmany drops fetched records of partitions paused mid-batch"

EXPECTED_SOURCE = {
    "Consumer.getmany": "4b168d84",
    "Consumer.seek": "b86a9fe0",
    "Consumer.perform_seek": "0e8c130f",
    "ThreadDelegateConsumer._getmany": "f9d47aa9",
}
MARKER = "__refetches_skipped__"
# Records not handed over, by why: what a metrics exporter reads.
DROPPED: Counter[str] = Counter()


def seek_lock(consumer: Any) -> asyncio.Lock:
    """Held while a batch is fetched and handed over, and by every stream-partition seek."""
    lock: asyncio.Lock | None = consumer.__dict__.get("_seek_lock")
    if lock is None:
        lock = consumer.__dict__["_seek_lock"] = asyncio.Lock()
    return lock


async def _seek_unlocked(consumer: Any, tp: TP, offset: int) -> None:
    """What upstream ``Consumer.seek`` does, for a caller that holds the lock already."""
    await consumer._seek(tp, offset)
    consumer._read_offset[tp] = offset if offset else None


async def getmany(self: Any, timeout: float) -> AsyncIterator[tuple[TP, Message]]:
    """Upstream ``Consumer.getmany`` (round-robin over partitions, stop at a rebalance), under
    the seek lock, fetching dropped records again (see the module docstring)."""
    lock = seek_lock(self)
    await lock.acquire()
    try:
        records, active_partitions = await self._wait_next_records(timeout)
        generation_id = self.app.consumer_generation_id
        if records is None or self.should_stop:
            return
        if not self.flow_active:
            lock.release()  # perform_seek takes it
            try:
                self.log.dev("getmany called while flow not active. Seek to committed offsets.")
                await self.perform_seek()
            except Exception as ex:
                self.log.warning(f"exception performing seek when flow not active {ex}")
            finally:
                await lock.acquire()
            return
        to_message = self._to_message
        dropped: dict[TP, int] = {}
        for tp, record in self.scheduler.iterate(records):
            if not self.flow_active or self.app.consumer_generation_id != generation_id:
                DROPPED["rebalance"] += 1
                return  # a rebalance: perform_seek repositions every partition
            if (
                active_partitions is None
                or tp in active_partitions
                or tp in self._buffered_partitions
            ):
                if tp in dropped:
                    DROPPED["after a drop"] += 1
                    continue  # keep the partition's order: read again from its first drop
                self.app.monitor.track_tp_end_offset(tp, self.highwater(tp))
                yield tp, to_message(tp, record)
            else:
                DROPPED["paused"] += 1
                dropped.setdefault(tp, record.offset)
        assigned = self.assignment() if dropped else set()
        for tp, offset in dropped.items():
            if tp in assigned:
                log.info("fetching %s again from %d: it was paused meanwhile", tp, offset)
                await _seek_unlocked(self, tp, offset)
    finally:
        lock.release()


async def _getmany_with_a_copy(self: Any, active_partitions: set[TP] | None, timeout: float) -> Any:
    """Replaces ``ThreadDelegateConsumer._getmany``: the consumer thread reads a copy of the
    active set, so a pause meanwhile can neither empty it (aiokafka would then return every
    partition's records) nor change what this fetch drains."""
    if active_partitions is not None:
        if not active_partitions:
            return {}
        active_partitions = set(active_partitions)
    return await self._thread.getmany(active_partitions, timeout)


def _locked(original: Any, *, for_tp: bool) -> Any:
    async def locked(self: Any, *args: Any) -> Any:
        if for_tp and self._is_changelog_tp(args[0]):
            # Table recovery seeks changelogs while their records are handed over: never wait.
            return await original(self, *args)
        async with seek_lock(self):
            return await original(self, *args)

    setattr(locked, MARKER, True)
    locked.__wrapped__ = original  # type: ignore[attr-defined]
    return locked


def check_upstream() -> None:
    upstream = {
        "Consumer.getmany": Consumer.getmany,
        "Consumer.seek": Consumer.seek,
        "Consumer.perform_seek": Consumer.perform_seek,
        "ThreadDelegateConsumer._getmany": ThreadDelegateConsumer._getmany,
    }
    require_unchanged("patches/skipped_records.py", upstream, EXPECTED_SOURCE)


def install() -> None:
    """Idempotent; raises if faust is not the code this was written against."""
    if is_patched(Consumer.getmany, MARKER):
        return
    check_upstream()
    setattr(getmany, MARKER, True)
    getmany.__wrapped__ = Consumer.getmany  # type: ignore[attr-defined]
    _getmany_with_a_copy.__wrapped__ = ThreadDelegateConsumer._getmany  # type: ignore[attr-defined]
    Consumer.getmany = getmany  # type: ignore[method-assign]
    ThreadDelegateConsumer._getmany = _getmany_with_a_copy  # type: ignore[method-assign]
    Consumer.perform_seek = _locked(Consumer.perform_seek, for_tp=False)  # type: ignore[method-assign]
    Consumer.seek = _locked(Consumer.seek, for_tp=True)  # type: ignore[method-assign]
