"""A due-time scheduler for retry tiers: items wait in memory until their time, in time order,
whatever partition they came from, so one partition's long wait never holds another's."""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class DueScheduler(Generic[T]):
    def __init__(
        self,
        capacity: int,
        clock: Callable[[], float] = time.time,
        max_wait: float | None = None,
    ) -> None:
        """``max_wait``: look at the clock at least this often (a clock that can jump, as a
        stepped test clock does, is not waited on for the whole computed delay)."""
        self.capacity = capacity
        self._clock = clock
        self._max_wait = max_wait
        self._heap: list[tuple[float, int, T]] = []
        self._order = itertools.count()
        self._changed = asyncio.Event()
        self._space = asyncio.Event()
        self._space.set()

    def now(self) -> float:
        """The scheduler's clock (injected: tests step it)."""
        return self._clock()

    def __len__(self) -> int:
        return len(self._heap)

    async def put(self, due: float, item: T) -> None:
        """Waits while full: backpressure lets the tier's records wait in Kafka instead."""
        while len(self._heap) >= self.capacity:
            self._space.clear()
            await self._space.wait()
        self._push(due, item)

    def put_back(self, due: float, item: T) -> None:
        """For an item taken out by ``run`` that must wait again: never waits for space (the
        dispatcher calling it is what frees space), so it may exceed capacity by the items
        being dispatched."""
        self._push(due, item)

    def discard(self, drop: Callable[[T], bool]) -> int:
        """Removes every waiting item ``drop`` selects; returns how many."""
        kept = [entry for entry in self._heap if not drop(entry[2])]
        dropped = len(self._heap) - len(kept)
        if dropped:
            heapq.heapify(kept)
            self._heap = kept
            self._space.set()
            self._changed.set()
        return dropped

    def _push(self, due: float, item: T) -> None:
        heapq.heappush(self._heap, (due, next(self._order), item))
        self._changed.set()

    async def run(self, dispatch: Callable[[T], Awaitable[None]]) -> None:
        """Hand each item to ``dispatch`` once due; runs until cancelled."""
        while True:
            if not self._heap:
                self._changed.clear()
                await self._changed.wait()
                continue
            wait = self._heap[0][0] - self._clock()
            if self._max_wait is not None:
                wait = min(wait, self._max_wait)
            if wait > 0:
                self._changed.clear()
                try:
                    await asyncio.wait_for(self._changed.wait(), wait)
                except TimeoutError:
                    pass
                continue
            _, _, item = heapq.heappop(self._heap)
            self._space.set()
            await dispatch(item)
