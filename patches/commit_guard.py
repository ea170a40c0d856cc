"""The committed offset never passes a record that was not processed.

Faust 0.15.3 decides what to commit from the offsets streams acknowledged (``Consumer._acked``)
and from "gaps" it saw in the offsets it fetched. Four ways it commits past records nobody
processed, each shown by ``tests/unit/test_commit_guard.py`` against the upstream code:

1. ``_new_offset`` commits the first run of consecutive acked offsets without checking that the
   run starts at the committed offset when that offset is 0 or unknown (``if committed_offset:``;
   ``perform_seek`` even stores a commit at 0 as ``None``), and when it is known it still lets a
   run start one past it (``min(acked) - committed > 1``): with offset 10 unfinished and 11 acked
   it commits 12 (faust-streaming/faust#606 in its general form).
2. ``ack`` accepts an ack of a message fetched before a rebalance; after the partition came back
   that stale ack sits ahead of the records being read again.
3. Every offset skipped between two fetched records is counted as acked (``_add_gap``). Records
   get skipped without being gaps: ``getmany`` drops the rest of a fetched batch for a partition
   paused meanwhile, and records fetched before ``perform_seek`` moved the position are handed
   over after it, so the re-read ones below them are dropped as "already read".
4. Partitions nobody has committed yet keep their fetch position on a seek to committed
   offsets (``patches/seek_uncommitted.py`` rewinds them).

Records fetched but never handed over are fetched again by ``patches/skipped_records.py``;
this module makes sure that whatever escapes that cannot be committed past.

Here the commit is computed from what is known, not inferred: the committed offset of every
assigned partition is known after the seek (for a partition never committed, its log-start
offset), and the new commit is the end of the run of acked offsets that starts exactly there.
Stale acks are ignored. Gaps count only once verified by reading the partition
(:func:`probe_partition`): when a partition's commit is stuck behind an offset that no stream
holds while later ones are acked, the offset is read directly; an offset that is not in the log
(compaction, transaction markers) becomes a verified gap, and a record that is there but was
skipped is read again by seeking the consumer back to it. So every path above can delay a
commit; none can lose a record. Kafka and the embedded broker alike.

Upstream: faust-streaming/faust#606 (out-of-order acks); the rest is worth one report.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer
from faust.transport.consumer import Consumer
from faust.types import TP

from patches.pin import is_patched, require_unchanged

log = logging.getLogger(__name__)

WORKS_AROUND = "faust 0.15.3: Consumer._new_offset commits past unacked records (faust#606)"

# sha256 (first 8 hex digits) of each upstream method replaced or wrapped, faust-streaming 0.15.3.
EXPECTED_SOURCE = {
    "ack": "5fcf41cf",
    "_new_offset": "1d2c7ea8",
    "_add_gap": "4df2573d",
    "perform_seek": "0e8c130f",
}
MARKER = "__commit_guard__"

# How long a commit may stay behind an offset no stream holds, with later offsets acked, before
# the partition is read to find out why. Longer than a commit interval (Faust: 2.8 s), so that
# ordinary hand-over between the fetcher and a stream never looks stuck.
STUCK_SECONDS = 5.0
# Records one probe reads: enough to verify a run of transaction markers in one go.
PROBE_RECORDS = 500


def committable_offset(base: int, acked: Iterable[int]) -> tuple[int | None, list[int]]:
    """``(end of the run of consecutive offsets starting at base, or None; the offsets after
    it)``. ``base`` is the committed offset: the next one to process."""
    pending = sorted({offset for offset in acked if offset >= base})
    run = 0
    while run < len(pending) and pending[run] == base + run:
        run += 1
    return (base + run if run else None), pending[run:]


def absent_offsets(start: int, present: Iterable[int]) -> set[int]:
    """Offsets from ``start`` up to the last present one that the log does not hold."""
    seen = sorted(offset for offset in present if offset >= start)
    if not seen:
        return set()
    return set(range(start, seen[-1] + 1)) - set(seen)


async def probe_partition(bootstrap: str, tp: TP, start: int, isolation_level: str) -> list[int]:
    """The offsets the log holds from ``start`` on (one fetch, up to PROBE_RECORDS), read by a
    consumer outside the group so that nothing about the group's position changes."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        isolation_level=isolation_level,
        max_poll_records=PROBE_RECORDS,
    )
    await consumer.start()
    try:
        consumer.assign([tp])
        consumer.seek(tp, start)
        batches = await consumer.getmany(tp, timeout_ms=2000)
        return [record.offset for record in batches.get(tp, [])]
    finally:
        await consumer.stop()


