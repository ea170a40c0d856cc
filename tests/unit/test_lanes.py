"""ConcurrentLane: bounded concurrent sends, each acked when its own work is done."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from agents.lanes import ConcurrentLane, is_stale
from tests.unit.fake_events import FakeEvent, events


async def test_lane_runs_up_to_its_limit_at_once_and_acks_each_when_done() -> None:
    lane: ConcurrentLane[FakeEvent] = ConcurrentLane(limit=3)
    gates = {offset: asyncio.Event() for offset in range(5)}
    running: list[int] = []
    most_at_once = 0

    async def handle(event: FakeEvent) -> None:
        nonlocal most_at_once
        running.append(event.message.offset)
        most_at_once = max(most_at_once, len(running))
        await gates[event.message.offset].wait()
        running.remove(event.message.offset)

    batch = events(list(range(5)))

    async def feed() -> None:
        for event in batch:
            await lane.submit(event, handle)

    feeder = asyncio.ensure_future(feed())
    await asyncio.sleep(0.01)
    assert running == [0, 1, 2]  # the fourth waits for a slot
    gates[2].set()
    await asyncio.sleep(0.01)
    # Acked out of order: the commit guard keeps the commit behind offset 0.
    assert [e.acked for e in batch[:3]] == [[], [], [2]]
    for gate in gates.values():
        gate.set()
    await feeder
    assert await lane.drain(timeout=1.0)
    assert [e.acked for e in batch] == [[0], [1], [2], [3], [4]]
    assert most_at_once == 3


async def test_a_handler_that_raises_leaves_its_event_unacked() -> None:
    lane: ConcurrentLane[FakeEvent] = ConcurrentLane(limit=2)

    async def handle(event: FakeEvent) -> None:
        if event.message.offset == 0:
            raise RuntimeError("bug")

    batch = events([0, 1])
    for event in batch:
        await lane.submit(event, handle)
    await lane.drain()
    assert [e.acked for e in batch] == [[], [1]]


async def test_drain_gives_up_after_its_timeout() -> None:
    lane: ConcurrentLane[FakeEvent] = ConcurrentLane(limit=1)
    never = asyncio.Event()

    async def handle(event: FakeEvent) -> None:
        await never.wait()

    await lane.submit(events([0])[0], handle)
    assert not await lane.drain(timeout=0.02)
    assert lane.in_flight == 1
    lane.cancel()


@dataclass
class GenerationMessage:
    generation_id: int


@dataclass
class GenerationEvent:
    message: GenerationMessage

    def ack(self) -> bool:
        return True


def test_an_event_from_before_the_latest_rebalance_is_stale() -> None:
    assert is_stale(GenerationEvent(GenerationMessage(3)), generation=4)
    assert not is_stale(GenerationEvent(GenerationMessage(4)), generation=4)
