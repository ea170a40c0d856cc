"""Faust's hand-off waits for buffered changelog writes only past the worker's limit.

The compiled ``ConductorHandler`` (the hand-off the worker runs) asks the app producer's buffer
to ebb before every record. Stepping it once tells whether it waited: finishing without
suspending is "did not wait", with no clock involved."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import faust
import pytest
from faust.transport import conductor as faust_conductor
from faust.types import TP, Message

from patches.eager_handoff import run_eagerly
from streams.changelog_buffer import limit_changelog_buffer

TP0 = TP("deliveries.webhook.high", 0)
BUFFERED = 150  # what the storm's waits found: a little over Faust's 100
COMPILED: Any = faust_conductor.ConductorHandler  # type: ignore[attr-defined]  # not re-exported


@pytest.fixture
def app() -> Iterator[faust.App]:
    app = faust.App("changelog-buffer-test", broker="kafka://127.0.0.1:1")
    app.flow_control.resume()  # as a worker's is once its partitions are assigned
    buffer: Any = app.producer.buffer
    buffer._started.set()  # "running", as in a worker; its sending task is not needed here
    for _ in range(BUFFERED):
        buffer.pending.put_nowait(object())  # writes waiting for the producer
    yield app


def hand_off_waits(app: faust.App) -> bool:
    lane: Any = faust.Topic(app, topics=[TP0.topic]).clone(is_iterator=True)
    handler = COMPILED(app.topics, TP0, {lane})
    record = Message(TP0.topic, TP0.partition, 0, 0.0, 0, [], b"user-1", b"{}", None)
    coro = handler(record)
    finished, _ = run_eagerly(coro)
    coro.close()
    if finished:
        assert lane.queue.qsize() == 1  # handed to the stream
    return not finished


async def test_upstream_limit_makes_every_topics_hand_off_wait(app: faust.App) -> None:
    """The control: Faust's 100."""
    assert app.producer.buffer.max_messages == 100
    assert hand_off_waits(app)


async def test_under_the_workers_limit_the_hand_off_does_not_wait(app: faust.App) -> None:
    limit_changelog_buffer(app, 4096)
    assert app.producer.buffer.size == BUFFERED
    assert not hand_off_waits(app)


async def test_past_the_workers_limit_it_still_waits(app: faust.App) -> None:
    """The limit still bounds what the buffer holds when the broker cannot keep up."""
    limit_changelog_buffer(app, BUFFERED - 1)
    assert hand_off_waits(app)