@dataclass
class GuardState:
    """Per consumer: verified gaps, and where each partition's commit has been stuck since."""

    absent: dict[TP, set[int]] = field(default_factory=dict)
    stuck: dict[TP, tuple[int, float]] = field(default_factory=dict)
    probing: set[TP] = field(default_factory=set)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)


def _state(consumer: Any) -> GuardState:
    state: GuardState | None = consumer.__dict__.get("_commit_guard")
    if state is None:
        state = consumer.__dict__["_commit_guard"] = GuardState()
    return state


def _held(consumer: Any, tp: TP, offset: int) -> bool:
    """A stream took this record and has not finished it (Faust tracks it as unacked)."""
    return any(m.tp == tp and m.offset == offset for m in list(consumer._unacked_messages))


def _bootstrap(consumer: Any) -> str:
    return ",".join(f"{url.host}:{url.port or 9092}" for url in consumer.app.conf.broker)


async def _unstick(consumer: Any, tp: TP, base: int) -> None:
    """Find out why ``tp`` cannot commit past ``base``: a gap in the log, or a skipped record."""
    state = _state(consumer)
    try:
        isolation = "read_committed" if consumer.in_transaction else "read_uncommitted"
        present = await probe_partition(_bootstrap(consumer), tp, base, isolation)
        if consumer._committed_offset.get(tp) != base or tp not in consumer.assignment():
            return  # moved on meanwhile (a commit, a rebalance)
        absent = absent_offsets(base, present)
        if absent:
            state.absent.setdefault(tp, set()).update(absent)
            log.info("commit guard: %s has no records at %d offsets from %d", tp, len(absent), base)
        if present and min(present) == base and not _held(consumer, tp, base):
            log.warning("commit guard: %s@%d was skipped; reading it again", tp, base)
            await consumer.seek(tp, base)
    except Exception:
        log.exception("commit guard: probing %s at %d failed; will try again", tp, base)
    finally:
        state.stuck.pop(tp, None)
        state.probing.discard(tp)


def _note_stuck(consumer: Any, tp: TP, base: int) -> None:
    state = _state(consumer)
    now = time.monotonic()
    since = state.stuck.get(tp)
    if since is None or since[0] != base:
        state.stuck[tp] = (base, now)
        return
    if now - since[1] < STUCK_SECONDS or tp in state.probing or _held(consumer, tp, base):
        return
    state.probing.add(tp)
    task = asyncio.ensure_future(_unstick(consumer, tp, base))
    state.tasks.add(task)
    task.add_done_callback(state.tasks.discard)


@dataclass
class Halt:
    """Set once a record this process produced is lost for good (the producer gave up on it):
    the offsets already acked may cover the event that produced it, so nothing more is
    committed, and the worker stops so that its restart reads again from the last safe commit."""

    reason: str | None = None


HALT = Halt()


def stop_committing(reason: str) -> None:
    """Refuse every commit from now on and ask the worker to stop (SIGTERM: a graceful stop,
    whose final commit is refused too)."""
    if HALT.reason is not None:
        return
    HALT.reason = reason
    log.critical("commit guard: no more commits (%s); stopping the worker to re-read", reason)
    os.kill(os.getpid(), signal.SIGTERM)


