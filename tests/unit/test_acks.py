"""Offset-order acking: why it exists (Faust commits past unfinished work) and what it does."""

from __future__ import annotations

import asyncio
from typing import Any

import faust
import pytest
from faust.types import TP

from agents.acks import ConcurrentLane, InOrderAcks
from tests.unit.fake_events import LANE as TOPIC
from tests.unit.fake_events import FakeEvent, events


def test_faust_commits_past_an_unfinished_offset_when_acks_come_out_of_order() -> None:
    """The upstream behaviour InOrderAcks works around (faust-streaming/faust#606). If a Faust
    upgrade fixes it, this test fails and the workaround can be reconsidered."""
    consumer: Any = faust.App("acks-test", broker="kafka://127.0.0.1:1").consumer
    consumer._committed_offset[TOPIC] = 10  # offsets up to 9 are done; 10 is being processed
    consumer._acked[TOPIC].append(11)
    consumer._acked_index[TOPIC].add(11)
    assert consumer._new_offset(TOPIC) == 12  # would commit past offset 10


def test_acks_wait_for_every_earlier_offset_of_the_partition() -> None:
    acks = InOrderAcks()
    first, second, third = events([10, 11, 12])
    for event in (first, second, third):
        acks.track(event)
    assert acks.finish(third) == 0
    assert acks.finish(second) == 0
    assert (first.acked, second.acked, third.acked) == ([], [], [])
    assert acks.finish(first) == 3
    assert (first.acked, second.acked, third.acked) == ([10], [11], [12])
    assert len(acks) == 0


def test_partitions_do_not_wait_for_each_other() -> None:
    acks = InOrderAcks()
    (slow,) = events([5])
    (fast,) = events([7], tp=TP(TOPIC.topic, 1))
    acks.track(slow)
    acks.track(fast)
    assert acks.finish(fast) == 1
    assert fast.acked == [7] and slow.acked == []


def test_finishing_an_untracked_event_is_a_bug() -> None:
    with pytest.raises(KeyError):
        InOrderAcks().finish(events([1])[0])


async def test_lane_runs_up_to_its_limit_at_once_and_acks_in_offset_order() -> None:
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
    gates[1].set()
    await asyncio.sleep(0.01)
    assert [e.acked for e in batch[:3]] == [[], [], []]  # 0 is still open
    gates[0].set()
    gates[3].set()
    gates[4].set()
    await feeder
    await lane.drain()
    assert [e.acked for e in batch] == [[0], [1], [2], [3], [4]]
    assert most_at_once == 3


async def test_a_handler_that_raises_leaves_its_event_and_later_ones_unacked() -> None:
    lane: ConcurrentLane[FakeEvent] = ConcurrentLane(limit=2)

    async def handle(event: FakeEvent) -> None:
        if event.message.offset == 0:
            raise RuntimeError("bug")

    batch = events([0, 1])
    for event in batch:
        await lane.submit(event, handle)
    await lane.drain()
    assert [e.acked for e in batch] == [[], []]
