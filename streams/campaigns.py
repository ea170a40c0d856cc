"""Campaign records (the ``campaigns`` topic) and user attributes (``user-attributes``).

A campaign is one JSON record, key = ``campaign_id``; a later record ``{"campaign_id": ...,
"action": "cancel"}`` cancels it. Each matching user gets one ordinary request, whose id and
idempotency key are ``campaign:<campaign_id>:<user_id>``: a user scanned twice (a crash between
a send and the cursor's write) is a duplicate the intake's dedup refuses, never a second send.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from enum import StrEnum
from typing import Annotated, Any

import msgspec
from msgspec import Meta

from config.vocabulary import NO_PUSH_OPTIONS, Channel, Priority, PushOptions
from streams.localtime import zone
from streams.records import MAX_ID, Id, InvalidRecord, Scalar, Text, render
from streams.segments import Predicate, SegmentError, compile_segment
from streams.wire import JsonInt, NonNegativeInt, Raw, RecordDecoder

SCHEMA_VERSION = 1
# Campaign ids become part of notification ids and table keys ("<id>:<partition>"), so no ':'.
CampaignId = Annotated[str, Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.\-]+$")]
AttributeName = Annotated[str, Meta(max_length=64, pattern=r"^[A-Za-z_][A-Za-z0-9_.\-]*$")]
AttributeValue = Annotated[str, Meta(max_length=1000)] | JsonInt | float | bool
MAX_ATTRIBUTES = 100
TIMEZONE_ATTRIBUTE = "timezone"
LOCALE_ATTRIBUTE = "locale"
NOTIFICATION_PREFIX = "campaign:"
DEFAULT_CAMPAIGN_CATEGORY = "marketing"
DEFAULT_THROTTLE = 1000.0  # notifications per second, the whole campaign


class CampaignAction(StrEnum):
    START = "start"
    CANCEL = "cancel"


class CampaignFields(msgspec.Struct, frozen=True):
    """A campaign as producers write it (README, "Campaigns")."""

    campaign_id: CampaignId
    action: CampaignAction = CampaignAction.START
    schema_version: JsonInt = SCHEMA_VERSION
    segment: Annotated[str, Meta(max_length=4000)] | None = None
    title: Text | None = None
    body: Text | None = None
    # Instead of title and body: each user's request names the template, rendered at resolve
    # time in the user's locale, with the user's attributes as ``user`` (agents/templating.py).
    template_id: Annotated[str, Meta(min_length=1, max_length=128)] | None = None
    data: dict[str, Scalar] | None = None
    channels: list[Channel] | None = None
    category: Id | None = None
    priority: Priority = Priority.LOW
    throttle_per_second: Annotated[float, Meta(gt=0, le=10_000_000)] = DEFAULT_THROTTLE
    start_at: Annotated[float, Meta(ge=0)] | None = None  # epoch seconds; None: at once
    collapse_key: Id | None = None
    ttl_seconds: NonNegativeInt | None = None
    push: PushOptions | None = None


class Campaign(msgspec.Struct, frozen=True):
    """A validated campaign start; ``matches`` is its compiled segment."""

    campaign_id: str
    segment: str
    title: str
    body: str
    matches: Predicate
    data: dict[str, str] = msgspec.field(default_factory=dict)
    channels: tuple[str, ...] = ()  # empty: every channel each user allows
    category: str = DEFAULT_CAMPAIGN_CATEGORY
    priority: str = Priority.LOW
    throttle_per_second: float = DEFAULT_THROTTLE
    start_at: float | None = None
    collapse_key: str | None = None
    ttl_seconds: int | None = None
    push: PushOptions = NO_PUSH_OPTIONS
    template_id: str | None = None


class CampaignCancel(msgspec.Struct, frozen=True):
    campaign_id: str


class AttributesFields(msgspec.Struct, frozen=True):
    user_id: Id
    attributes: dict[AttributeName, AttributeValue | None]


class AttributesUpdate(msgspec.Struct, frozen=True):
    """A user's attributes to merge: a value of None removes the attribute."""

    user_id: str
    changes: Mapping[str, str | int | float | bool | None]


_CAMPAIGN = RecordDecoder(CampaignFields, name="campaign")
_ATTRIBUTES = RecordDecoder(AttributesFields, name="user-attributes record")


