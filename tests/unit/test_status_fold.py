"""Folding delivery events into a notification's status."""

from __future__ import annotations

from streams.deliveries import (
    ACCEPTED,
    ALREADY_SENT,
    DUPLICATE_SUPPRESSED,
    FAILED,
    REJECTED,
    RETRYING,
    SENT,
    DeliveryEvent,
)
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


def test_a_send_known_only_from_the_ledger_counts_as_sent() -> None:
    """A crash after the ledger write but before the ``sent`` event: the record is read again,
    the ledger suppresses the send, and that report is what the status learns the send from."""
    state = fold(None, ev(ACCEPTED, deliveries=1))
    state = fold(
        state,
        ev(DUPLICATE_SUPPRESSED, "d1", channel="email", provider="smtp", reason=ALREADY_SENT),
    )
    assert state["status"] == SENT
    assert state["deliveries"]["d1"]["provider"] == "smtp"


def test_a_repeated_report_never_takes_a_final_state_back() -> None:
    state = fold(None, ev(ACCEPTED, deliveries=1))
    state = fold(state, ev(SENT, "d1", channel="push", provider="apns"))
    state = fold(state, ev(DUPLICATE_SUPPRESSED, "d1", channel="push", reason="read twice"))
    state = fold(state, ev(RETRYING, "d1", channel="push", reason="late copy"))
    assert state["status"] == SENT
    assert state["deliveries"]["d1"]["status"] == SENT
    assert state["deliveries"]["d1"]["duplicates_suppressed"] == 1


def test_a_request_read_again_after_a_crash_does_not_double_what_is_expected() -> None:
    state = fold(None, ev(ACCEPTED, deliveries=2))
    state = fold(state, ev(SENT, "d1", channel="push"))
    state = fold(state, ev(ACCEPTED, deliveries=2))  # the intake re-read the request
    state = fold(state, ev(SENT, "d2", channel="email"))
    assert (state["status"], state["expected"]) == (SENT, 2)


def test_held_channels_keep_it_open_until_released_and_a_release_read_twice_counts_once() -> None:
    # E-mail went at arrival, push was held: sent e-mail alone is not "sent".
    state = fold(None, ev(ACCEPTED, deliveries=1))
    state = fold(state, ev("held", reason="1796190000.000"))
    state = fold(state, ev(SENT, "mail", channel="email"))
    assert (state["status"], state["holding"]) == ("partially_sent", True)
    for _ in range(2):  # the hold read again after a crash releases it twice
        state = fold(state, ev("released", reason="push", deliveries=2))
    assert (state["expected"], state["holding"]) == (3, False)
    state = fold(fold(state, ev(SENT, "p1", channel="push")), ev(SENT, "p2", channel="push"))
    assert state["status"] == SENT


def test_wholly_held_then_released_to_nothing_and_capped() -> None:
    state = fold(None, ev("held", reason="1796190000.000"))
    assert (state["status"], state["expected"]) == ("held", 0)
    state = fold(state, ev("released", reason="push: category_muted"))
    assert (state["status"], state["reason"]) == (REJECTED, "category_muted")
    capped = fold(None, ev("capped", reason="daily cap of 2 reached"))
    assert (capped["status"], capped["reason"]) == ("capped", "daily cap of 2 reached")


def test_expired_is_final_and_a_notification_of_expired_deliveries_expired() -> None:
    state = fold(None, ev(ACCEPTED, deliveries=2))
    state = fold(state, ev("expired", "d1", channel="push", reason="61s old, max age 60s"))
    state = fold(state, ev(RETRYING, "d1", channel="push"))  # a late report never reopens it
    assert state["deliveries"]["d1"]["status"] == "expired"
    state = fold(state, ev("deferred", "d2", channel="push", reason="circuit_open: apns"))
    assert state["status"] == "accepted" and state["deliveries"]["d2"]["attempts"] == 0
    state = fold(state, ev("expired", "d2", channel="push"))
    assert state["status"] == "expired"


def test_expired_beside_a_failure_is_a_failure() -> None:
    state = fold(None, ev(ACCEPTED, deliveries=2))
    state = fold(state, ev("expired", "d1", channel="push"))
    state = fold(state, ev(FAILED, "d2", channel="sms"))
    assert state["status"] == "failed"


def test_an_erased_users_history_keeps_its_outcomes_and_nothing_that_names_them() -> None:
    from tables.status import ERASED_USER, anonymised

    state = None
    for event in [
        DeliveryEvent("n1", "u1", ACCEPTED, at=1.0, deliveries=3),
        DeliveryEvent("n1", "u1", SENT, at=2.0, delivery_id="n1:push:aa", channel="push"),
        DeliveryEvent(
            "n1",
            "u1",
            FAILED,
            at=2.0,
            delivery_id="n1:email:bb",
            channel="email",
            reason="smtp: 550 5.1.1 <ada@example.com> unknown",
        ),
        DeliveryEvent("n1", "u1", RETRYING, at=2.0, delivery_id="n1:sms:cc", channel="sms"),
    ]:
        state = fold(state, event)
    assert state is not None
    erased = anonymised(state)
    assert erased["user_id"] == ERASED_USER
    # Ids hold a digest of the address: renamed. The retrying one will never be sent.
    assert {k: v["status"] for k, v in erased["deliveries"].items()} == {
        "email-0": FAILED,
        "push-1": SENT,
        "sms-2": "cancelled",
    }
    assert "ada@" not in str(erased) and "u1" not in str(erased)
    assert erased["status"] == "sent"
    assert anonymised(erased) == erased  # idempotent
