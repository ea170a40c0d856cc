"""Faust's livelock check knows which partitions a lane holds back on purpose.

Every 2.5 commit intervals (7 s) Faust's consumer checks each assigned partition
(``AIOKafkaConsumerThread.verify_event_path``): records waiting past the fetch position, and
no record taken by the partition's stream for ``stream_processing_timeout``, log an ERROR
("Stream has not started processing", "Stream stopped processing, or is slow"), whose listed
causes are a hanging agent or a stopped stream. Faust has no way for an agent to say that it
takes nothing on purpose, and the lanes behind a CPU ceiling (``agents/cpu_headroom.py``) do
exactly that while the worker is saturated: in the storm benchmark every partition of the
low in-app and webhook lanes logged that ERROR every 7 s for the minutes the campaign took,
so an operator alerting on ERROR lines was paged for the worker doing what it should.

Here the lanes say when their ceiling holds them back (``HOLDS.holding(topics)`` around the
wait; giving way to urgent work is not a hold: it lasts at most ``give_way_to_urgent_ms``, so it
cannot explain a partition idle for minutes). A partition
of a topic that is held now, or was within the stream timeout, still has its fetch path checked
(a broker that stopped answering still logs upstream's ERROR); the stream and commit checks,
whose silence the hold explains, give way to one INFO line per topic per hold. A lane that stops
for any other reason, such as every slot taken by a hung provider call, holds nothing back here
and is checked as upstream checks it.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections import Counter
from collections.abc import Callable, Collection, Iterator
from typing import Any

from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP

from patches.pin import require_unchanged, wrap_method

WORKS_AROUND = "faust 0.15.3: the livelock check cannot be told a partition is held on purpose"

# sha256 (first 8 hex digits), in faust-streaming 0.15.3, of the upstream method this wraps and
# of the fetch-path check it still runs for held partitions (which also reads
# ``tp_stream_timeout_secs``, set in ``__init__``).
EXPECTED_SOURCE = {
    "AIOKafkaConsumerThread.verify_event_path": "b983e773",
    "AIOKafkaConsumerThread._verify_aiokafka_event_path": "c7c75a7c",
}

log = logging.getLogger(__name__)


class Holds:
    """Which topics' agents hold back on purpose now, and when each last stopped holding."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        # Faust's check passes its own ``time.monotonic()`` reading: the same clock.
        self._clock = clock
        self._holding: Counter[str] = Counter()
        self._released_at: dict[str, float] = {}
        self._reported: set[str] = set()

    @contextlib.contextmanager
    def holding(self, topics: Collection[str]) -> Iterator[None]:
        """Marks ``topics`` held for the block's duration (several agents may hold one)."""
        self._holding.update(topics)
        try:
            yield
        finally:
            self._holding.subtract(topics)
            released = self._clock()
            for topic in topics:
                self._released_at[topic] = released

    def explains_idle(self, topic: str, now: float, within: float) -> bool:
        """Whether ``topic``'s agent held back at some point in the ``within`` seconds before
        ``now``: then a partition of it that took nothing for that long was held back."""
        if self._holding[topic] > 0:
            return True
        released = self._released_at.get(topic)
        return released is not None and now - released < within

    def report_once(self, topic: str) -> bool:
        """True the first time a hold of ``topic`` is found, until one is no longer found."""
        if topic in self._reported:
            return False
        self._reported.add(topic)
        return True

    def forget_report(self, topic: str) -> None:
        self._reported.discard(topic)


HOLDS = Holds()  # the lanes' holds, read by the patched check (one consumer per process)


def verify_held_aware(original: Callable[..., None], holds: Holds) -> Callable[..., None]:
    def verify_event_path(self: Any, now: float, tp: TP) -> None:
        timeout: float = self.tp_stream_timeout_secs
        if not holds.explains_idle(tp.topic, now, timeout):
            holds.forget_report(tp.topic)
            original(self, now, tp)
            return
        if self._verify_aiokafka_event_path(now, tp):
            return  # upstream logged the fetch path's ERROR
        if holds.report_once(tp.topic):
            log.info(
                "Not reporting %s's partitions as stalled: its agent's CPU ceiling held it "
                "back within the last %.0f s (agents/cpu_headroom.py); their fetch path is "
                "still checked",
                tp.topic,
                timeout,
            )

    return verify_event_path


def install(holds: Holds = HOLDS) -> None:
    """Idempotent; raises UpstreamChanged on upstream code this was not written against."""
    relied_on = "AIOKafkaConsumerThread._verify_aiokafka_event_path"
    require_unchanged(
        "patches/livelock_holds.py",
        {relied_on: faust_aiokafka.AIOKafkaConsumerThread._verify_aiokafka_event_path},
        EXPECTED_SOURCE,
    )
    name = "AIOKafkaConsumerThread.verify_event_path"
    wrap_method(
        faust_aiokafka.AIOKafkaConsumerThread,
        "verify_event_path",
        "__held_aware__",
        "patches/livelock_holds.py",
        EXPECTED_SOURCE[name],
        lambda original: verify_held_aware(original, holds),
    )