def parse_campaign(raw: Raw) -> Campaign | CampaignCancel:
    wire = _CAMPAIGN.decode(raw)
    if wire.schema_version != SCHEMA_VERSION:
        raise InvalidRecord(
            f"unsupported schema_version {wire.schema_version} (supported: {SCHEMA_VERSION})"
        )
    if wire.action is CampaignAction.CANCEL:
        return CampaignCancel(wire.campaign_id)
    segment, title, body = wire.segment or "", wire.title or "", wire.body or ""
    required = [("segment", segment)]
    if wire.template_id is None:
        required += [("title", title), ("body", body)]
    for name, value in required:
        if not value.strip():
            raise InvalidRecord(f"'{name}' is required to start a campaign")
    try:
        matches = compile_segment(segment)
    except SegmentError as exc:
        raise InvalidRecord(f"segment: {exc}") from None
    return Campaign(
        campaign_id=wire.campaign_id,
        segment=segment,
        title=title,
        body=body,
        matches=matches,
        data={k: _text(v) for k, v in (wire.data or {}).items()},
        channels=tuple(dict.fromkeys(wire.channels)) if wire.channels else (),
        category=wire.category or DEFAULT_CAMPAIGN_CATEGORY,
        priority=wire.priority,
        throttle_per_second=wire.throttle_per_second,
        start_at=wire.start_at,
        collapse_key=wire.collapse_key,
        ttl_seconds=wire.ttl_seconds,
        push=wire.push or NO_PUSH_OPTIONS,
        template_id=wire.template_id,
    )


def parse_attributes(raw: Raw) -> AttributesUpdate:
    wire = _ATTRIBUTES.decode(raw)
    if not wire.user_id.strip():
        raise InvalidRecord("'user_id' is required and must be a non-empty string")
    if len(wire.attributes) > MAX_ATTRIBUTES:
        raise InvalidRecord(f"at most {MAX_ATTRIBUTES} attributes per record")
    _check_profile(wire.attributes)
    return AttributesUpdate(wire.user_id, wire.attributes)


_LOCALE = re.compile(r"^[A-Za-z]{2,8}([-_][A-Za-z0-9]{1,8})*$")


def _check_profile(attributes: Mapping[str, Any]) -> None:
    """The attributes the pipeline itself reads: ``timezone`` (an IANA zone, for quiet hours
    and the daily cap) and ``locale`` (a BCP 47 tag, for templates). A wrong one is refused
    here, with the record, rather than silently read as UTC or the default language."""
    tz = attributes.get(TIMEZONE_ATTRIBUTE)
    if tz is not None:
        if not isinstance(tz, str):
            raise InvalidRecord("attribute 'timezone' must be a string (Europe/Lisbon)")
        try:
            zone(tz)
        except InvalidRecord as exc:
            raise InvalidRecord(f"attribute 'timezone': {exc}") from None
    locale = attributes.get(LOCALE_ATTRIBUTE)
    if locale is not None and not (isinstance(locale, str) and _LOCALE.match(locale)):
        raise InvalidRecord(f"attribute 'locale' is not a language tag (pt-BR): {locale!r:.60}")


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return msgspec.json.encode(value).decode()


def notification_id(campaign_id: str, user_id: str) -> str:
    """Deterministic per (campaign, user); a user id too long to fit is hashed."""
    nid = f"{NOTIFICATION_PREFIX}{campaign_id}:{user_id}"
    if len(nid) <= MAX_ID:
        return nid
    digest = hashlib.blake2s(user_id.encode(), digest_size=16).hexdigest()
    return f"{NOTIFICATION_PREFIX}{campaign_id}:#{digest}"


def campaign_of(notification_id: str) -> str | None:
    """The campaign a notification id belongs to, or None for any other notification."""
    if not notification_id.startswith(NOTIFICATION_PREFIX):
        return None
    campaign_id, sep, _ = notification_id[len(NOTIFICATION_PREFIX) :].partition(":")
    return campaign_id if sep and campaign_id else None


def _escaped(text: str) -> str:
    """Rendered text travels as a request template again: its braces must stay literal."""
    return text.replace("{", "{{").replace("}", "}}")


_ENCODER = msgspec.json.Encoder()


def request_for(
    campaign: Campaign, user_id: str, attributes: Mapping[str, Any], now: float
) -> bytes:
    """One user's request (JSON, as any producer writes it). Placeholders are filled from the
    campaign's ``data`` and the user's attributes (an attribute wins on the same name); one
    without a value raises InvalidRecord, and the user is skipped and counted."""
    values = {**campaign.data, **{k: _text(v) for k, v in attributes.items() if v is not None}}
    nid = notification_id(campaign.campaign_id, user_id)
    request: dict[str, Any] = {
        "notification_id": nid,
        "idempotency_key": nid,
        "user_id": user_id,
        "category": campaign.category,
        "priority": campaign.priority,
        "created_at": now,
    }
    if campaign.template_id is not None:
        request["template_id"] = campaign.template_id
    else:
        request["title"] = _escaped(render(campaign.title, values))
        request["body"] = _escaped(render(campaign.body, values))
    if campaign.channels:
        request["channels"] = list(campaign.channels)
    if campaign.data:
        request["data"] = campaign.data
    if campaign.collapse_key is not None:
        request["collapse_key"] = campaign.collapse_key
    if campaign.ttl_seconds is not None:
        request["ttl_seconds"] = campaign.ttl_seconds
    if campaign.push != NO_PUSH_OPTIONS:
        request["push"] = campaign.push
    return _ENCODER.encode(request)
