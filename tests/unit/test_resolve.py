"""The resolve decision, fan-out, routing and the expiring-state helpers."""

from __future__ import annotations

import pytest

from agents.fanout import expand
from agents.resolve import (
    CATEGORY_MUTED,
    DUPLICATE,
    NO_CHANNEL_ALLOWED,
    RATE_LIMITED,
    Limits,
    UserState,
    decide,
)
from agents.route import lane, provider_for
from streams.deliveries import delivery_id_for
from streams.records import NotificationRequest, Preferences
from tables.expiring import Expiring, live_entries, window_hits

LIMITS = Limits(per_user=3)


def req(**kw: object) -> NotificationRequest:
    fields: dict[str, object] = {
        "notification_id": "n1",
        "user_id": "u1",
        "title": "t",
        "body": "b",
    }
    fields.update(kw)
    return NotificationRequest(**fields)  # type: ignore[arg-type]


def state(claim: str | None = None, prefs: Preferences | None = None, recent: int = 0) -> UserState:
    return UserState(claim, prefs, [100.0 + i for i in range(recent)])


def test_fresh_request_is_accepted_on_every_channel() -> None:
    decision = decide(req(), state(), "src", LIMITS)
    assert decision.accepted and not decision.replay
    assert decision.channels == ("push", "email", "sms", "webhook", "in_app")


def test_duplicate_from_another_record_is_rejected() -> None:
    assert decide(req(), state(claim="other:0:1"), "src", LIMITS).reason == DUPLICATE


def test_same_record_read_again_is_a_replay_not_a_duplicate() -> None:
    decision = decide(req(), state(claim="src", recent=3), "src", LIMITS)
    assert decision.accepted and decision.replay


def test_preferences_filter_channels() -> None:
    prefs = Preferences("u1", {"push": False, "sms": False})
    decision = decide(req(channels=("push", "email")), state(prefs=prefs), "s", LIMITS)
    assert decision.channels == ("email",)


def test_no_allowed_channel_and_muted_category() -> None:
    prefs = Preferences("u1", {"sms": False}, muted_categories=("marketing",))
    assert (
        decide(req(channels=("sms",)), state(prefs=prefs), "s", LIMITS).reason == NO_CHANNEL_ALLOWED
    )
    assert (
        decide(req(category="marketing"), state(prefs=prefs), "s", LIMITS).reason == CATEGORY_MUTED
    )


def test_rate_window_limits_but_exempts_security() -> None:
    assert decide(req(), state(recent=2), "s", LIMITS).accepted
    assert decide(req(), state(recent=3), "s", LIMITS).reason == RATE_LIMITED
    assert decide(req(category="security"), state(recent=30), "s", LIMITS).accepted


def test_window_hits_and_live_entries() -> None:
    assert window_hits([1.0, 5.0, 10.0], now=11.0, window_seconds=6.0) == [10.0]
    entries: dict[str, Expiring] = {
        "a": {"exp": 5.0},
        "b": {"exp": 20.0},
        "c": {"exp": 30.0},
        "d": {"exp": 25.0},
    }
    assert live_entries(entries, now=10.0, cap=2) == {"c": {"exp": 30.0}, "d": {"exp": 25.0}}


def test_fan_out_one_delivery_per_channel_and_address() -> None:
    deliveries = expand(
        req(priority="high", data={"k": "v"}),
        ("push", "email", "sms", "webhook", "in_app"),
        {"tok-ios": "ios", "tok-android": "android"},
        {"email": "a@example.com", "webhook_url": "http://hook"},  # no phone: no SMS
        "http://inbox/api",
    )
    assert [(d.channel, d.address, d.platform) for d in deliveries] == [
        ("push", "tok-ios", "ios"),
        ("push", "tok-android", "android"),
        ("email", "a@example.com", None),
        ("webhook", "http://hook", None),
        ("in_app", "http://inbox/api", None),
    ]
    assert len({d.delivery_id for d in deliveries}) == 5
    assert all(d.priority == "high" and d.data == {"k": "v"} for d in deliveries)


def test_delivery_ids_are_stable_across_fan_outs() -> None:
    assert delivery_id_for("n", "email", "a@b") == delivery_id_for("n", "email", "a@b")
    assert delivery_id_for("n", "email", "a@b") != delivery_id_for("n", "email", "c@d")


@pytest.mark.parametrize(
    ("channel", "platform", "provider"),
    [
        ("push", "ios", "apns"),
        ("push", "android", "fcm"),
        ("email", None, "smtp"),
        ("sms", None, "sms"),
        ("webhook", None, "webhook"),
        ("in_app", None, "webhook"),
    ],
)
def test_routing(channel: str, platform: str | None, provider: str) -> None:
    contacts = {"email": "e@x.y", "phone": "+15550001", "webhook_url": "http://h"}
    [delivery] = expand(
        req(priority="low"), (channel,), {"tok": platform or "ios"}, contacts, "http://i"
    )
    assert provider_for(delivery) == provider
    assert lane(delivery) == (channel, "low")
