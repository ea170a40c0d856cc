"""Lanes that give way while the worker is saturated."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator

from agents.cpu_headroom import CpuHeadroom
from agents.lanes import ConcurrentLane
from tests.unit.fake_events import FakeEvent, events


def test_busy_is_cpu_time_over_wall_time() -> None:
    headroom = CpuHeadroom()
    headroom.record(cpu_seconds=0.045, wall_seconds=0.05)
    assert abs(headroom.busy - 0.9) < 1e-9
    headroom.record(cpu_seconds=0.0, wall_seconds=0.0)
    assert abs(headroom.busy - 0.9) < 1e-9  # no time passed: the last reading stands
    headroom.record(cpu_seconds=0.0, wall_seconds=0.05)
    assert headroom.busy == 0.0


class SteppedClocks:
    """A process-CPU clock and a wall clock that move only when the test says so."""

    def __init__(self) -> None:
        self.cpu = 0.0
        self.wall = 0.0

    def advance(self, cpu_seconds: float, wall_seconds: float) -> None:
        self.cpu += cpu_seconds
        self.wall += wall_seconds


async def sampled(headroom: CpuHeadroom, expected: float) -> bool:
    """Whether the sampler's next passes (the loop runs it when it likes) record ``expected``."""
    for _ in range(1000):
        if abs(headroom.busy - expected) < 1e-9:
            return True
        await asyncio.sleep(0.001)
    return False


async def test_each_sample_is_the_cpu_used_over_the_wall_time_since_the_last() -> None:
    clocks = SteppedClocks()
    headroom = CpuHeadroom(
        interval=0.001, cpu_clock=lambda: clocks.cpu, wall_clock=lambda: clocks.wall
    )
    headroom.start()
    try:
        await asyncio.sleep(0)  # the sampler takes its starting reading
        clocks.advance(cpu_seconds=0.09, wall_seconds=0.1)
        assert await sampled(headroom, 0.9)
        clocks.advance(cpu_seconds=0.02, wall_seconds=0.1)
        assert await sampled(headroom, 0.2)
    finally:
        headroom.stop()


async def test_a_lane_takes_nothing_while_over_its_ceiling() -> None:
    headroom = CpuHeadroom(interval=0.005)
    headroom.record(cpu_seconds=1.0, wall_seconds=1.0)  # saturated; no sampler running

    async def give_way() -> None:
        await headroom.wait_below(0.9)

    lane: ConcurrentLane[FakeEvent] = ConcurrentLane(limit=4, before_take=give_way)
    handled: list[int] = []

    async def handle(event: FakeEvent) -> None:
        handled.append(event.message.offset)

    (event,) = events([0])
    submitting = asyncio.ensure_future(lane.submit(event, handle))
    await asyncio.sleep(0.03)
    assert handled == [] and not submitting.done()
    headroom.record(cpu_seconds=0.5, wall_seconds=1.0)  # load fell
    await submitting
    await lane.drain()
    assert handled == [0] and event.acked == [0]


async def test_a_lane_behind_a_ceiling_waits_for_the_urgent_work_in_flight() -> None:
    headroom = CpuHeadroom(give_way_seconds=30.0)  # the guard is long: only the end releases
    with headroom.urgent():
        waiting = asyncio.ensure_future(headroom.wait_below(ceiling=0.9))
        await asyncio.sleep(0.01)
        assert not waiting.done() and headroom.urgent_in_flight == 1
    await asyncio.wait_for(waiting, timeout=5)
    assert headroom.urgent_in_flight == 0


async def test_steady_urgent_work_slows_a_lane_but_never_stops_it() -> None:
    headroom = CpuHeadroom(give_way_seconds=0.01)
    with headroom.urgent(), headroom.urgent():
        await asyncio.wait_for(headroom.wait_below(ceiling=0.9), timeout=5)
        assert headroom.urgent_in_flight == 2


async def test_no_give_way_when_turned_off() -> None:
    headroom = CpuHeadroom(give_way_seconds=0.0)
    with headroom.urgent():
        await asyncio.wait_for(headroom.give_way_to_urgent(), timeout=0.5)


async def test_a_lane_without_a_ceiling_still_gives_way_but_never_waits_on_the_cpu() -> None:
    headroom = CpuHeadroom(give_way_seconds=30.0)
    headroom.record(cpu_seconds=2.0, wall_seconds=1.0)  # far over any ceiling
    assert headroom.holds_back(ceiling=0.0)
    with headroom.urgent():
        waiting = asyncio.ensure_future(headroom.wait_below(ceiling=0.0))
        await asyncio.sleep(0.01)
        assert not waiting.done()  # urgent work in flight: it gives way
    await asyncio.wait_for(waiting, timeout=5)  # then the saturated CPU does not hold it


def test_nothing_holds_a_lane_back_with_no_ceiling_and_no_giving_way() -> None:
    headroom = CpuHeadroom(give_way_seconds=0.0)
    assert not headroom.holds_back(ceiling=0.0)
    assert headroom.holds_back(ceiling=0.5)


async def test_only_a_wait_for_the_ceiling_is_held_as_one() -> None:
    holds: list[str] = []

    @contextlib.contextmanager
    def hold() -> Iterator[None]:
        holds.append("held")
        yield

    headroom = CpuHeadroom(interval=0.005, give_way_seconds=0.01)
    headroom.record(cpu_seconds=0.5, wall_seconds=1.0)
    with headroom.urgent():  # giving way to urgent work is not a hold
        await asyncio.wait_for(headroom.wait_below(0.9, hold), timeout=5)
    assert holds == []
    headroom.record(cpu_seconds=1.0, wall_seconds=1.0)
    waiting = asyncio.ensure_future(headroom.wait_below(0.9, hold))
    await asyncio.sleep(0.02)
    assert holds == ["held"] and not waiting.done()
    headroom.record(cpu_seconds=0.5, wall_seconds=1.0)
    await asyncio.wait_for(waiting, timeout=5)
    assert holds == ["held"]  # one hold for the whole wait
