"""Stream buffers that never make Faust's one hand-off wait.

Faust hands every fetched record to its stream's queue from one task (the conductor). When a
queue is full, that task waits for room, and every other topic's records, the urgent ones
included, wait behind it. Upstream pauses a partition's fetching at 80 % of the queue
(``FlowControlQueue.pressure_high_ratio`` 1.25) and counts on the last 20 % to take what was
already fetched. It does not: a lane reads 40 partitions (five topics of eight), and besides
the fetch being handed off when it pauses, aiokafka holds one more per partition, fetched
before the pause and released all at once when the lane resumes. A lane held by its CPU
ceiling filled its queue that way and stalled the worker (README, Performance, seventh and
eighth sittings: a quarter of 8,192 left free still filled).

So here the queue is never full: a partition pauses when the queue holds its size and resumes
at half, and what was fetched before the pause is taken without waiting. The memory that
bounds is the size plus at most two fetches per partition (``fetch_bytes_per_partition``
each), since aiokafka fetches no partition whose last fetch it still holds. ``deepest``
records how far each queue went, for the ``notify_stream_buffer_peak_records`` metric.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterator
from typing import Any

import faust
from mode.utils.queues import ThrowableQueue

# Pause at the size (mode divides the size by this), resume at half of it (it multiplies).
PAUSE_RATIO = 1.0
RESUME_RATIO = 0.5


class PausingQueue(ThrowableQueue):  # type: ignore[type-arg]  # mode's queue is untyped
    pressure_high_ratio = PAUSE_RATIO
    pressure_drop_ratio = RESUME_RATIO

    def __init__(self, topics: tuple[str, ...], *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.topics = topics
        self.deepest = 0

    def full(self) -> bool:
        # What the conductor asks before each hand-off (and ``Queue.put`` while it waits): a
        # full queue makes the one hand-off task wait, so this one never is.
        return False

    def put_nowait_enhanced(
        self,
        value: Any,
        *,
        on_pressure_high: Callable[[], None],
        on_pressure_drop: Callable[[], None],
    ) -> bool:
        # The conductor's only way in. One comparison a record.
        if (depth := self.qsize()) >= self.deepest:
            self.deepest = depth + 1
        paused: bool = super().put_nowait_enhanced(
            value, on_pressure_high=on_pressure_high, on_pressure_drop=on_pressure_drop
        )
        return paused


# Every queue a stream reads, for the metrics: weak, so a stream that ends takes its queue.
_QUEUES: weakref.WeakSet[PausingQueue] = weakref.WeakSet()


def stream_queues() -> Iterator[PausingQueue]:
    return iter(list(_QUEUES))


class PausingTopic(faust.Topic):
    """A topic whose streams buffer in an :class:`PausingQueue`. Clones (what an agent
    iterates) keep the class: ``Channel._clone`` builds ``type(self)``."""

    @property
    def queue(self) -> ThrowableQueue:  # type: ignore[type-arg]
        if self._queue is None:
            # As ``Channel.queue`` does: built on first use, when an agent iterates a clone.
            size = self.maxsize if self.maxsize is not None else self.app.conf.stream_buffer_maxsize
            queue = PausingQueue(
                tuple(self.topics),
                maxsize=size,
                flow_control=self.app.flow_control,
                clear_on_resume=True,
            )
            _QUEUES.add(queue)
            self._queue = queue
        return self._queue
