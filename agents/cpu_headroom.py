"""Keeping CPU headroom for urgent work: lanes that give way while the worker is saturated.

One worker runs every stage and lane, and one consumer fetches and hands over every topic's
records. Once a campaign backlog drains as fast as the CPU allows, that shared consumer path is
what a password reset waits on: measured, a high request reached the intake agent 1.7 s after
the broker had it, while the event loop itself never ran 20 ms late. Lanes given a ceiling stop
taking new records while the worker process uses more than that share of a core, so the
consumer and the high lane always find CPU; the backlog's records wait in Kafka (the lane's
stream buffer fills and Faust pauses only its partitions).

The same lanes also give way while urgent work is in flight (``urgent()``): asyncio runs ready
tasks in turn, with no priorities, so under load each await of a high-priority record waits one
step of every other busy task first. A lane that gives way takes no new record until the urgent
records in flight are done, or ``give_way_seconds`` passed, so a steady stream of urgent work
slows the bulk lanes but never stops them.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager

from faust.types import TopicT

from patches.livelock_holds import HOLDS
from streams.faust_types import Channel

Hold = Callable[[], AbstractContextManager[None]]  # marks a wait for the ceiling while it lasts


def livelock_hold(channel: Channel) -> Hold:
    """The hold that tells Faust's livelock check that ``channel``'s partitions wait on purpose
    while its agent waits for a ceiling (``patches/livelock_holds.py``)."""
    names = tuple(channel.topics) if isinstance(channel, TopicT) else ()
    return functools.partial(HOLDS.holding, names)


class CpuHeadroom:
    """The worker process's CPU use (all threads, share of one core), sampled every
    ``interval`` seconds."""

    def __init__(
        self,
        interval: float = 0.05,
        cpu_clock: Callable[[], float] = time.process_time,
        wall_clock: Callable[[], float] = time.monotonic,
        give_way_seconds: float = 0.0,
    ) -> None:
        self.interval = interval
        self.give_way_seconds = give_way_seconds
        self.busy = 0.0
        self.urgent_in_flight = 0
        self._no_urgent = asyncio.Event()
        self._no_urgent.set()
        self._cpu_clock = cpu_clock
        self._wall_clock = wall_clock
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.ensure_future(self._sample())

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None

    def record(self, cpu_seconds: float, wall_seconds: float) -> None:
        if wall_seconds > 0:  # a sample over no time says nothing: the last one stands
            self.busy = cpu_seconds / wall_seconds

    async def _sample(self) -> None:
        cpu, wall = self._cpu_clock(), self._wall_clock()
        while True:
            await asyncio.sleep(self.interval)
            now_cpu, now_wall = self._cpu_clock(), self._wall_clock()
            self.record(now_cpu - cpu, now_wall - wall)
            cpu, wall = now_cpu, now_wall

    @contextlib.contextmanager
    def urgent(self) -> Iterator[None]:
        """Marks one urgent record's handling, for the lanes that give way to it."""
        self.urgent_in_flight += 1
        self._no_urgent.clear()
        try:
            yield
        finally:
            self.urgent_in_flight -= 1
            if not self.urgent_in_flight:
                self._no_urgent.set()

    async def give_way_to_urgent(self) -> None:
        """Returns once no urgent record is in flight, or after ``give_way_seconds``."""
        if self.urgent_in_flight and self.give_way_seconds > 0:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.give_way_seconds):
                    await self._no_urgent.wait()

    def holds_back(self, ceiling: float) -> bool:
        """Whether ``wait_below(ceiling)`` can ever wait: a ceiling, or giving way, is on."""
        return ceiling > 0 or self.give_way_seconds > 0

    async def wait_below(self, ceiling: float, hold: Hold = contextlib.nullcontext) -> None:
        """Gives way to urgent work in flight, then returns once the latest sample is under
        ``ceiling`` (at once if it already is, or if ``ceiling`` is 0: none). A wait for the
        ceiling runs inside ``hold()``: how the caller tells Faust's livelock check that its
        partitions are held back on purpose (``patches/livelock_holds.py``)."""
        await self.give_way_to_urgent()
        if not 0 < ceiling < self.busy:
            return
        with hold():
            while 0 < ceiling < self.busy:  # noqa: ASYNC110 (a sample, re-read every interval)
                await asyncio.sleep(self.interval)