def new_offset(self: Any, tp: TP) -> int | None:
    """Replaces ``Consumer._new_offset``: the end of the acked run starting at the committed
    offset, with verified gaps counted as processed."""
    if HALT.reason is not None:
        return None
    committed: int | None = self._committed_offset.get(tp)
    acked: list[int] = self._acked[tp]
    if committed is None or not acked:
        return None  # unknown start (not sought yet): commit nothing
    state = _state(self)
    gaps = {o for o in state.absent.get(tp, ()) if o >= committed}
    offset, rest = committable_offset(committed, [*acked, *gaps])
    self._acked[tp] = [o for o in rest if o not in gaps]
    self._acked_index[tp] = set(self._acked[tp])
    if offset is None:
        state.absent[tp] = gaps
        _note_stuck(self, tp, committed)
        return None
    state.absent[tp] = {o for o in gaps if o >= offset}
    state.stuck.pop(tp, None)
    return offset


def _guarded_ack(original: Any) -> Any:
    def ack(self: Any, message: Any) -> bool:
        if message.generation_id != self.app.consumer_generation_id:
            # Fetched before the last rebalance: its partition was revoked since and is read
            # again from the committed offset, so this ack says nothing about the new reading.
            message.acked = True
            self._unacked_messages.discard(message)
            return False
        return bool(original(self, message))

    setattr(ack, MARKER, True)
    ack.__wrapped__ = original  # type: ignore[attr-defined]
    return ack


async def add_gap(self: Any, tp: TP, offset_from: int, offset_to: int) -> None:
    """Replaces ``Consumer._add_gap``: an unverified gap is never counted as processed (see the
    module docstring); :func:`_unstick` verifies real ones."""


def _seek_with_known_base(original: Any) -> Any:
    async def perform_seek(self: Any) -> None:
        await original(self)
        # A partition never committed starts at its log-start offset: the base its first
        # commit must be contiguous with (upstream stores it as None and checks nothing).
        unknown = [
            tp
            for tp in self.assignment()
            if self._committed_offset.get(tp) is None
            and not self._is_changelog_tp(tp)
            and self.app.topics.acks_enabled_for(tp.topic)
        ]
        if unknown:
            starts = await self.earliest_offsets(*unknown)
            for tp in unknown:
                self._committed_offset[tp] = int(starts.get(tp) or 0)

    setattr(perform_seek, MARKER, True)
    perform_seek.__wrapped__ = original  # type: ignore[attr-defined]
    return perform_seek


def committed_offsets(consumer: Any) -> dict[TP, int]:
    """The committed offset (the next one to process) of each assigned partition the consumer
    knows one for: after the seek above, every acked partition of the assignment. Read by the
    lag metric (agents/metrics_collectors.py), which must not ask the broker at every scrape."""
    return {tp: offset for tp, offset in consumer._committed_offset.items() if offset is not None}


def check_upstream() -> None:
    upstream = {name: getattr(Consumer, name) for name in EXPECTED_SOURCE}
    require_unchanged("patches/commit_guard.py", upstream, EXPECTED_SOURCE)


def install() -> None:
    """Idempotent; raises if faust is not the code this was written against."""
    if is_patched(Consumer.ack, MARKER):
        return
    check_upstream()
    upstream_new_offset = Consumer._new_offset
    upstream_add_gap = Consumer._add_gap
    setattr(new_offset, MARKER, True)
    new_offset.__wrapped__ = upstream_new_offset  # type: ignore[attr-defined]
    add_gap.__wrapped__ = upstream_add_gap  # type: ignore[attr-defined]
    Consumer.ack = _guarded_ack(Consumer.ack)  # type: ignore[method-assign]
    Consumer._new_offset = new_offset  # type: ignore[method-assign]
    Consumer._add_gap = add_gap  # type: ignore[method-assign]
    Consumer.perform_seek = _seek_with_known_base(Consumer.perform_seek)  # type: ignore[method-assign]
