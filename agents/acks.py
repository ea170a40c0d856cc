"""Acknowledging events in offset order, whatever order their work finishes in.

Faust commits up to the end of the first run of consecutive acked offsets of a partition, and
does not check that the run starts where the committed offset is: with offset 10 still being
processed and 11 acked, it commits 12 (faust-streaming/faust#606, reproduced on 0.15.3 by
``tests/unit/test_acks.py``). A SIGKILL then loses offset 10 for good. So every agent that
finishes events out of order (concurrent sends, retry tiers holding records until their due
time) acks through :class:`InOrderAcks`: an event's ack waits until every earlier event of its
partition is finished, and the committed offset can never pass unfinished work.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Generic, Protocol, TypeVar

log = logging.getLogger(__name__)


class Ackable(Protocol):
    """The part of a Faust event this module needs (``faust.types.EventT`` satisfies it)."""

    @property
    def message(self) -> object: ...

    def ack(self) -> bool: ...


E = TypeVar("E", bound=Ackable)


def _position(event: Ackable) -> tuple[object, int]:
    message = event.message
    return message.tp, message.offset  # type: ignore[attr-defined]


class InOrderAcks:
    def __init__(self) -> None:
        # Per partition, the tracked events in arrival order: Kafka hands a partition's records
        # over in offset order, so the first entry is always the oldest unfinished one.
        self._tracked: dict[object, dict[int, Ackable]] = {}
        self._finished: dict[object, set[int]] = {}

    def __len__(self) -> int:
        return sum(len(events) for events in self._tracked.values())

    def track(self, event: Ackable) -> None:
        """Call when the event is received, before any later event of its partition."""
        tp, offset = _position(event)
        self._tracked.setdefault(tp, {})[offset] = event

    def finish(self, event: Ackable) -> int:
        """Marks the event finished; acks it and every finished event right after it if
        nothing older is still open. Returns how many events were acked."""
        tp, offset = _position(event)
        tracked = self._tracked.get(tp)
        if tracked is None or offset not in tracked:
            raise KeyError(f"event {tp}@{offset} was never tracked")
        finished = self._finished.setdefault(tp, set())
        finished.add(offset)
        acked = 0
        while tracked:
            head = next(iter(tracked))
            if head not in finished:
                break
            finished.discard(head)
            tracked.pop(head).ack()
            acked += 1
        return acked


class ConcurrentLane(Generic[E]):
    """Runs up to ``limit`` handlers at once for one agent's events, acking in offset order.

    One actor reads the stream and hands each event to a task; the actor waits for a free slot
    before taking the next event, so the records beyond ``limit`` wait in Kafka and the
    stream's buffer, not in memory here. (Faust's own ``concurrency=N`` actors ack out of
    order, see the module docstring.)
    """

    def __init__(
        self, limit: int, before_take: Callable[[], Awaitable[None]] | None = None
    ) -> None:
        if limit < 1:
            raise ValueError("a lane needs at least one slot")
        # Awaited before each new event is taken: lets a lane give way (agents/cpu_headroom.py).
        self._before_take = before_take
        self.acks = InOrderAcks()
        self._slots = asyncio.Semaphore(limit)
        self._tasks: set[asyncio.Task[None]] = set()

    async def submit(self, event: E, handle: Callable[[E], Awaitable[None]]) -> None:
        if self._before_take is not None:
            await self._before_take()
        await self._slots.acquire()
        self.acks.track(event)
        task = asyncio.ensure_future(self._run(event, handle))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, event: E, handle: Callable[[E], Awaitable[None]]) -> None:
        try:
            await handle(event)
        except Exception:
            # The handler classifies every failure itself; this is a bug, and the record
            # stays unacked (re-read after a restart) rather than silently committed past.
            log.exception("unhandled error on %s@%s; not acknowledged", *_position(event))
            return
        finally:
            self._slots.release()
        self.acks.finish(event)

    async def drain(self) -> None:
        """Waits for the handlers in flight (used at shutdown and by tests)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def cancel(self) -> None:
        for task in list(self._tasks):
            task.cancel()
