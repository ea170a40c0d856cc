"""Lanes that give way while the worker is saturated."""

from __future__ import annotations

import asyncio

from agents.cpu_headroom import CpuHeadroom
from agents.lanes import ConcurrentLane
from tests.unit.fake_events import FakeEvent, events


def test_busy_is_cpu_time_over_wall_time() -> None:
    headroom = CpuHeadroom()
    headroom.record(cpu_seconds=0.045, wall_seconds=0.05)
    assert abs(headroom.busy - 0.9) < 1e-9
    headroom.record(cpu_seconds=0.0, wall_seconds=0.0)
    assert headroom.busy == 0.0


async def test_sampler_measures_this_process() -> None:
    headroom = CpuHeadroom(interval=0.02)
    headroom.start()
    await asyncio.sleep(0)  # the sampler takes its starting reading
    try:
        deadline = asyncio.get_running_loop().time() + 0.1
        while asyncio.get_running_loop().time() < deadline:
            pass  # burn CPU without yielding: the next sample sees a saturated process
        # The sampler's timer expired during the burn: one pass of the loop lets it record.
        for _ in range(3):
            await asyncio.sleep(0)
        assert headroom.busy > 0.5
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
