"""A stream buffer pauses its partition at its size and is never full, so that Faust's one
hand-off takes the records still in flight without waiting, through both of Faust's hand-off builds
(the compiled ``ConductorHandler`` the worker runs and the pure-Python ``ConductorCompiler``).

``run_eagerly`` steps a hand-off once: finishing without suspending is what "does not wait"
means here, with no clock involved."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import faust
import pytest
from faust.transport import conductor as faust_conductor
from faust.types import TP, Message

from agents.metrics_collectors import StreamBuffers
from config.settings import Settings
from config.vocabulary import Priority
from patches.eager_handoff import run_eagerly
from streams.stream_buffer import PausingQueue, stream_queues
from streams.topics import declare_topics

TP0 = TP("deliveries.webhook.low", 0)
SIZE = 1024
Handler = Callable[[Message], object]
# The worker runs the compiled one whenever it imports (it does here); both must behave.
COMPILED: Any = faust_conductor.ConductorHandler  # type: ignore[attr-defined]  # not re-exported
assert COMPILED is not None, "faust's compiled conductor did not import"
BUILDS: dict[str, Callable[[faust.App, Any], Handler]] = {
    "compiled": lambda app, lane: COMPILED(app.topics, TP0, {lane}),
    "python": lambda app, lane: faust_conductor.ConductorCompiler().build(
        app.topics,  # type: ignore[arg-type]  # the app's conductor, typed as its interface
        TP0,
        {lane},
    ),
}


def record(offset: int) -> Message:
    return Message(TP0.topic, TP0.partition, offset, 0.0, 0, [], b"user-1", b"{}", None)


@pytest.fixture
def app() -> Iterator[faust.App]:
    app = faust.App("stream-buffer-test", broker="kafka://127.0.0.1:1")
    app.flow_control.resume()  # as a worker's is once its partitions are assigned
    yield app


def low_lane(app: faust.App) -> Any:
    topics = declare_topics(app, Settings(lane_buffer_size=SIZE))
    lane: Any = topics.delivery_lanes[Priority.LOW].clone(is_iterator=True)
    return lane


def paused(app: faust.App) -> set[TP]:
    """The partitions Faust stopped fetching because their stream's buffer is under pressure."""
    consumer: Any = app.consumer
    return set(consumer._buffered_partitions)


def handed_off_without_waiting(handler: Handler, count: int) -> int:
    """How many of ``count`` records the hand-off took before one had to wait."""
    for offset in range(count):
        finished, _ = run_eagerly(handler(record(offset)))  # type: ignore[arg-type]
        if not finished:
            return offset
    return count


@pytest.mark.parametrize("build", sorted(BUILDS))
async def test_pauses_at_its_size_and_takes_what_is_in_flight_without_waiting(
    app: faust.App, build: str
) -> None:
    lane = low_lane(app)
    queue = lane.queue
    assert isinstance(queue, PausingQueue)
    assert (queue.pressure_high_size, queue.pressure_drop_size) == (SIZE, SIZE // 2)
    handler = BUILDS[build](app, lane)

    assert handed_off_without_waiting(handler, SIZE) == SIZE
    assert TP0 not in paused(app)
    # The next record pauses the partition; what was fetched before the pause (here two more
    # buffers' worth) is still taken without waiting.
    assert handed_off_without_waiting(handler, 2 * SIZE) == 2 * SIZE
    assert TP0 in paused(app)
    assert queue.qsize() == queue.deepest == 3 * SIZE


async def test_upstream_queue_waits_once_the_fifth_above_its_pause_is_used(app: faust.App) -> None:
    """The control: a plain Faust topic of the same size pauses at 80 % and then makes the
    hand-off (every topic's records behind it) wait once the 20 % left is used."""
    lane: Any = faust.Topic(app, topics=[TP0.topic], maxsize=SIZE).clone(is_iterator=True)
    handler = BUILDS["compiled"](app, lane)
    assert handed_off_without_waiting(handler, SIZE + 1) == SIZE


async def test_the_metric_reports_what_each_stream_holds_and_held(app: faust.App) -> None:
    lane = low_lane(app)
    handler = BUILDS["compiled"](app, lane)
    handed_off_without_waiting(handler, 300)
    for _ in range(100):
        lane.queue.get_nowait()
    assert lane.queue in set(stream_queues())  # what the worker's collector reads
    collector = StreamBuffers(lambda: [lane.queue])  # not the other tests' queues
    families = {family.name: family for family in collector.collect()}
    name = ",".join(lane.topics)
    held = {s.labels["topics"]: s.value for s in families["notify_stream_buffer_records"].samples}
    peak = {
        s.labels["topics"]: s.value for s in families["notify_stream_buffer_peak_records"].samples
    }
    assert held[name] == 200
    assert peak[name] == 300
