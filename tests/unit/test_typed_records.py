"""Typed records (msgspec), the vocabulary enums and the typed table values: a wrong type names
its field, the wire stays byte for byte what it was, and table values survive the changelog."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from enum import StrEnum
from typing import Any

import orjson
import pytest
from faust.serializers import codecs

from agents.dead_letter import DeadLetterFailed, LetterHeaders
from agents.deliver import outbound
from agents.failure_plan import FailureAction
from config.errors import NotifyError
from config.settings import BrokerFlavor, Settings
from config.vocabulary import (
    Channel,
    ContactField,
    DeviceAction,
    DuplicateReason,
    EventStatus,
    NotificationStatus,
    Platform,
    Priority,
    PushOptions,
    RejectReason,
    SuppressionAction,
)
from patches.pin import UpstreamChanged
from providers.base import (
    ConfigurationError,
    OutboundMessage,
    Provider,
    ProviderError,
    ProviderName,
)
from streams import records
from streams.deliveries import Delivery, DeliveryEvent, parse_delivery, parse_event
from streams.records import (
    InvalidRecord,
    parse_contact,
    parse_device,
    parse_preferences,
    parse_request,
    parse_suppression,
)
from tables import status
from tables.dedup import DedupEntry
from tables.fallbacks import FallbackEntry
from tables.inbox import InboxHead, InboxMessage
from tables.ledger import LedgerEntry
from tables.preferences import StoredPreferences
from tables.suppressions import SuppressionEntry

REQUEST = {"notification_id": "n", "user_id": "u", "title": "t", "body": "b"}
DELIVERY = {
    "delivery_id": "n:email:1",
    "notification_id": "n",
    "user_id": "u",
    "channel": "email",
    "address": "a@example.com",
    "title": "t",
    "body": "b",
    "priority": "normal",
}
EVENT = {"notification_id": "n", "user_id": "u", "status": "sent", "at": 1.0}

# parser, a valid record, the field given a wrong type, that value, the path named.
WRONG_TYPES: list[tuple[Callable[[bytes], Any], dict[str, Any], str, Any, str]] = [
    (parse_request, REQUEST, "user_id", 42, "$.user_id"),
    (parse_request, REQUEST, "ttl_seconds", "1h", "$.ttl_seconds"),
    (parse_request, REQUEST, "channels", ["push", 3], "$.channels[1]"),
    (parse_request, REQUEST, "push", {"sound": 1}, "$.push.sound"),
    (parse_request, REQUEST, "created_at", True, "$.created_at"),
    (parse_preferences, {"user_id": "u"}, "muted_categories", [1], "$.muted_categories[0]"),
    (parse_device, {"user_id": "u", "token": "t", "platform": "ios"}, "token", 7, "$.token"),
    (parse_contact, {"user_id": "u", "phone": "+1555"}, "email", ["a@b.c"], "$.email"),
    (parse_suppression, {"user_id": "u", "address": "a"}, "reason", 3, "$.reason"),
    (parse_delivery, DELIVERY, "attempt", "2", "$.attempt"),
    (
        parse_delivery,
        DELIVERY,
        "errors",
        [{"attempt": 1, "error": 5, "at": 1.0}],
        "$.errors[0].error",
    ),
    (parse_delivery, DELIVERY, "push", {"badge": "1"}, "$.push.badge"),
    (parse_event, EVENT, "deliveries", 2.5, "$.deliveries"),
    (parse_event, EVENT, "at", "now", "$.at"),
]


@pytest.mark.parametrize(
    ("parser", "valid", "field", "value", "path"),
    WRONG_TYPES,
    ids=[f"{p.__name__}-{f}" for p, _, f, _, _ in WRONG_TYPES],
)
def test_a_wrong_type_is_an_invalid_record_naming_its_field(
    parser: Callable[[bytes], Any], valid: dict[str, Any], field: str, value: Any, path: str
) -> None:
    parser(orjson.dumps(valid))  # the record is valid as given
    with pytest.raises(InvalidRecord, match=re.escape(f"- at `{path}`")):
        parser(orjson.dumps({**valid, field: value}))


def test_an_integer_beyond_64_bits_is_refused_like_orjson_refused_it() -> None:
    with pytest.raises(InvalidRecord, match=re.escape("`$.ttl_seconds`")):
        parse_request(orjson.dumps(REQUEST)[:-1] + b',"ttl_seconds":' + b"9" * 30 + b"}")
    with pytest.raises(InvalidRecord, match=re.escape("`$.data[...]`")):
        parse_request(orjson.dumps(REQUEST)[:-1] + b',"data":{"x":' + b"9" * 30 + b"}}")


def test_invalid_utf8_inside_a_string_is_malformed_json() -> None:
    with pytest.raises(InvalidRecord, match="malformed JSON"):
        parse_request(b'{"notification_id":"n","user_id":"\xed\xa0\x80","title":"t","body":"b"}')


def test_unknown_fields_are_tolerated_on_public_records_and_refused_on_internal_ones() -> None:
    assert parse_request(orjson.dumps({**REQUEST, "campaign": {"id": 7}})).user_id == "u"
    with pytest.raises(InvalidRecord, match="unknown field `campaign`"):
        parse_delivery(orjson.dumps({**DELIVERY, "campaign": 7}))


def test_a_field_name_as_long_as_a_record_gives_a_short_reason() -> None:
    with pytest.raises(InvalidRecord) as caught:
        parse_event(orjson.dumps({**EVENT, "x" * 10_000: 1}))
    assert "unknown field" in str(caught.value) and len(str(caught.value)) < 300


def test_dead_letter_headers_are_checked_where_they_are_read() -> None:
    headers = LetterHeaders("why", "t:1:2", 12.5, truncated_from=1_050_011).encode()
    assert LetterHeaders.decode(headers) == LetterHeaders("why", "t:1:2", 12.5, 1_050_011)
    with pytest.raises(InvalidRecord, match=re.escape("`$.truncated_from`")):
        LetterHeaders.decode({**headers, "x-dlq-truncated": b"lots"})


# --------------------------------------------------------------------------- the wire, unchanged

# What the dataclass records wrote (orjson of asdict, None fields left out of an event), as
# ``git show issue10:streams/deliveries.py`` produces it for the same records.
OLD_DELIVERY = (
    b'{"delivery_id":"n1:push:ab","notification_id":"n1","user_id":"u1","channel":"push",'
    b'"address":"tok","title":"Hi \xc3\xa9","body":"Body","priority":"high","category":"orders",'
    b'"platform":"ios","data":{"k":"v"},"collapse_key":"c","ttl_seconds":60,'
    b'"requested_at":1795318497.66,"attempt":1,"not_before":1795318500.5,'
    b'"errors":[{"attempt":1,"error":"503","at":1795318498.25}],"fallback_channel":"sms",'
    b'"is_fallback":false,"push":{"sound":"a.caf","badge":0}}'
)
OLD_EVENTS = [
    b'{"notification_id":"n1","user_id":"u1","status":"sent","at":1795318497.66,'
    b'"delivery_id":"n1:push:ab","channel":"push","provider":"apns","requested_at":1.0,'
    b'"deliveries":0}',
    b'{"notification_id":"n1","user_id":"u1","status":"accepted","at":2.0,"requested_at":0.0,'
    b'"deliveries":3}',
]


def test_records_encode_to_the_bytes_the_dataclasses_wrote() -> None:
    delivery = Delivery(
        "n1:push:ab",
        "n1",
        "u1",
        Channel.PUSH,
        "tok",
        "Hi é",
        "Body",
        Priority.HIGH,
        category="orders",
        platform=Platform.IOS,
        data={"k": "v"},
        collapse_key="c",
        ttl_seconds=60,
        requested_at=1795318497.66,
        attempt=1,
        not_before=1795318500.5,
        errors=[{"attempt": 1, "error": "503", "at": 1795318498.25}],
        fallback_channel=Channel.SMS,
        push=PushOptions(sound="a.caf", badge=0),
    )
    assert delivery.to_json() == OLD_DELIVERY
    assert parse_delivery(OLD_DELIVERY) == delivery
    sent = DeliveryEvent(
        "n1",
        "u1",
        EventStatus.SENT,
        1795318497.66,
        delivery_id="n1:push:ab",
        channel=Channel.PUSH,
        provider=ProviderName.APNS,
        requested_at=1.0,
    )
    accepted = DeliveryEvent("n1", "u1", EventStatus.ACCEPTED, 2.0, deliveries=3)
    assert [sent.to_json(), accepted.to_json()] == OLD_EVENTS
    assert [parse_event(raw) for raw in OLD_EVENTS] == [sent, accepted]


def test_control_records_written_by_the_pipeline_keep_their_shape() -> None:
    unregister = records.DeviceFields(
        "u1", "tok", Platform.IOS, DeviceAction.UNREGISTER, reason="gone"
    )
    assert records.to_json(unregister) == (
        b'{"user_id":"u1","token":"tok","platform":"ios","action":"unregister","reason":"gone"}'
    )
    suppress = records.SuppressionFields("u1", "a@b.c", reason="bounce: 550")
    assert records.to_json(suppress) == b'{"user_id":"u1","address":"a@b.c","reason":"bounce: 550"}'
    assert parse_suppression(records.to_json(suppress)).action == SuppressionAction.SUPPRESS


VOCABULARY: list[type[StrEnum]] = [
    Channel,
    Priority,
    Platform,
    EventStatus,
    NotificationStatus,
    RejectReason,
    DuplicateReason,
    DeviceAction,
    SuppressionAction,
    ContactField,
    FailureAction,
    BrokerFlavor,
    ProviderName,
]


@pytest.mark.parametrize("vocabulary", VOCABULARY, ids=lambda v: v.__name__)
def test_every_word_serialises_as_the_string_it_always_was(vocabulary: type[StrEnum]) -> None:
    table_codec = codecs.get_codec("json")  # what Faust writes table values with
    for member in vocabulary:
        value = member.value
        assert member == value and hash(member) == hash(value) and f"{member}" == value
        quoted = f'"{value}"'.encode()
        assert orjson.dumps(member) == json.dumps(member).encode() == quoted
        assert records.to_json(member) == quoted
        assert table_codec.dumps({member: member}) == b"{" + quoted + b":" + quoted + b"}"


def test_the_old_names_are_the_old_strings() -> None:
    assert records.CHANNELS == ("push", "email", "sms", "webhook", "in_app")
    assert records.PRIORITIES == ("high", "normal", "low")
    assert records.PLATFORMS == ("ios", "android")
    assert records.CONTACT_FIELDS == ("email", "phone", "webhook_url")
    assert [type(c) for c in records.CHANNELS] == [str] * 5  # usable as orjson dict keys
    assert orjson.dumps({c: True for c in records.CHANNELS})
    assert (RejectReason.NO_ADDRESS, DuplicateReason.ALREADY_SENT) == (
        "no_reachable_address",
        "already sent",
    )
    assert Settings(broker_flavor="tansu").broker_flavor is BrokerFlavor.TANSU  # type: ignore[arg-type]


# --------------------------------------------------------------------------- table values

TABLE_VALUES: dict[str, Any] = {
    "dedup": {"k": DedupEntry(exp=10.5, src="notification-requests:3:41")},
    "ledger": {"n:email:1": LedgerEntry(exp=10.5, provider=ProviderName.SMTP_BACKUP)},
    "fallbacks": {"n": FallbackEntry(pending=2, fallback=Channel.SMS, sent=False, exp=9.0)},
    "inbox head": InboxHead(count=3, keep=50),
    "inbox message": InboxMessage(notification_id="n", title="t", body="b", data={}, at=1.5),
    "inbox head, some read": InboxHead(count=3, keep=50, read_upto=2),
    "inbox message, read and archived": InboxMessage(
        notification_id="n", title="t", body="b", data={}, at=1.5, read_at=2.0, archived_at=3.0
    ),
    "preferences": StoredPreferences(channels={Channel.SMS: False}, muted_categories=["m"]),
    "suppressions": {"a@b.c": SuppressionEntry(reason="bounce", at=3.0)},
    "devices": {"tok": Platform.IOS},
    "contacts": {ContactField.EMAIL: "a@b.c"},
    "rate windows": [1.0, 2.5],
}


@pytest.mark.parametrize("value", TABLE_VALUES.values(), ids=TABLE_VALUES.keys())
def test_a_table_value_round_trips_through_the_changelog_codec(value: Any) -> None:
    codec = codecs.get_codec("json")
    assert codec.loads(codec.dumps(value)) == value


def test_a_status_read_back_from_the_changelog_folds_on_like_the_one_in_memory() -> None:
    codec = codecs.get_codec("json")
    state = status.fold(None, DeliveryEvent("n", "u", EventStatus.ACCEPTED, 1.0, deliveries=2))
    state = status.fold(state, DeliveryEvent("n", "u", EventStatus.SENT, 2.0, delivery_id="d1"))
    stored = codec.loads(codec.dumps(state))
    assert stored == state and stored["status"] == NotificationStatus.PARTIALLY_SENT
    last = DeliveryEvent("n", "u", EventStatus.FAILED, 3.0, delivery_id="d2", reason="x")
    assert status.fold(stored, last) == status.fold(state, last)
    assert status.fold(stored, last)["status"] == NotificationStatus.SENT


# --------------------------------------------------------------------------- messages, errors


def test_the_provider_message_is_the_deliverys_fields_by_name() -> None:
    delivery = parse_delivery(
        orjson.dumps({**DELIVERY, "data": {"k": "v"}, "push": {"image": "https://i"}})
    )
    message = outbound(delivery)
    for name in OutboundMessage.__struct_fields__:
        assert getattr(message, name) == getattr(delivery, name), name
    assert message.push.image == "https://i"


def test_every_project_error_is_a_notify_error() -> None:
    for error in (InvalidRecord, ProviderError, ConfigurationError, DeadLetterFailed):
        assert issubclass(error, NotifyError), error
    assert issubclass(UpstreamChanged, NotifyError)
    assert issubclass(InvalidRecord, ValueError)  # callers that catch ValueError still do


async def test_every_provider_refuses_a_send_before_start_the_same_way() -> None:
    from providers.apns import ApnsProvider
    from providers.fcm import FcmProvider
    from providers.sms import SmsProvider
    from providers.smtp import SmtpProvider
    from providers.webhook import WebhookProvider

    settings = Settings()
    message = OutboundMessage("d", "n", "u", "email", "a@example.com", "t", "b")
    hook = OutboundMessage("d", "n", "u", "webhook", "http://hook.test/x", "t", "b")
    clients: list[tuple[Provider, OutboundMessage]] = [
        (ApnsProvider(settings), message),
        (FcmProvider(settings), message),
        (SmsProvider(settings), message),
        (SmtpProvider(settings), message),
        (WebhookProvider(settings), hook),
    ]
    for provider, sent in clients:
        with pytest.raises(ConfigurationError) as caught:
            await provider.send(sent)
        assert (caught.value.provider, caught.value.code) == (provider.name, "not_started")
