"""Where a dead letter is redriven to (scripts/dlq.py), for the letters agents/dead_letter.py
writes: whole copies go back where they came from, truncated ones nowhere."""

from __future__ import annotations

import pytest

from config.vocabulary import EventStatus
from scripts.dlq import DeadLetter, redrive_target, summary
from streams import topics
from streams.callbacks import StatusChange, callback_delivery
from streams.deliveries import parse_delivery
from streams.records import InvalidRecord


def letter(source: str, value: bytes | None = b"{}", **headers: bytes) -> DeadLetter:
    return DeadLetter(
        topics.CONTROL_DLQ,
        0,
        7,
        b"u1",
        value,
        {"x-dlq-reason": b"why", "x-dlq-source": f"{source}:3:9".encode(), **headers},
    )


def test_a_truncated_letter_is_never_redriven() -> None:
    truncated = letter(topics.REQUESTS, **{"x-dlq-truncated": b"1050011"})
    with pytest.raises(InvalidRecord, match="truncated from 1050011 bytes"):
        redrive_target(truncated)
    assert summary(truncated)["truncated_from_bytes"] == 1050011


def test_a_rekeyed_control_record_goes_back_to_its_kind() -> None:
    rekeyed = letter(topics.CONTROL_BY_USER, **{"x-control-kind": b"user-contacts"})
    assert redrive_target(rekeyed) == (topics.CONTACTS, b"u1", b"{}")


def test_a_tombstone_letter_can_be_listed() -> None:
    assert summary(letter(topics.DEVICES, value=None))["value"] == ""


def test_a_dead_lettered_callback_goes_back_to_the_callbacks_lane_from_its_first_attempt() -> None:
    change = StatusChange("n1", "u1", EventStatus.SENT, "sent", 1.0, delivery_id="d1")
    failed = callback_delivery(change, "https://client.example.com/status").after_failure(
        "TransientError: callback: http_503", 2.0, not_before=0.0
    )
    dead = DeadLetter(topics.DELIVERIES_DLQ, 0, 3, b"u1#callback", failed.to_json(), {})
    topic, key, value = redrive_target(dead)
    assert (topic, key) == (topics.CALLBACKS, b"u1#callback")
    assert parse_delivery(value).attempt == 0
