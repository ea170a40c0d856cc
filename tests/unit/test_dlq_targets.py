"""Where a dead letter is redriven to (scripts/dlq.py), for the letters agents/dead_letter.py
writes: whole copies go back where they came from, truncated ones nowhere."""

from __future__ import annotations

import pytest

from scripts.dlq import DeadLetter, redrive_target, summary
from streams import topics
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
