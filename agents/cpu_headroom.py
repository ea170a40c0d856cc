"""Keeping CPU headroom for urgent work: lanes that give way while the worker is saturated.

One worker runs every stage and lane, and one consumer fetches and hands over every topic's
records. Once a campaign backlog drains as fast as the CPU allows, that shared consumer path is
what a password reset waits on: measured, a high request reached the intake agent 1.7 s after
the broker had it, while the event loop itself never ran 20 ms late. Lanes given a ceiling stop
taking new records while the worker process uses more than that share of a core, so the
consumer and the high lane always find CPU; the backlog's records wait in Kafka (the lane's
stream buffer fills and Faust pauses only its partitions).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


class CpuHeadroom:
    """The worker process's CPU use (all threads, share of one core), sampled every
    ``interval`` seconds."""

    def __init__(
        self,
        interval: float = 0.05,
        cpu_clock: Callable[[], float] = time.process_time,
        wall_clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.interval = interval
        self.busy = 0.0
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

    async def wait_below(self, ceiling: float) -> None:
        """Returns once the latest sample is under ``ceiling`` (at once if it already is)."""
        while self.busy > ceiling:  # noqa: ASYNC110 (busy is a sample, re-read every interval)
            await asyncio.sleep(self.interval)
