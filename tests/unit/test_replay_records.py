"""What ``scripts.replay`` reads from its command line and re-produces for a record."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from aiokafka.structs import ConsumerRecord

from scripts.replay import parse_offsets, parse_time
from scripts.replay_plan import DeliveryCandidate, ReplayCopy, RequestCandidate, Unreadable
from scripts.replay_read import candidates
from scripts.replay_send import Pace, copy_of
from streams import topics
from streams.deliveries import Delivery, parse_delivery

NOW = 1_795_000_000.0


def record(topic: str, value: bytes, headers: list[tuple[str, bytes]] | None = None) -> Any:
    return ConsumerRecord(
        topic, 2, 41, 1_794_999_000_123, 0, b"u1", value, None, len(value), len(value),
        headers or [],
    )  # fmt: skip


def test_times_are_iso_epoch_or_relative() -> None:
    assert parse_time("-15m", NOW) == NOW - 900
    assert parse_time("-2h", NOW) == NOW - 7200
    assert parse_time("1795000000.5", NOW) == 1795000000.5
    assert parse_time("2026-11-19T08:26:40Z", NOW) == 1_795_076_800.0


def test_offsets_are_inclusive_ranges_per_partition() -> None:
    assert parse_offsets("0:10-20,3:5-") == {0: (10, 20), 3: (5, None)}
    with pytest.raises(ValueError, match="before the first"):
        parse_offsets("1:9-3")


def test_a_request_is_copied_byte_for_byte_naming_its_source() -> None:
    value = b'{"notification_id":"n1","user_id":"u1","title":"t","body":"b"}'
    old_marks = [("x-replay-of", b"elsewhere"), ("trace", b"abc")]
    copy = copy_of(topics.REQUESTS, record(topics.REQUESTS, value, old_marks), "replay-1")
    assert (copy.topic, copy.key, copy.value) == (topics.REQUESTS, b"u1", value)
    assert copy.headers == [
        ("trace", b"abc"),
        ("x-replay-of", b"notification-requests:2:41"),
        ("x-replay-id", b"replay-1"),
    ]
    assert copy.timestamp_ms == 1_794_999_000_123  # a request is timed from its record


def test_a_lane_record_goes_back_as_a_first_attempt_with_its_history() -> None:
    retried = Delivery(
        "n1:sms:aa", "n1", "u1", "sms", "+15550000001", "t", "b", "high", attempt=2,
        not_before=NOW, errors=[{"attempt": 1, "error": "503", "at": NOW}],
    )  # fmt: skip
    lane = topics.delivery_topic("sms", "high")
    copy = copy_of(lane, record(lane, retried.to_json()), "replay-1")
    again = parse_delivery(copy.value)
    assert (copy.topic, again.attempt, again.not_before) == (lane, 0, 0.0)
    assert [e["error"] for e in again.errors] == ["503"]


def test_a_dead_letter_goes_to_its_lane_and_a_truncated_one_nowhere() -> None:
    d = Delivery("n1:email:aa", "n1", "u1", "email", "a@example.com", "t", "b", "low", attempt=4)
    letter = record(topics.DELIVERIES_DLQ, d.to_json(), [("x-dlq-reason", b"retries exhausted")])
    copy = copy_of(topics.DELIVERIES_DLQ, letter, "replay-1")
    assert (copy.topic, orjson.loads(copy.value or b"")["attempt"]) == ("deliveries.email.low", 0)
    truncated = record(topics.DELIVERIES_DLQ, b"{", [("x-dlq-truncated", b"2000000")])
    with pytest.raises(ValueError, match="truncated"):
        copy_of(topics.DELIVERIES_DLQ, truncated, "replay-1")


def test_copies_are_told_apart_from_dead_letters_that_failed_again() -> None:
    d = Delivery("n1:email:aa", "n1", "u1", "email", "a@example.com", "t", "b", "low")
    marked = [("x-replay-of", b"deliveries.dlq:0:1")]
    lane = topics.delivery_topic("email", "low")
    [copy] = candidates(lane, [record(lane, d.to_json(), marked)])
    assert copy == ReplayCopy(f"{lane}:2:41", "deliveries.dlq:0:1")
    # A replayed delivery that failed again is dead-lettered with its headers: a new failure.
    [letter, junk] = candidates(
        topics.DELIVERIES_DLQ,
        [record(topics.DELIVERIES_DLQ, d.to_json(), marked), record(lane, b"[]")],
    )
    assert isinstance(letter, DeliveryCandidate) and isinstance(junk, Unreadable)


async def test_the_pace_spaces_records_by_the_rate() -> None:
    clock = [100.0]
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(round(seconds, 6))
        clock[0] += seconds

    pace = Pace(4.0, clock=lambda: clock[0], sleep=sleep)
    for _ in range(3):
        await pace.wait()
    assert slept == [0.25, 0.25]  # the first goes at once, then one every 1/4 s
    clock[0] += 10.0  # an idle spell earns no burst afterwards
    await pace.wait()
    await pace.wait()
    assert slept == [0.25, 0.25, 0.25]


def test_a_request_passed_on_is_judged_and_re_sent_as_the_record_it_came_from() -> None:
    # agents/intake.py names the public record on the copy it passes on; that record claimed
    # the idempotency key, so a replay of the copy must present itself as it.
    req = orjson.dumps({"notification_id": "n1", "user_id": "u1", "title": "t", "body": "b"})
    origin = [("x-request-of", b"notification-requests:3:17")]
    normal = topics.REQUESTS_NORMAL
    [passed, direct] = candidates(normal, [record(normal, req, origin), record(normal, req)])
    assert isinstance(passed, RequestCandidate) and isinstance(direct, RequestCandidate)
    assert (passed.origin, direct.origin) == ("notification-requests:3:17", f"{normal}:2:41")
    copy = dict(copy_of(normal, record(normal, req, origin), "replay-1").headers)
    assert copy["x-replay-of"] == b"notification-requests:3:17"
    assert copy["x-request-of"] == b"notification-requests:3:17"
