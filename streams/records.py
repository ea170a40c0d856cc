"""Versioned, validated records that cross topics: the public request and the control records.

Each arrives as JSON; its wire struct (``RequestFields`` ...) is the schema producers write,
decoded by msgspec with every type and length checked (streams/wire.py), and unknown fields
ignored, as they always were. What msgspec cannot say (a non-blank id, the schema version,
placeholders, an e-mail address) is checked after it, in plain code, before the record the
agents use is built.
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from typing import Annotated
from urllib.parse import urlsplit

import msgspec
import orjson
from msgspec import UNSET, Meta, UnsetType

from config.vocabulary import (
    NO_PUSH_OPTIONS,
    Channel,
    ChannelField,
    ContactField,
    DeviceAction,
    Platform,
    PlatformField,
    Priority,
    PriorityField,
    PushOptions,
    SuppressionAction,
)

# Re-exported: every parser and agent imports these from here.
from streams.wire import InvalidRecord as InvalidRecord
from streams.wire import JsonInt, NonNegativeInt, Raw, RecordDecoder, quoted
from streams.wire import decode_json_object as decode_json_object

SCHEMA_VERSION = 1
# The vocabulary as tuples of its plain strings, under the names scripts, tests and the bench
# import (plain, so that they stay usable as orjson dict keys, which must be exact strs).
CHANNELS: tuple[str, ...] = tuple(c.value for c in Channel)
HIGH, NORMAL, LOW = Priority.HIGH.value, Priority.NORMAL.value, Priority.LOW.value
PRIORITIES: tuple[str, ...] = tuple(p.value for p in Priority)
PLATFORMS: tuple[str, ...] = tuple(p.value for p in Platform)
CONTACT_FIELDS: tuple[str, ...] = tuple(f.value for f in ContactField)
DEFAULT_CATEGORY = "general"
MAX_TEXT = 4000
MAX_ID = 200
MAX_TOKEN = 512
MAX_ADDRESS = 2048
# A whole request: title and body (4,000 characters each, up to 4 bytes apiece in UTF-8), ids,
# and a data map whose values are rendered into them. APNs and FCM carry 4 KB payloads, so
# nothing larger could ever be delivered; refused before it is parsed.
MAX_REQUEST_BYTES = 64 * 1024
# Placeholders filled from 'data' can make a 4,000-character template far longer (1,333
# copies of a 64 KB value): rendered text beyond this is refused instead of built.
MAX_RENDERED = 4 * MAX_TEXT

Id = Annotated[str, Meta(max_length=MAX_ID)]
Text = Annotated[str, Meta(max_length=MAX_TEXT)]
Token = Annotated[str, Meta(max_length=MAX_TOKEN)]
Address = Annotated[str, Meta(max_length=MAX_ADDRESS)]
# What 'data' may hold: providers (FCM data, APNs custom keys) carry only strings, so scalars
# are converted to their JSON text and anything nested is refused.
Scalar = str | JsonInt | float | bool | None


# --------------------------------------------------------------------------- wire schemas


class RequestFields(msgspec.Struct, frozen=True):
    """A public request as producers write it (README, "Sending a notification")."""

    notification_id: Id
    user_id: Id
    # Required unless ``template_id`` names a template (then they are the fallback text of a
    # channel the template has no part for, and may be left out).
    title: Text | None = None
    body: Text | None = None
    template_id: Annotated[str, Meta(max_length=128)] | None = None
    locale: Annotated[str, Meta(max_length=35)] | None = None  # else the user's attribute
    schema_version: JsonInt = SCHEMA_VERSION
    category: Id | None = None
    priority: Priority = Priority.NORMAL
    channels: list[Channel] | None = None
    idempotency_key: Id | None = None
    data: dict[str, Scalar] | None = None
    collapse_key: Id | None = None
    ttl_seconds: NonNegativeInt | None = None
    created_at: float | UnsetType = UNSET  # absent: the record's timestamp (null is refused)
    fallback_channel: Channel | None = None
    push: PushOptions | None = None
    # Every status change of this notification is POSTed here, signed (agents/callbacks.py).
    callback_url: Address | None = None


HhMm = Annotated[str, Meta(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")]


class QuietWindowFields(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Local wall time, in the user's ``timezone`` attribute; 22:00-07:00 wraps midnight."""

    start: HhMm
    end: HhMm


class PreferencesFields(msgspec.Struct, frozen=True):
    user_id: Id
    channels: dict[Channel, bool] | None = None
    muted_categories: list[str] | None = None
    quiet_hours: dict[Channel, QuietWindowFields] | None = None
    daily_cap: Annotated[int, Meta(ge=1, le=1_000_000)] | None = None


class DeviceFields(msgspec.Struct, frozen=True):
    user_id: Id
    token: Token
    platform: PlatformField
    action: DeviceAction = DeviceAction.REGISTER
    # Why a token was unregistered (the provider's answer, agents/outcomes.py): for whoever
    # reads the topic, not applied.
    reason: str | None = None


