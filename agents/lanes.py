"""Concurrent sends for one agent's events, each acked when its own work is done.

Acks may come in any order: the commit guard (``patches/commit_guard.py``) commits only the run
of finished offsets that starts at the committed one, so a slow send holds back its partition's
commit, never loses a record. (Faust's own ``concurrency=N`` actors are not used: each would
read the stream separately, and the lane needs one reader that waits for a free slot so that
records beyond ``limit`` wait in Kafka and the stream buffer, not in memory here.)
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Generic, Protocol, TypeVar

log = logging.getLogger(__name__)


class Ackable(Protocol):
    """The part of a Faust event this module needs (``Event`` satisfies it)."""

    @property
    def message(self) -> object: ...

    def ack(self) -> bool: ...


E = TypeVar("E", bound=Ackable)


def position(event: Ackable) -> tuple[object, int]:
    message = event.message
    return message.tp, message.offset  # type: ignore[attr-defined]


def is_stale(event: Ackable, generation: int) -> bool:
    """Fetched before the latest rebalance: its partition was revoked since (and may be read
    again, here or by another worker), so working on this copy could only duplicate."""
    return getattr(event.message, "generation_id", generation) != generation


class ConcurrentLane(Generic[E]):
    """Runs up to ``limit`` handlers at once for one agent's events."""

    def __init__(
        self, limit: int, before_take: Callable[[], Awaitable[None]] | None = None
    ) -> None:
        if limit < 1:
            raise ValueError("a lane needs at least one slot")
        # Awaited before each new event is taken: lets a lane give way (agents/cpu_headroom.py).
        self._before_take = before_take
        self._slots = asyncio.Semaphore(limit)
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def in_flight(self) -> int:
        return len(self._tasks)

    async def submit(self, event: E, handle: Callable[[E], Awaitable[None]]) -> None:
        if self._before_take is not None:
            await self._before_take()
        await self._slots.acquire()
        task = asyncio.ensure_future(self._run(event, handle))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, event: E, handle: Callable[[E], Awaitable[None]]) -> None:
        try:
            await handle(event)
        except Exception:
            # The handler classifies every failure itself; this is a bug, and the record
            # stays unacked (re-read after a restart) rather than silently committed past.
            log.exception("unhandled error on %s@%s; not acknowledged", *position(event))
            return
        finally:
            self._slots.release()
        event.ack()

    async def drain(self, timeout: float | None = None) -> bool:
        """Waits for the handlers in flight (at a rebalance, at shutdown, in tests); False if
        some were still running after ``timeout`` seconds."""
        deadline = None if timeout is None else asyncio.get_running_loop().time() + timeout
        while self._tasks:
            remaining = None if deadline is None else deadline - asyncio.get_running_loop().time()
            if remaining is not None and remaining <= 0:
                return False
            await asyncio.wait(list(self._tasks), timeout=remaining)
        return True

    def cancel(self) -> None:
        for task in list(self._tasks):
            task.cancel()
