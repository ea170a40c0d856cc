"""What a replay sends and why (scripts/replay_plan.py), from statuses folded as the status
agent folds them."""

from __future__ import annotations

from typing import Any

import msgspec

from config.vocabulary import EventStatus
from scripts.replay_plan import (
    DeliveryCandidate,
    Knowledge,
    ReplayCopy,
    RequestCandidate,
    Unreadable,
    Verdict,
    plan,
)
from streams.deliveries import Delivery, DeliveryEvent
from streams.records import NotificationRequest
from tables.status import NotificationState, fold

NOW = 10_000.0
REF = "notification-requests:0:7"
LANE_REF = "deliveries.email.normal:0:3"


def state(*events: tuple[str, str | None, dict[str, Any]]) -> NotificationState:
    folded: NotificationState | None = None
    for status, delivery_id, given in events:
        extra = dict(given)  # the same event may be folded into several states
        event = DeliveryEvent("n1", "u1", status, at=extra.pop("at", 100.0), **extra)
        folded = fold(folded, event if delivery_id is None else _with(event, delivery_id))
    assert folded is not None
    return folded


def _with(event: DeliveryEvent, delivery_id: str) -> DeliveryEvent:
    return msgspec.structs.replace(event, delivery_id=delivery_id)


def accepted(n: int) -> tuple[str, None, dict[str, Any]]:
    return (EventStatus.ACCEPTED, None, {"deliveries": n})


def outcome(status: str, delivery_id: str, **extra: Any) -> tuple[str, str, dict[str, Any]]:
    return (status, delivery_id, extra)


def request(**kw: Any) -> RequestCandidate:
    values: dict[str, Any] = {"created_at": NOW - 60, **kw}
    req = NotificationRequest("n1", "u1", "t", "b", **values)
    return RequestCandidate(REF, req, REF)


def delivery(delivery_id: str = "n1:email:aa", **kw: Any) -> DeliveryCandidate:
    values: dict[str, Any] = {"requested_at": NOW - 60, **kw}
    d = Delivery(delivery_id, "n1", "u1", "email", "u1@example.com", "t", "b", "normal", **values)
    return DeliveryCandidate(LANE_REF, d)


def one(candidate: Any, knowledge: Knowledge, again: bool = False) -> tuple[Verdict, str]:
    [judgement] = plan([candidate], knowledge, NOW, again)
    return judgement.verdict, judgement.why


def test_a_request_whose_deliveries_all_went_out_is_not_sent() -> None:
    k = Knowledge(statuses={"n1": state(accepted(2), outcome("sent", "d1"), outcome("sent", "d2"))})
    assert one(request(), k)[0] is Verdict.SENT


def test_a_request_with_a_dead_lettered_delivery_sends_only_that_one() -> None:
    failed = outcome("failed", "d2", reason="retries exhausted after 3 attempts: 503")
    k = Knowledge(statuses={"n1": state(accepted(2), outcome("sent", "d1"), failed)})
    [judgement] = plan([request()], k, NOW)
    assert (judgement.verdict, judgement.deliveries) == (Verdict.WOULD_SEND, ("d2",))
    assert "1 sent" in judgement.why and "retries exhausted" in judgement.why


def test_the_ledger_counts_as_sent_when_the_event_never_arrived() -> None:
    # The fan-out said 1 delivery and no event about it came through; the ledger holds it.
    k = Knowledge(statuses={"n1": state(accepted(1))}, ledger={"n1:push:aa": "apns"})
    assert one(request(), k) == (Verdict.SENT, "1 deliveries: 1 sent")
    retrying = state(accepted(1), outcome("retrying", "n1:push:aa"))
    k = Knowledge(statuses={"n1": retrying}, ledger={"n1:push:aa": "apns", "n10:push:aa": "fcm"})
    assert one(request(), k) == (Verdict.SENT, "1 deliveries: 1 sent")


def test_a_dead_address_is_reported_not_sent() -> None:
    dead = outcome("failed", "d1", reason="invalid_recipient: 410 Unregistered")
    k = Knowledge(statuses={"n1": state(accepted(1), dead)})
    assert one(request(), k)[0] is Verdict.SUPPRESSED


def test_past_its_ttl_a_request_is_reported_expired() -> None:
    k = Knowledge(statuses={"n1": state(accepted(1), outcome("failed", "d1", reason="503"))})
    verdict, why = one(request(ttl_seconds=30), k)
    assert verdict is Verdict.EXPIRED and why == "ttl 30s ran out 30s ago"
    assert one(request(ttl_seconds=3600), k)[0] is Verdict.WOULD_SEND


def test_a_refused_request_stays_refused() -> None:
    k = Knowledge(statuses={"n1": state((EventStatus.REJECTED, None, {"reason": "rate_limited"}))})
    assert one(request(), k) == (Verdict.REJECTED, "status: rejected, rate_limited")


