"""The commit guard: what upstream Faust commits past, and that the guarded consumer does not.

The ``upstream_*`` tests call Faust's own code (unwrapped): each fails once upstream fixes the
bug it pins, and then the guard's part for it can be reconsidered."""

from __future__ import annotations

import inspect
import os
import signal
import time
from typing import Any

import faust
import pytest
from faust.transport.consumer import Consumer
from faust.types import TP, Message

from patches import commit_guard
from patches.commit_guard import absent_offsets, committable_offset

LANE = TP("deliveries.push.high", 0)


@pytest.fixture
def consumer() -> Any:
    commit_guard.install()
    app = faust.App("commit-guard-test", broker="kafka://127.0.0.1:1")
    app.topics._acking_topics.add(LANE.topic)  # type: ignore[attr-defined]
    return app.consumer


def acked(consumer: Any, *offsets: int) -> None:
    consumer._acked[LANE].extend(offsets)
    consumer._acked_index[LANE].update(offsets)


def message(offset: int, generation: int) -> Message:
    return Message(
        LANE.topic, LANE.partition, offset, 0.0, 0, None, b"k", b"v", None,
        tp=LANE, generation_id=generation,
    )  # fmt: skip


def upstream(name: str) -> Any:
    return inspect.unwrap(getattr(Consumer, name))


def test_upstream_commits_a_run_that_starts_one_past_the_committed_offset(consumer: Any) -> None:
    consumer._committed_offset[LANE] = 10  # offset 10 is the next to process, and unfinished
    acked(consumer, 11)
    assert upstream("_new_offset")(consumer, LANE) == 12  # would commit past offset 10


def test_upstream_commits_any_run_when_the_partition_was_never_committed(consumer: Any) -> None:
    acked(consumer, 40, 41)  # 0..39 still unfinished
    assert upstream("_new_offset")(consumer, LANE) == 42


async def test_upstream_counts_a_skipped_range_as_acked(consumer: Any) -> None:
    consumer._committed_offset[LANE] = 5
    await upstream("_add_gap")(consumer, LANE, 6, 20)  # records 6..19 were never handed over
    acked(consumer, 5, 20)
    assert upstream("_new_offset")(consumer, LANE) == 21


def test_guarded_commit_waits_for_the_committed_offset_itself(consumer: Any) -> None:
    consumer._committed_offset[LANE] = 10
    acked(consumer, 11, 12)
    assert consumer._new_offset(LANE) is None
    acked(consumer, 10)
    assert consumer._new_offset(LANE) == 13
    assert consumer._acked[LANE] == []


def test_guarded_commit_keeps_what_lies_beyond_the_first_hole(consumer: Any) -> None:
    consumer._committed_offset[LANE] = 0
    acked(consumer, 0, 1, 3, 4)
    assert consumer._new_offset(LANE) == 2
    assert consumer._acked[LANE] == [3, 4]
    consumer._committed_offset[LANE] = 2
    acked(consumer, 2)
    assert consumer._new_offset(LANE) == 5


def test_guarded_commit_needs_a_known_start(consumer: Any) -> None:
    acked(consumer, 0, 1)  # handed over before the seek told where the partition starts
    assert consumer._new_offset(LANE) is None
    assert consumer._acked[LANE] == [0, 1]


async def test_guarded_commit_ignores_unverified_gaps(consumer: Any) -> None:
    consumer._committed_offset[LANE] = 5
    await consumer._add_gap(LANE, 6, 20)
    acked(consumer, 5, 20)
    assert consumer._new_offset(LANE) == 6


def test_verified_gaps_count_as_processed(consumer: Any) -> None:
    consumer._committed_offset[LANE] = 5
    commit_guard._state(consumer).absent[LANE] = {6, 7}  # transaction markers, say
    acked(consumer, 5, 8)
    assert consumer._new_offset(LANE) == 9
    assert commit_guard._state(consumer).absent[LANE] == set()


def test_an_ack_from_before_the_latest_rebalance_is_ignored(consumer: Any) -> None:
    consumer.app.consumer_generation_id = 4
    assert not consumer.ack(message(7, generation=3))
    assert consumer._acked[LANE] == []
    assert consumer.ack(message(8, generation=4))
    assert consumer._acked[LANE] == [8]


async def test_a_partition_stuck_behind_an_offset_nobody_holds_is_probed(
    consumer: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    probed: list[tuple[TP, int]] = []

    def unstick(consumer: Any, tp: TP, base: int) -> Any:
        probed.append((tp, base))

        async def nothing() -> None:
            return None

        return nothing()

    monkeypatch.setattr(commit_guard, "_unstick", unstick)
    clock = [100.0]
    monkeypatch.setattr(time, "monotonic", lambda: clock[0])
    consumer._committed_offset[LANE] = 3
    acked(consumer, 4)
    assert consumer._new_offset(LANE) is None
    clock[0] += commit_guard.STUCK_SECONDS + 1
    assert consumer._new_offset(LANE) is None
    assert probed == [(LANE, 3)]


def test_committable_offset_is_the_run_from_the_base() -> None:
    assert committable_offset(3, [5, 3, 4, 4, 7]) == (6, [7])
    assert committable_offset(3, [1, 2]) == (None, [])
    assert committable_offset(3, [4]) == (None, [4])


def test_absent_offsets_are_the_holes_up_to_the_last_present_record() -> None:
    assert absent_offsets(10, [12, 13, 15]) == {10, 11, 14}
    assert absent_offsets(10, []) == set()
    assert absent_offsets(10, [10, 11]) == set()


def test_install_is_idempotent_and_pinned() -> None:
    commit_guard.install()
    commit_guard.install()
    assert inspect.unwrap(Consumer.ack) is not Consumer.ack
    commit_guard.check_upstream()


def test_a_record_lost_by_the_producer_stops_every_commit_and_the_worker(
    consumer: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    signals: list[int] = []
    monkeypatch.setattr(os, "kill", lambda pid, sig: signals.append(sig))
    monkeypatch.setattr(commit_guard, "HALT", commit_guard.Halt())
    consumer._committed_offset[LANE] = 0
    acked(consumer, 0, 1)
    commit_guard.stop_committing("a record for delivery-events was lost")
    commit_guard.stop_committing("a second one")  # one stop is enough
    assert consumer._new_offset(LANE) is None
    assert signals == [signal.SIGTERM]
