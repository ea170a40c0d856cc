"""Read receipts in the status fold, and the pure side of status callbacks (streams/callbacks.py):
which changes call back, under which ids, with what body, on which lane and provider."""

from __future__ import annotations

import msgspec
import orjson
import pytest

from agents.route import lane, provider_for
from config.vocabulary import DeliveryKind, EventStatus, NotificationStatus
from providers.base import ProviderName
from streams.callbacks import (
    StatusChange,
    callback_delivery,
    callback_id,
    caught_up,
    lane_key,
    worth_a_callback,
)
from streams.deliveries import DeliveryEvent, parse_delivery
from streams.records import InvalidRecord, parse_request
from streams.topics import CALLBACK_LANE
from tables.status import NotificationState, fold

URL = "https://client.example.com/status"


def ev(status: str, at: float = 1.0, user: str = "u1", **kw: object) -> DeliveryEvent:
    return DeliveryEvent("n1", user, status, at=at, **kw)  # type: ignore[arg-type]


def accepted(deliveries: int = 1) -> NotificationState:
    return fold(None, ev(EventStatus.ACCEPTED, deliveries=deliveries, callback_url=URL))


# --------------------------------------------------------------------------- read receipts


def test_a_read_notification_is_read_whatever_its_other_deliveries_do() -> None:
    state = accepted(deliveries=2)
    state = fold(state, ev(EventStatus.SENT, 2.0, delivery_id="d1", channel="in_app"))
    assert state["status"] == NotificationStatus.PARTIALLY_SENT
    state = fold(state, ev(EventStatus.READ, 3.0))
    assert (state["status"], state["read_at"]) == (NotificationStatus.READ, 3.0)
    state = fold(state, ev(EventStatus.FAILED, 4.0, delivery_id="d2", channel="sms"))
    assert state["status"] == NotificationStatus.READ
    assert state["deliveries"]["d2"]["status"] == EventStatus.FAILED


def test_the_first_read_counts_and_a_rejected_notification_stays_rejected() -> None:
    state = fold(fold(accepted(), ev(EventStatus.READ, 5.0)), ev(EventStatus.READ, 9.0))
    assert state["read_at"] == 5.0
    rejected = fold(None, ev(EventStatus.REJECTED, reason="rate_limited"))
    rejected = fold(rejected, ev(EventStatus.READ, 2.0))
    assert rejected["status"] == NotificationStatus.REJECTED


def test_a_receipt_before_the_acceptance_is_kept_and_the_pipeline_names_the_user() -> None:
    # The receipt's caller named a user; the intake's event knows the recipient.
    state = fold(None, ev(EventStatus.READ, 2.0, user="as-the-caller-said"))
    assert (state["status"], state["user_id"]) == (NotificationStatus.READ, "as-the-caller-said")
    state = fold(state, ev(EventStatus.ACCEPTED, 1.0, deliveries=1, callback_url=URL))
    assert (state["status"], state["user_id"]) == (NotificationStatus.READ, "u1")
    assert (state["read_at"], state["callback_url"]) == (2.0, URL)
    # ... and a later receipt with another user id does not take it back.
    state = fold(state, ev(EventStatus.READ, 3.0, user="someone-else"))
    assert state["user_id"] == "u1"


# --------------------------------------------------------------------------- which changes


def test_which_folded_events_call_back() -> None:
    before = accepted()
    after = fold(before, ev(EventStatus.SENT, delivery_id="d1"))
    assert worth_a_callback(EventStatus.SENT, before, after)
    assert not worth_a_callback(EventStatus.RETRYING, before, before)
    assert not worth_a_callback(EventStatus.DUPLICATE_SUPPRESSED, before, before)
    # The same request again, after its acceptance: a repeat, no change to tell.
    repeat = fold(before, ev(EventStatus.REJECTED, reason="duplicate"))
    assert repeat["status"] == NotificationStatus.ACCEPTED
    assert not worth_a_callback(EventStatus.REJECTED, before, repeat)
    other = ev(EventStatus.REJECTED, reason="duplicate", callback_url="https://x.example/")
    assert fold(before, other)["callback_url"] == URL  # a duplicate's URL redirects nothing
    read = fold(before, ev(EventStatus.READ, 2.0))
    assert worth_a_callback(EventStatus.READ, before, read)
    assert not worth_a_callback(EventStatus.READ, read, fold(read, ev(EventStatus.READ, 3.0)))


