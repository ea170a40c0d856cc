"""A fallback is fanned out again from a delivery of another channel (``request_of``): it must
be presented like the original request."""

from __future__ import annotations

from agents.fanout import expand, request_of
from config.vocabulary import PushOptions
from streams.records import NotificationRequest

REQUEST = NotificationRequest(
    notification_id="n1",
    user_id="u1",
    title="Order 42",
    body="shipped",
    category="orders",
    priority="high",
    data={"order_id": "42"},
    collapse_key="order-42",
    ttl_seconds=3600,
    created_at=12.5,
    fallback_channel="push",
    push=PushOptions(sound="chime.caf", badge=3, image="https://cdn.test/42.png"),
)
CONTACTS = {"email": "u1@example.com"}
TOKENS = {"a" * 64: "ios"}


def test_fallback_to_push_keeps_the_push_presentation() -> None:
    [email] = expand(REQUEST, ("email",), TOKENS, CONTACTS, "")
    [push] = expand(request_of(email), ("push",), TOKENS, CONTACTS, "", is_fallback=True)
    assert push.push == REQUEST.push
    assert (push.collapse_key, push.ttl_seconds) == ("order-42", 3600)
    assert (push.platform, push.is_fallback, push.priority) == ("ios", True, "high")
    assert (push.title, push.body, push.data, push.category) == (
        "Order 42",
        "shipped",
        {"order_id": "42"},
        "orders",
    )
    assert push.requested_at == 12.5


def test_every_request_field_a_delivery_carries_survives_request_of() -> None:
    [email] = expand(REQUEST, ("email",), TOKENS, CONTACTS, "")
    rebuilt = request_of(email)
    for name in (
        "notification_id",
        "user_id",
        "title",
        "body",
        "category",
        "priority",
        "data",
        "collapse_key",
        "ttl_seconds",
        "created_at",
        "fallback_channel",
        "push",
    ):
        assert getattr(rebuilt, name) == getattr(REQUEST, name), name
