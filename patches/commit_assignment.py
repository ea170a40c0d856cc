"""An offset commit reads the consumer's assignment once, not once per partition committed.

``AIOKafkaConsumerThread._commit`` (faust-streaming 0.15.3) keeps the offsets of assigned
partitions with ``{tp: offset for tp, offset in offsets.items() if tp in self.assignment()}``,
and ``assignment()`` builds a new set of every assigned partition each time it is called
(``ensure_TPset`` over aiokafka's assignment). A commit therefore costs partitions committed
x partitions assigned: with the ~380 partitions one worker here reads and half of them
committed, 34 ms per commit against 0.5 ms with the set built once, and 362 ms against 1.2 ms
at 1,000 partitions (``python -m bench.commit_cost``; README, Performance, sixth sitting).
Faust commits every ``broker_commit_interval`` (2.8 s) in the consumer thread, so both fetch
loops, the urgent one included, stood still that long at every commit.

Here the same commit, with the assignment read once per commit. Everything else (what is
committed, the per-partition commit times, every error path) is upstream's code unchanged.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from time import monotonic
from typing import Any

from aiokafka.errors import CommitFailedError, IllegalStateError
from aiokafka.structs import OffsetAndMetadata
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP

from patches.pin import wrap_method

WORKS_AROUND = "faust 0.15.3: AIOKafkaConsumerThread._commit rebuilds the assignment per offset"

# sha256 (first 8 hex digits) of the upstream method this replaces, in faust-streaming 0.15.3.
EXPECTED_SOURCE = {"AIOKafkaConsumerThread._commit": "932852ce"}


def assigned_offsets(offsets: Mapping[TP, int], assigned: set[TP]) -> dict[TP, int]:
    """The offsets of partitions still assigned (a commit for any other is refused)."""
    return {tp: offset for tp, offset in offsets.items() if tp in assigned}


async def patched_commit(self: Any, offsets: Mapping[TP, int]) -> bool:
    # Upstream's body, with ``self.assignment()`` read once.
    consumer = self._ensure_consumer()
    now = monotonic()
    commitable_offsets = assigned_offsets(offsets, self.assignment())
    try:
        aiokafka_offsets = {
            faust_aiokafka.ensure_aiokafka_TP(tp): OffsetAndMetadata(offset, "")
            for tp, offset in commitable_offsets.items()
        }
        self.tp_last_committed_at.update({tp: now for tp in commitable_offsets})
        await consumer.commit(aiokafka_offsets)
    except CommitFailedError as exc:
        if "already rebalanced" in str(exc):
            return False
        self.log.exception("Committing raised exception: %r", exc)
        await self.crash(exc)
        return False
    except IllegalStateError as exc:
        self.log.exception("Got exception: %r\nCurrent assignment: %r", exc, self.assignment())
        await self.crash(exc)
        return False
    except Exception as exc:
        self.log.exception("Got exception: %r\nCurrent assignment: %r", exc, self.assignment())
        await self.crash(exc)
        return False
    return True


def upstream_commit() -> Callable[..., Any]:
    """Upstream's ``_commit``, installed or not (the tests pin what it costs)."""
    upstream: Callable[..., Any] = inspect.unwrap(faust_aiokafka.AIOKafkaConsumerThread._commit)
    return upstream


def install() -> None:
    """Idempotent; raises UpstreamChanged on upstream code this was not written against."""

    def replace(original: Callable[..., Any]) -> Callable[..., Any]:
        return patched_commit

    name = "AIOKafkaConsumerThread._commit"
    wrap_method(
        faust_aiokafka.AIOKafkaConsumerThread,
        "_commit",
        "__assignment_once__",
        "patches/commit_assignment.py",
        EXPECTED_SOURCE[name],
        replace,
    )
