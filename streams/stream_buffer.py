"""Stream buffers that pause their partitions early, so that the one hand-off never waits.

Faust hands every fetched record to its stream's queue from one task (the conductor). When a
queue is full, that task waits for room, and every other topic's records, the urgent ones
included, wait behind it. Upstream pauses a partition's fetching at 80 % of the queue
(``FlowControlQueue.pressure_high_ratio`` 1.25), which leaves 20 % for the records already
fetched: one fetch names every partition of a lane's five topics, so a lane held by its CPU
ceiling overran that margin and stalled the worker (README, Performance, seventh sitting).

Here a partition pauses at a quarter of the queue and resumes at a tenth, and the other three
quarters take what was already in flight. So the queue's size is what it is everywhere else,
the most records the stream ever holds, and the hand-off waits only if one fetch brings more
than three quarters of it for one stream. ``deepest`` records how close each queue came, for
the ``notify_stream_buffer_peak_records`` metric.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterator
from typing import Any

import faust
from mode.utils.queues import ThrowableQueue

# Pause at 1 / 4 of the size (mode divides the size by this), resume at 1 / 10 (it multiplies).
PAUSE_RATIO = 4.0
RESUME_RATIO = 0.10


class EarlyPauseQueue(ThrowableQueue):  # type: ignore[type-arg]  # mode's queue is untyped
    pressure_high_ratio = PAUSE_RATIO
    pressure_drop_ratio = RESUME_RATIO

    def __init__(self, topics: tuple[str, ...], *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.topics = topics
        self.deepest = 0

    def put_nowait_enhanced(
        self,
        value: Any,
        *,
        on_pressure_high: Callable[[], None],
        on_pressure_drop: Callable[[], None],
    ) -> bool:
        # The conductor's only way in (it checks ``full()`` first). One comparison a record.
        if (depth := self.qsize()) >= self.deepest:
            self.deepest = depth + 1
        paused: bool = super().put_nowait_enhanced(
            value, on_pressure_high=on_pressure_high, on_pressure_drop=on_pressure_drop
        )
        return paused


# Every queue a stream reads, for the metrics: weak, so a stream that ends takes its queue.
_QUEUES: weakref.WeakSet[EarlyPauseQueue] = weakref.WeakSet()


def stream_queues() -> Iterator[EarlyPauseQueue]:
    return iter(list(_QUEUES))


class EarlyPauseTopic(faust.Topic):
    """A topic whose streams buffer in an :class:`EarlyPauseQueue`. Clones (what an agent
    iterates) keep the class: ``Channel._clone`` builds ``type(self)``."""

    @property
    def queue(self) -> ThrowableQueue:  # type: ignore[type-arg]
        if self._queue is None:
            # As ``Channel.queue`` does: built on first use, when an agent iterates a clone.
            size = self.maxsize if self.maxsize is not None else self.app.conf.stream_buffer_maxsize
            queue = EarlyPauseQueue(
                tuple(self.topics),
                maxsize=size,
                flow_control=self.app.flow_control,
                clear_on_resume=True,
            )
            _QUEUES.add(queue)
            self._queue = queue
        return self._queue