def test_a_request_that_reached_the_person_by_its_fallback_is_not_sent() -> None:
    k = Knowledge(
        statuses={
            "n1": state(
                accepted(1),
                outcome("failed", "n1:push:aa", reason="503"),
                (EventStatus.FELL_BACK, None, {"deliveries": 1, "channel": "sms"}),
                outcome("sent", "n1:sms:bb"),
            )
        }
    )
    assert one(request(), k) == (Verdict.SENT, "fell back to sms, which was sent")
    assert one(delivery("n1:push:aa"), k)[0] is Verdict.SENT


def test_a_request_never_resolved_goes_unless_expired() -> None:
    assert one(request(), Knowledge()) == (Verdict.WOULD_SEND, "no status: never resolved")
    assert one(request(ttl_seconds=10), Knowledge())[0] is Verdict.EXPIRED


def test_a_request_older_than_the_ledger_is_refused() -> None:
    k = Knowledge(statuses={"n1": state(accepted(1), outcome("failed", "d1"))}, ledger_seconds=30)
    assert one(request(), k)[0] is Verdict.TOO_OLD


def test_deliveries_are_judged_by_ledger_status_suppression_and_ttl() -> None:
    assert one(delivery(), Knowledge(ledger={"n1:email:aa": "smtp"})) == (
        Verdict.SENT,
        "ledger: sent by smtp",
    )
    failed = Knowledge(statuses={"n1": state(accepted(1), outcome("failed", "n1:email:aa"))})
    assert one(delivery(), failed)[0] is Verdict.WOULD_SEND
    gone = Knowledge(statuses=failed.statuses, suppressed=frozenset({("u1", "u1@example.com")}))
    assert one(delivery(), gone)[0] is Verdict.SUPPRESSED
    assert one(delivery(ttl_seconds=5), failed)[0] is Verdict.EXPIRED
    delivered = Knowledge(statuses={"n1": state(accepted(1), outcome("delivered", "n1:email:aa"))})
    assert one(delivery(), delivered) == (Verdict.SENT, "status: delivered")


def test_a_second_replay_waits_for_the_first_ones_outcome() -> None:
    failed_at_100 = {"n1": state(accepted(1), outcome("failed", "n1:email:aa", at=100.0))}
    replayed = Knowledge(statuses=failed_at_100, replayed={LANE_REF: 200.0})
    assert one(delivery(), replayed)[0] is Verdict.REPLAYED
    assert one(delivery(), replayed, again=True)[0] is Verdict.WOULD_SEND
    # It failed again after the replay: its outcome is in, and it may go once more.
    failed_again = state(
        accepted(1),
        outcome("failed", "n1:email:aa", at=100.0),
        outcome("failed", "n1:email:aa", at=300.0),
    )
    assert one(delivery(), Knowledge({"n1": failed_again}, replayed={LANE_REF: 200.0}))[0] is (
        Verdict.WOULD_SEND
    )
    sent = state(accepted(1), outcome("sent", "n1:email:aa", at=300.0))
    assert one(delivery(), Knowledge({"n1": sent}, replayed={LANE_REF: 200.0}))[0] is Verdict.SENT


def test_records_of_one_delivery_are_replayed_once_and_copies_never() -> None:
    judgements = plan(
        [
            delivery(),
            DeliveryCandidate("deliveries.email.normal:0:9", delivery().delivery),  # a retry's copy
            ReplayCopy("deliveries.email.normal:0:12", LANE_REF),
            Unreadable("deliveries.email.normal:0:13", "Expected `str`, got `int`"),
        ],
        Knowledge(),
        NOW,
    )
    assert [j.verdict for j in judgements] == [
        Verdict.WOULD_SEND,
        Verdict.REPEATED,
        Verdict.COPY,
        Verdict.UNREADABLE,
    ]


def test_a_replayed_request_waits_for_its_deliveries_not_for_its_acceptance() -> None:
    failed = outcome("failed", "d1", at=100.0)
    reaccepted = (EventStatus.ACCEPTED, None, {"deliveries": 1, "at": 300.0})
    k = Knowledge(statuses={"n1": state(accepted(1), failed, reaccepted)}, replayed={REF: 200.0})
    assert one(request(), k)[0] is Verdict.REPLAYED
    failed_again = outcome("failed", "d1", at=400.0)
    k = Knowledge(
        statuses={"n1": state(accepted(1), failed, reaccepted, failed_again)}, replayed={REF: 200.0}
    )
    assert one(request(), k)[0] is Verdict.WOULD_SEND


def test_a_held_notification_is_left_to_its_hold_and_a_capped_one_is_not_sent() -> None:
    held = state(accepted(1), outcome("sent", "d1"), ("held", None, {"reason": "12345.000"}))
    verdict, why = one(request(), Knowledge(statuses={"n1": held}))
    assert (verdict, why) == (
        Verdict.HELD,
        "held until 12345.000 (quiet hours): its hold will send it",
    )
    capped = state(("capped", None, {"reason": "daily cap of 2 reached"}))
    verdict, why = one(request(), Knowledge(statuses={"n1": capped}))
    assert (verdict, why) == (Verdict.REJECTED, "status: capped, daily cap of 2 reached")
