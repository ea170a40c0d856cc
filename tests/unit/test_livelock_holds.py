"""Faust's livelock check skips the stream checks of partitions a ceiling holds back, and only
those; their fetch path is still checked."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import pytest
from faust.types import TP

from patches.livelock_holds import Holds, verify_held_aware

HELD = TP("deliveries.webhook.low", 3)
FREE = TP("deliveries.webhook.normal", 3)
TIMEOUT = 300.0


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class FakeConsumerThread:
    """What the wrapper touches of ``AIOKafkaConsumerThread``."""

    fetch_path_broken: bool = False
    tp_stream_timeout_secs: float = TIMEOUT
    fetch_checks: list[TP] = field(default_factory=list)

    def _verify_aiokafka_event_path(self, now: float, tp: TP) -> bool:
        self.fetch_checks.append(tp)
        return self.fetch_path_broken


class Upstream:
    """Stands for upstream's check: records the partitions it was asked about."""

    def __init__(self) -> None:
        self.checked: list[TP] = []

    def __call__(self, thread: object, now: float, tp: TP) -> None:
        self.checked.append(tp)


def test_a_topic_is_held_while_any_of_its_agents_waits() -> None:
    clock = Clock()
    holds = Holds(clock)
    with holds.holding([HELD.topic, "deliveries.push.low"]):
        with holds.holding([HELD.topic]):  # the low request agent shares no topic; a lane might
            pass
        assert holds.explains_idle(HELD.topic, clock.now + 10 * TIMEOUT, TIMEOUT)
    assert not holds.explains_idle(FREE.topic, clock.now, TIMEOUT)


def test_a_hold_explains_idleness_for_the_stream_timeout_after_it_ends() -> None:
    clock = Clock()
    holds = Holds(clock)
    with holds.holding([HELD.topic]):
        pass
    assert holds.explains_idle(HELD.topic, clock.now + TIMEOUT - 1, TIMEOUT)
    assert not holds.explains_idle(HELD.topic, clock.now + TIMEOUT, TIMEOUT)


def test_upstream_checks_every_partition_nothing_holds() -> None:
    holds = Holds(Clock())
    upstream = Upstream()
    thread = FakeConsumerThread()
    verify_held_aware(upstream, holds)(thread, 1000.0, FREE)
    assert upstream.checked == [FREE]


def test_a_held_partition_gets_its_fetch_path_checked_and_one_info_line_per_hold(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    holds = Holds(clock)
    upstream = Upstream()
    thread = FakeConsumerThread()
    verify = verify_held_aware(upstream, holds)
    caplog.set_level(logging.INFO, logger="patches.livelock_holds")
    with holds.holding([HELD.topic]):
        for partition in range(4):  # two rounds of the check over two partitions
            verify(thread, clock.now, TP(HELD.topic, partition % 2))
    assert upstream.checked == []
    assert thread.fetch_checks == [TP(HELD.topic, p % 2) for p in range(4)]
    (line,) = [r for r in caplog.records if r.name == "patches.livelock_holds"]
    assert line.levelno == logging.INFO and HELD.topic in line.getMessage()

    # The hold is over and its window passed: upstream checks the topic again, and the next
    # hold is reported again.
    verify(thread, clock.now + TIMEOUT, HELD)
    assert upstream.checked == [HELD]
    with holds.holding([HELD.topic]):
        verify(thread, clock.now + TIMEOUT, HELD)
    assert len([r for r in caplog.records if r.name == "patches.livelock_holds"]) == 2


def test_a_held_partition_whose_fetch_path_broke_logs_only_upstreams_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    holds = Holds(Clock())
    upstream = Upstream()
    thread = FakeConsumerThread(fetch_path_broken=True)
    caplog.set_level(logging.INFO, logger="patches.livelock_holds")
    with holds.holding([HELD.topic]):
        verify_held_aware(upstream, holds)(thread, 1000.0, HELD)
    assert thread.fetch_checks == [HELD] and upstream.checked == []
    assert not [r for r in caplog.records if r.name == "patches.livelock_holds"]