class ContactFields(msgspec.Struct, frozen=True):
    """A field left out leaves the address alone; ``null`` removes it."""

    user_id: Id
    email: Address | UnsetType | None = UNSET
    phone: Address | UnsetType | None = UNSET
    webhook_url: Address | UnsetType | None = UNSET


class SuppressionFields(msgspec.Struct, frozen=True, omit_defaults=True):
    user_id: Id
    address: Address
    reason: Id | None = None
    action: SuppressionAction = SuppressionAction.SUPPRESS


# --------------------------------------------------------------------------- records


class RenderedPart(msgspec.Struct, frozen=True, omit_defaults=True):
    """One channel's text rendered from a template (streams/rendering.py): push, in-app and
    webhook title and body; the e-mail subject (``title``), text (``body``) and HTML; the SMS
    text (``body``)."""

    title: str
    body: str
    html: str | None = None


class NotificationRequest(msgspec.Struct, frozen=True):
    """A validated request, its title and body rendered."""

    notification_id: str
    user_id: str
    title: str
    body: str
    category: str = DEFAULT_CATEGORY
    priority: PriorityField = Priority.NORMAL
    channels: tuple[ChannelField, ...] = ()  # empty: every channel the user allows
    idempotency_key: str = ""  # empty: the notification_id
    data: dict[str, str] = msgspec.field(default_factory=dict)
    collapse_key: str | None = None
    ttl_seconds: int | None = None
    created_at: float = 0.0  # epoch seconds; 0 means "use the record's timestamp"
    fallback_channel: ChannelField | None = None  # tried once if every delivery finally fails
    push: PushOptions = NO_PUSH_OPTIONS
    template_id: str | None = None  # rendered per channel at resolve time (agents/templating.py)
    locale: str | None = None
    # Channel -> its rendered template part (title, body, e-mail HTML); a channel not in it
    # gets ``title`` and ``body``.
    content: dict[str, RenderedPart] = msgspec.field(default_factory=dict)
    callback_url: str | None = None  # status changes are POSTed here (agents/callbacks.py)

    @property
    def dedup_key(self) -> str:
        return self.idempotency_key or self.notification_id


class Preferences(msgspec.Struct, frozen=True):
    user_id: str
    channels: Mapping[str, bool] = msgspec.field(default_factory=dict)  # missing: allowed
    muted_categories: tuple[str, ...] = ()
    # Channel -> (start, end) in minutes after local midnight (streams/localtime.py).
    quiet_hours: Mapping[str, tuple[int, int]] = msgspec.field(default_factory=dict)
    daily_cap: int | None = None  # notifications per local day; None: no cap

    def allows_channel(self, channel: str) -> bool:
        return self.channels.get(channel, True)


class DeviceRegistration(msgspec.Struct, frozen=True):
    user_id: str
    token: str
    platform: str  # a Platform
    action: DeviceAction = DeviceAction.REGISTER


class Suppression(msgspec.Struct, frozen=True):
    """An address that must not be used again (hard bounce, spam complaint, dead endpoint)."""

    user_id: str
    address: str
    reason: str
    action: SuppressionAction = SuppressionAction.SUPPRESS


class ContactUpdate(msgspec.Struct, frozen=True):
    """A user's addresses; a field set to None removes it, a missing field leaves it alone."""

    user_id: str
    changes: Mapping[str, str | None]  # ContactField -> address


# --------------------------------------------------------------------------- helpers


def _non_blank(value: str, key: str) -> str:
    if not value.strip():
        raise InvalidRecord(f"'{key}' is required and must be a non-empty string")
    return value


def _strings(data: Mapping[str, Scalar] | None) -> dict[str, str]:
    """Scalars as their JSON text (42 -> "42", true -> "true"), as providers carry strings."""
    if not data:
        return {}
    return {k: v if isinstance(v, str) else orjson.dumps(v).decode() for k, v in data.items()}


_FORMATTER = string.Formatter()


def render(text: str, data: Mapping[str, str], limit: int = MAX_RENDERED) -> str:
    """Fill ``{name}`` placeholders from the request's data (``{{`` escapes a brace).

    Plain names only: no attribute access or indexing (``{0.__class__}``), and no format specs
    or conversions, since a spec like ``{x:>999999999}`` would build a gigabyte string. The
    length is added up before anything is joined, so an oversized result is never built."""
    if "{" not in text and "}" not in text:
        return text
    parts: list[str] = []
    size = 0
    try:
        for literal, name, spec, conversion in _FORMATTER.parse(text):
            parts.append(literal)
            size += len(literal)
            if name is None:
                continue
            if not name.isidentifier():
                raise InvalidRecord(f"template placeholder '{{{name}}}' is not a plain name")
            if spec or conversion:
                raise InvalidRecord(f"template placeholder '{{{name}}}' has a format spec")
            value = data.get(name)
            if value is None:
                raise InvalidRecord(f"template placeholder '{{{name}}}' has no value in 'data'")
            size += len(value)
            if size > limit:
                raise InvalidRecord(f"rendered text is longer than {limit} characters")
            parts.append(value)
    except InvalidRecord:
        raise
    except ValueError as exc:  # an unmatched brace
        raise InvalidRecord(f"template error: {exc}") from None
    return "".join(parts)