def change(status: str, at: float = 1.0, **kw: object) -> StatusChange:
    return StatusChange("n1", "u1", status, "sent", at, **kw)  # type: ignore[arg-type]


def test_a_change_keeps_its_id_when_its_event_is_read_again_and_repeats_get_new_ones() -> None:
    sent = change(EventStatus.SENT, delivery_id="d1")
    assert callback_id(sent) == callback_id(change(EventStatus.SENT, 7.0, delivery_id="d1"))
    assert callback_id(sent) != callback_id(change(EventStatus.SENT, delivery_id="d2"))
    assert callback_id(sent) != callback_id(change(EventStatus.DELIVERED, delivery_id="d1"))
    # An accepted request resolved again after a crash: a new event time, the same change.
    assert callback_id(change(EventStatus.ACCEPTED, 1.0)) == callback_id(
        change(EventStatus.ACCEPTED, 2.0)
    )
    # Every open is news, and so is every hold.
    assert callback_id(change(EventStatus.OPENED, 1.0, delivery_id="d1")) != callback_id(
        change(EventStatus.OPENED, 2.0, delivery_id="d1")
    )
    assert callback_id(change(EventStatus.HELD, reason="100.000")) != callback_id(
        change(EventStatus.HELD, reason="200.000")
    )
    assert callback_id(sent).startswith("n1:callback:")


def test_a_callback_is_a_webhook_delivery_of_its_own_kind_lane_and_provider() -> None:
    sent = change(EventStatus.SENT, 2.5, delivery_id="d1", channel="push", provider="apns")
    delivery = parse_delivery(callback_delivery(sent, URL).to_json())
    assert (delivery.kind, delivery.channel, delivery.address) == (
        DeliveryKind.CALLBACK,
        "webhook",
        URL,
    )
    assert (lane(delivery), provider_for(delivery)) == (CALLBACK_LANE, ProviderName.CALLBACK)
    assert delivery.requested_at == 0.0  # never stale: a late callback still says what happened
    assert orjson.loads(delivery.body) == {
        "notification_id": "n1",
        "user_id": "u1",
        "status": "sent",
        "notification_status": "sent",
        "at": 2.5,
        "delivery_id": "d1",
        "channel": "push",
        "provider": "apns",
        "callback_id": delivery.delivery_id,
    }
    assert lane_key("u1") == b"u1#callback"


def test_a_notification_is_the_same_bytes_without_a_callback() -> None:
    """The new optional fields are left out of every record that does not use them."""
    notification = msgspec.structs.replace(
        callback_delivery(change(EventStatus.SENT), URL), kind=msgspec.UNSET
    )
    assert b"kind" not in notification.to_json()
    assert lane(notification) == ("webhook", "normal")
    assert b"callback_url" not in ev(EventStatus.ACCEPTED).to_json()


def test_changes_folded_before_the_url_was_known_are_caught_up() -> None:
    # Another worker's 'sent' and a receipt overtook the 'accepted' that carries the URL.
    early = fold(None, ev(EventStatus.SENT, 2.0, delivery_id="d1", channel="push"))
    early = fold(early, ev(EventStatus.RETRYING, 2.5, delivery_id="d2", channel="sms"))
    early = fold(early, ev(EventStatus.READ, 3.0))
    after = fold(early, ev(EventStatus.ACCEPTED, 1.0, deliveries=2, callback_url=URL))
    changes = list(caught_up("n1", after))
    assert [(c.status, c.delivery_id) for c in changes] == [("sent", "d1"), ("read", None)]
    # Under the ids their own events would have had.
    assert callback_id(changes[0]) == callback_id(change(EventStatus.SENT, 9.0, delivery_id="d1"))


# --------------------------------------------------------------------------- the request field


def request(**fields: object) -> bytes:
    return orjson.dumps(
        {"notification_id": "n1", "user_id": "u1", "title": "t", "body": "b"} | fields
    )


def test_a_request_may_name_a_callback_url() -> None:
    assert parse_request(request()).callback_url is None
    assert parse_request(request(callback_url=URL)).callback_url == URL


@pytest.mark.parametrize("url", ["ftp://x.example.com/", "not a url", "https://", "http://[::1"])
def test_a_callback_url_that_cannot_be_posted_to_is_refused(url: str) -> None:
    with pytest.raises(InvalidRecord, match="'callback_url' is not an http"):
        parse_request(request(callback_url=url))
