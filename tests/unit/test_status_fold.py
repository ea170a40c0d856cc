"""Folding delivery events into a notification's status."""

from __future__ import annotations

from streams.deliveries import ACCEPTED, FAILED, REJECTED, SENT, DeliveryEvent
from tables.status import fold


def ev(status: str, delivery: str | None = None, **kw: object) -> DeliveryEvent:
    return DeliveryEvent("n1", "u1", status, at=1.0, delivery_id=delivery, **kw)  # type: ignore[arg-type]


def test_accepted_then_all_sent() -> None:
    state = fold(None, ev(ACCEPTED, deliveries=2))
    assert state["status"] == "accepted"
    state = fold(state, ev(SENT, "d1", channel="push"))
    assert state["status"] == "partially_sent"
    state = fold(state, ev(FAILED, "d2", channel="sms", reason="TransientError"))
    assert state["status"] == SENT
    assert state["deliveries"]["d2"]["reason"] == "TransientError"


def test_all_failed_and_rejected() -> None:
    state = fold(fold(None, ev(ACCEPTED, deliveries=1)), ev(FAILED, "d1"))
    assert state["status"] == FAILED
    rejected = fold(None, ev(REJECTED, reason="rate_limited"))
    assert (rejected["status"], rejected["reason"]) == (REJECTED, "rate_limited")


def test_the_same_notification_sent_again_does_not_undo_its_acceptance() -> None:
    state = fold(fold(None, ev(ACCEPTED, deliveries=1)), ev(SENT, "d1"))
    state = fold(state, ev(REJECTED, reason="duplicate"))
    assert state["status"] == "sent"
    assert state["repeats_rejected"] == 1
    assert "reason" not in state


def test_a_duplicate_that_was_never_accepted_is_rejected() -> None:
    state = fold(None, ev(REJECTED, reason="duplicate"))
    assert (state["status"], state["reason"]) == ("rejected", "duplicate")