# --------------------------------------------------------------------------- parsers


def _first_required(record: str, missing: list[str]) -> str:
    return f"'{missing[0]}' is required and must be a non-empty string"


_REQUEST = RecordDecoder(RequestFields, MAX_REQUEST_BYTES, missing=_first_required)
_PREFERENCES = RecordDecoder(PreferencesFields, missing=_first_required)
_DEVICE = RecordDecoder(DeviceFields, missing=_first_required)
_CONTACT = RecordDecoder(ContactFields, missing=_first_required)
_SUPPRESSION = RecordDecoder(SuppressionFields, missing=_first_required)


def parse_request(raw: Raw, default_created_at: float = 0.0) -> NotificationRequest:
    """Validate one public request; raise InvalidRecord with the reason on any defect."""
    wire = _REQUEST.decode(raw)
    if wire.schema_version != SCHEMA_VERSION:
        raise InvalidRecord(
            f"unsupported schema_version {wire.schema_version} (supported: {SCHEMA_VERSION})"
        )
    data = _strings(wire.data)
    if wire.template_id is not None:
        # Rendered later, with the user's locale (agents/templating.py); inline text, if any,
        # is kept as it came (the template's language is Jinja, not ``{name}``).
        if not wire.template_id.strip():
            raise InvalidRecord("'template_id' must be a non-empty string")
        title, body = wire.title or "", wire.body or ""
    else:
        title = render(_non_blank(wire.title or "", "title"), data)
        body = render(_non_blank(wire.body or "", "body"), data)
    return NotificationRequest(
        notification_id=_non_blank(wire.notification_id, "notification_id"),
        user_id=_non_blank(wire.user_id, "user_id"),
        title=title,
        body=body,
        template_id=wire.template_id,
        locale=wire.locale,
        category=wire.category or DEFAULT_CATEGORY,
        priority=wire.priority,
        channels=tuple(dict.fromkeys(wire.channels)) if wire.channels else (),
        idempotency_key=wire.idempotency_key or "",
        data=data,
        collapse_key=wire.collapse_key,
        ttl_seconds=wire.ttl_seconds,
        created_at=default_created_at if wire.created_at is UNSET else wire.created_at,
        fallback_channel=wire.fallback_channel,
        push=wire.push or NO_PUSH_OPTIONS,
        callback_url=None if wire.callback_url is None else _http_url(wire.callback_url),
    )


def _http_url(value: str) -> str:
    """A callback URL the webhook provider can POST to (it refuses anything else at send time,
    when the notification is long accepted: refused here, the producer hears of it)."""
    try:
        parts = urlsplit(value)
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidRecord(f"'callback_url' is not an http(s) URL: {quoted(value)}")
    return value


def parse_preferences(raw: Raw) -> Preferences:
    wire = _PREFERENCES.decode(raw)
    channels: dict[str, bool] = {c: allowed for c, allowed in (wire.channels or {}).items()}
    quiet: dict[str, tuple[int, int]] = {}
    for channel, window in (wire.quiet_hours or {}).items():
        if window.start == window.end:
            raise InvalidRecord(f"quiet_hours.{channel}: start and end are the same time")
        quiet[channel] = (_minutes(window.start), _minutes(window.end))
    return Preferences(
        _non_blank(wire.user_id, "user_id"),
        channels,
        tuple(wire.muted_categories or ()),
        quiet,
        wire.daily_cap,
    )


def _minutes(hh_mm: str) -> int:
    hours, minutes = hh_mm.split(":")
    return int(hours) * 60 + int(minutes)


def parse_device(raw: Raw) -> DeviceRegistration:
    wire = _DEVICE.decode(raw)
    return DeviceRegistration(
        user_id=_non_blank(wire.user_id, "user_id"),
        token=_non_blank(wire.token, "token"),
        platform=wire.platform,
        action=wire.action,
    )


def parse_contact(raw: Raw) -> ContactUpdate:
    wire = _CONTACT.decode(raw)
    changes: dict[str, str | None] = {}
    for key in ContactField:
        value = getattr(wire, key)
        if value is UNSET:
            continue
        if value is not None and key is ContactField.EMAIL and "@" not in value:
            raise InvalidRecord("'email' is not an e-mail address")
        if value is not None and key is ContactField.PHONE and not value.startswith("+"):
            raise InvalidRecord("'phone' must be in E.164 form (+15551234567)")
        changes[key] = value
    if not changes:
        raise InvalidRecord(f"a contact update needs one of {', '.join(CONTACT_FIELDS)}")
    return ContactUpdate(_non_blank(wire.user_id, "user_id"), changes)


def parse_suppression(raw: Raw) -> Suppression:
    wire = _SUPPRESSION.decode(raw)
    return Suppression(
        user_id=_non_blank(wire.user_id, "user_id"),
        address=_non_blank(wire.address, "address"),
        reason=wire.reason or "unspecified",
        action=wire.action,
    )


_ENCODER = msgspec.json.Encoder()


def to_json(record: object) -> bytes:
    """Serialise a record struct (or a plain dict) for a topic."""
    return _ENCODER.encode(record)
