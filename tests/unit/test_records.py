"""Validation of the public request schema and the control records."""

from __future__ import annotations

import re

import orjson
import pytest

from config.vocabulary import PushOptions
from streams.records import (
    InvalidRecord,
    parse_contact,
    parse_device,
    parse_preferences,
    parse_request,
    render,
)


def request(**fields: object) -> bytes:
    base: dict[str, object] = {
        "notification_id": "n-1",
        "user_id": "u-1",
        "title": "Order {order_id}",
        "body": "Your order {order_id} shipped",
        "data": {"order_id": 42},
    }
    base.update(fields)
    return orjson.dumps(base)


def test_valid_request_is_rendered_and_defaulted() -> None:
    parsed = parse_request(request(), default_created_at=12.5)
    assert parsed.title == "Order 42"
    assert parsed.body == "Your order 42 shipped"
    assert parsed.data == {"order_id": "42"}
    assert parsed.priority == "normal"
    assert parsed.channels == ()
    assert parsed.dedup_key == "n-1"
    assert parsed.created_at == 12.5


def test_idempotency_key_wins_over_notification_id() -> None:
    assert parse_request(request(idempotency_key="order-42")).dedup_key == "order-42"


def test_duplicate_channels_are_collapsed_in_order() -> None:
    parsed = parse_request(request(channels=["sms", "push", "sms"]))
    assert parsed.channels == ("sms", "push")


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"", "empty message"),
        (b"{not json", "malformed JSON"),
        (b"[1, 2]", "expected a JSON object"),
        (request(user_id=""), "'user_id' is required"),
        (request(notification_id=None), "Expected `str`, got `null` - at `$.notification_id`"),
        (request(priority="urgent"), "Invalid enum value 'urgent' - at `$.priority`"),
        (request(channels=["pigeon"]), "Invalid enum value 'pigeon' - at `$.channels[0]`"),
        (request(ttl_seconds=-1), "Expected `int` >= 0 - at `$.ttl_seconds`"),
        (request(schema_version=2), "unsupported schema_version 2"),
        (request(data={"nested": {"a": 1}}), "got `object` - at `$.data[...]`"),
        (request(title="Hi {name}"), "placeholder '{name}' has no value"),
        (request(title="Hi {0.__class__}"), "is not a plain name"),
        (request(created_at="yesterday"), "Expected `float`, got `str` - at `$.created_at`"),
    ],
)
def test_invalid_requests_say_why(raw: bytes, reason: str) -> None:
    with pytest.raises(InvalidRecord, match=re.escape(reason)):
        parse_request(raw)


def test_push_options_are_checked() -> None:
    parsed = parse_request(request(push={"sound": "a.caf", "badge": 2, "mutable_content": True}))
    assert parsed.push == PushOptions(sound="a.caf", badge=2, mutable_content=True)
    badge = "Expected `int`, got `bool` - at `$.push.badge`"
    with pytest.raises(InvalidRecord, match=re.escape(badge)):
        parse_request(request(push={"badge": True}))
    with pytest.raises(InvalidRecord, match=re.escape("unknown field `volume` - at `$.push`")):
        parse_request(request(push={"volume": 11}))


def test_render_escapes_braces() -> None:
    assert render("{{literal}} {x}", {"x": "1"}) == "{literal} 1"


def test_control_records() -> None:
    prefs = parse_preferences(
        b'{"user_id":"u","channels":{"sms":false},"muted_categories":["marketing"]}'
    )
    assert not prefs.allows_channel("sms") and prefs.allows_channel("push")
    device = parse_device(b'{"user_id":"u","token":"abc","platform":"ios"}')
    assert (device.platform, device.action) == ("ios", "register")
    contact = parse_contact(b'{"user_id":"u","email":"a@b.c","phone":null}')
    assert contact.changes == {"email": "a@b.c", "phone": None}


@pytest.mark.parametrize(
    ("parser", "raw", "reason"),
    [
        (parse_device, b'{"user_id":"u","token":"t","platform":"windows"}', "`\\$.platform`"),
        (parse_contact, b'{"user_id":"u"}', "needs one of"),
        (parse_contact, b'{"user_id":"u","phone":"5551234"}', "E.164"),
        (
            parse_preferences,
            b'{"user_id":"u","channels":{"push":"yes"}}',
            "Expected `bool`, got `str` - at `\\$.channels",
        ),
    ],
)
def test_invalid_control_records(parser, raw: bytes, reason: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidRecord, match=reason):
        parser(raw)
