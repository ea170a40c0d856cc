"""Every parser turns any bytes into a record or an InvalidRecord with a reason: never another
exception (RecursionError, TypeError, MemoryError) and never a reason as large as the record."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from typing import Any

import orjson
import pytest

from streams.deliveries import Delivery, DeliveryEvent, parse_delivery, parse_event
from streams.records import (
    MAX_REQUEST_BYTES,
    InvalidRecord,
    parse_contact,
    parse_device,
    parse_preferences,
    parse_request,
    parse_suppression,
    render,
)
from streams.wire import MAX_RECORD_BYTES

PARSERS: list[Callable[[Any], Any]] = [
    parse_request,
    parse_preferences,
    parse_device,
    parse_contact,
    parse_suppression,
    parse_delivery,
    parse_event,
]

GARBAGE: dict[str, Any] = {
    "tombstone": None,
    "empty": b"",
    "binary": os.urandom(512),
    "invalid utf-8": b"\xff\xfe\x00\x01",
    "nested 100k deep": b"[" * 100_000 + b"]" * 100_000,
    "object nested 100k deep": b'{"a":' * 100_000 + b"1" + b"}" * 100_000,
    "array": b"[1, 2, 3]",
    "string": b'"just a string"',
    "number": b"42",
    "null": b"null",
    "huge": orjson.dumps({"user_id": "u", "blob": "x" * (MAX_RECORD_BYTES + 1)}),
    "lone surrogate": b'{"user_id": "\\ud800"}',
    "integer beyond 64 bits": b'{"user_id": 123456789012345678901234567890}',
    "NaN": b'{"at": NaN}',
    "not bytes": 12345,
}


@pytest.mark.parametrize("parser", PARSERS, ids=lambda p: p.__name__)
@pytest.mark.parametrize("raw", GARBAGE.values(), ids=GARBAGE.keys())
def test_garbage_is_an_invalid_record_with_a_short_reason(
    parser: Callable[[Any], Any], raw: Any
) -> None:
    with pytest.raises(InvalidRecord) as caught:
        parser(raw)
    assert 0 < len(str(caught.value)) < 300


def test_deep_nesting_says_so() -> None:
    # Not an object at all: orjson's own depth limit (1024) answers, not the stack. Where a
    # typed field is nested, the first level that breaks the schema answers; where an unknown
    # field is (skipped, not typed), the decoder's recursion guard does.
    with pytest.raises(InvalidRecord, match="malformed JSON: depth limit exceeded"):
        parse_request(b"[" * 2000 + b"]" * 2000)
    with pytest.raises(InvalidRecord, match=re.escape("at `$.data[...]`")):
        parse_request(b'{"data":' * 2000 + b"1" + b"}" * 2000)
    with pytest.raises(InvalidRecord, match="malformed JSON: nested too deeply"):
        parse_request(request(extra=1)[:-1] + b',"more":' + b"[" * 2000 + b"]" * 2000 + b"}")


def test_a_request_over_its_limit_is_refused_before_parsing() -> None:
    big = orjson.dumps({"notification_id": "n", "user_id": "u", "title": "t", "body": "x" * 70_000})
    with pytest.raises(InvalidRecord, match=f"larger than the {MAX_REQUEST_BYTES}-byte limit"):
        parse_request(big)
    # Even invalid JSON that big: the size is checked first.
    with pytest.raises(InvalidRecord, match="byte limit"):
        parse_request(b"{" * 1_000_000)


def request(**fields: object) -> bytes:
    base: dict[str, object] = {"notification_id": "n", "user_id": "u", "title": "t", "body": "b"}
    return orjson.dumps({**base, **fields})


@pytest.mark.parametrize(
    "fields",
    [
        {"notification_id": 1},
        {"user_id": ["u"]},
        {"title": {"a": 1}},
        {"body": None},
        {"category": 5},
        {"priority": ["high"]},
        {"priority": {"x": 1}},
        {"channels": "push"},
        {"channels": [["push"]]},
        {"channels": [{"a": 1}]},
        {"data": "x"},
        {"data": {"k": [1]}},
        {"data": {"k": {"nested": 1}}},
        {"push": ["sound"]},
        {"push": {"badge": "1"}},
        {"ttl_seconds": "60"},
        {"ttl_seconds": 1.5},
        {"ttl_seconds": True},
        {"created_at": None},
        {"created_at": [1]},
        {"fallback_channel": 1},
        {"fallback_channel": ["sms"]},
        {"idempotency_key": 7},
        {"collapse_key": {"a": 1}},
        {"schema_version": "x" * 10_000},
        {"priority": "x" * 10_000},
    ],
)
def test_wrong_types_in_a_request_are_invalid_records(fields: dict[str, Any]) -> None:
    with pytest.raises(InvalidRecord) as caught:
        parse_request(request(**fields))
    assert len(str(caught.value)) < 300


@pytest.mark.parametrize(
    ("parser", "record"),
    [
        (parse_preferences, {"user_id": "u", "channels": ["sms"]}),
        (parse_preferences, {"user_id": "u", "channels": {"sms": "no"}}),
        (parse_preferences, {"user_id": "u", "muted_categories": "marketing"}),
        (parse_preferences, {"user_id": "u", "muted_categories": [1]}),
        (parse_preferences, {"user_id": 42}),
        (parse_device, {"user_id": "u", "token": 1, "platform": "ios"}),
        (parse_device, {"user_id": "u", "token": "t", "platform": ["ios"]}),
        (parse_device, {"user_id": "u", "token": "t", "platform": "ios", "action": {}}),
        (parse_contact, {"user_id": "u", "email": 5}),
        (parse_contact, {"user_id": "u", "phone": ["+1"]}),
        (parse_contact, {"user_id": {"id": 1}, "email": "a@b.c"}),
        (parse_suppression, {"user_id": "u", "address": None}),
        (parse_suppression, {"user_id": "u", "address": "a", "reason": 3}),
    ],
)
def test_wrong_types_in_control_records_are_invalid_records(
    parser: Callable[[Any], Any], record: dict[str, Any]
) -> None:
    with pytest.raises(InvalidRecord):
        parser(orjson.dumps(record))


def delivery(**fields: object) -> bytes:
    base = Delivery(
        delivery_id="n:email:1",
        notification_id="n",
        user_id="u",
        channel="email",
        address="a@example.com",
        title="t",
        body="b",
        priority="normal",
    )
    return orjson.dumps({**orjson.loads(base.to_json()), **fields})


def test_a_valid_delivery_round_trips() -> None:
    raw = delivery(push={}, errors=[{"attempt": 1, "error": "503", "at": 1.0}], attempt=1)
    assert parse_delivery(raw).attempt == 1


@pytest.mark.parametrize(
    "fields",
    [
        {"title": 5},
        {"attempt": "2"},
        {"attempt": 1.5},
        {"attempt": True},
        {"attempt": -1},
        {"not_before": "soon"},
        {"not_before": -5.0},
        {"requested_at": None},
        {"data": {"k": 1}},
        {"data": ["k"]},
        {"errors": "none"},
        {"errors": [1, 2]},
        {"is_fallback": "yes"},
        {"push": {"badge": "one"}},
        {"push": {"volume": 11}},
        {"ttl_seconds": "1h"},
        {"platform": 1},
        {"channel": ["email"]},
        {"unknown_field": 1},
        {"x" * 10_000: 1},
    ],
)
def test_wrong_types_in_a_delivery_are_invalid_records(fields: dict[str, Any]) -> None:
    with pytest.raises(InvalidRecord) as caught:
        parse_delivery(delivery(**fields))
    assert len(str(caught.value)) < 300


def test_a_delivery_missing_fields_names_them() -> None:
    with pytest.raises(InvalidRecord, match="missing address, body"):
        parse_delivery(
            orjson.dumps(
                {
                    "delivery_id": "d",
                    "notification_id": "n",
                    "user_id": "u",
                    "channel": "email",
                    "title": "t",
                    "priority": "low",
                }
            )
        )


@pytest.mark.parametrize(
    "fields",
    [
        {"at": "now"},
        {"status": 1},
        {"deliveries": "3"},
        {"deliveries": 2.5},
        {"segments": "2"},
        {"reason": {"why": 1}},
        {"delivery_id": 5},
        {"extra": True},
    ],
)
def test_wrong_types_in_a_delivery_event_are_invalid_records(fields: dict[str, Any]) -> None:
    event = DeliveryEvent(notification_id="n", user_id="u", status="sent", at=1.0)
    with pytest.raises(InvalidRecord):
        parse_event(orjson.dumps({**orjson.loads(event.to_json()), **fields}))


def test_a_valid_delivery_event_round_trips() -> None:
    event = DeliveryEvent(notification_id="n", user_id="u", status="sent", at=1, segments=2)
    assert parse_event(event.to_json()) == event


@pytest.mark.parametrize(
    ("template", "reason"),
    [
        ("{x:>999999999}", "has a format spec"),
        ("{x!r}", "has a format spec"),
        ("{x[0]}", "is not a plain name"),
        ("{}", "is not a plain name"),
        ("{x", "template error"),
        ("x}", "template error"),
    ],
)
def test_templates_take_plain_names_only(template: str, reason: str) -> None:
    with pytest.raises(InvalidRecord, match=reason):
        render(template, {"x": "1"})


def test_rendered_text_is_bounded_before_it_is_built() -> None:
    with pytest.raises(InvalidRecord, match="rendered text is longer than"):
        render("{x}" * 1000, {"x": "y" * 60_000})
    assert render("{x}-{x}", {"x": "ab"}) == "ab-ab"


def test_an_error_history_cannot_grow_a_delivery_past_the_lane_limit() -> None:
    d = parse_delivery(delivery())
    for attempt in range(20):
        d = d.after_failure("503 " + "<html>" * 100_000, float(attempt), 0.0)
    assert parse_delivery(d.to_json()).attempt == 20
