"""Versioned, validated records that cross topics.

Wire format is JSON (orjson). Parsing is hand-written rather than model-based because it runs
once per request on the hot path and must turn every defect into one readable reason for the
dead-letter topic.
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import orjson

# Re-exported: every parser and agent imports these from here.
from streams.wire import InvalidRecord as InvalidRecord
from streams.wire import decode_json_object as decode_json_object
from streams.wire import quoted

SCHEMA_VERSION = 1
CHANNELS: tuple[str, ...] = ("push", "email", "sms", "webhook", "in_app")
HIGH, NORMAL, LOW = "high", "normal", "low"
PRIORITIES: tuple[str, ...] = (HIGH, NORMAL, LOW)
PLATFORMS: tuple[str, ...] = ("ios", "android")
MAX_TEXT = 4000
MAX_ID = 200
# A whole request: title and body (4,000 characters each, up to 4 bytes apiece in UTF-8), ids,
# and a data map whose values are rendered into them. APNs and FCM carry 4 KB payloads, so
# nothing larger could ever be delivered; refused before it is parsed.
MAX_REQUEST_BYTES = 64 * 1024
# Placeholders filled from 'data' can make a 4,000-character template far longer (1,333
# copies of a 64 KB value): rendered text beyond this is refused instead of built.
MAX_RENDERED = 4 * MAX_TEXT


@dataclass(frozen=True, slots=True)
class NotificationRequest:
    notification_id: str
    user_id: str
    title: str
    body: str
    category: str = "general"
    priority: str = "normal"
    channels: tuple[str, ...] = ()  # empty: every channel the user allows
    idempotency_key: str = ""  # empty: the notification_id
    data: Mapping[str, str] = field(default_factory=dict)
    collapse_key: str | None = None
    ttl_seconds: int | None = None
    created_at: float = 0.0  # epoch seconds; 0 means "use the record's timestamp"
    fallback_channel: str | None = None  # tried once if every delivery finally fails
    push: Mapping[str, Any] = field(default_factory=dict)  # see parse_push_options

    @property
    def dedup_key(self) -> str:
        return self.idempotency_key or self.notification_id


@dataclass(frozen=True, slots=True)
class Preferences:
    user_id: str
    channels: Mapping[str, bool] = field(default_factory=dict)  # missing channel: allowed
    muted_categories: tuple[str, ...] = ()

    def allows_channel(self, channel: str) -> bool:
        return self.channels.get(channel, True)


@dataclass(frozen=True, slots=True)
class DeviceRegistration:
    user_id: str
    token: str
    platform: str
    action: str = "register"  # register | unregister


@dataclass(frozen=True, slots=True)
class Suppression:
    """An address that must not be used again (hard bounce, spam complaint, dead endpoint)."""

    user_id: str
    address: str
    reason: str
    action: str = "suppress"  # suppress | lift


@dataclass(frozen=True, slots=True)
class ContactUpdate:
    """A user's addresses; a field set to None removes it, a missing field leaves it alone."""

    user_id: str
    changes: Mapping[str, str | None]


CONTACT_FIELDS: tuple[str, ...] = ("email", "phone", "webhook_url")


# --------------------------------------------------------------------------- helpers


def _required_str(obj: Mapping[str, Any], key: str, limit: int = MAX_ID) -> str:
    value = obj.get(key)
    if not isinstance(value, str) or not value.strip():
        raise InvalidRecord(f"'{key}' is required and must be a non-empty string")
    if len(value) > limit:
        raise InvalidRecord(f"'{key}' is longer than {limit} characters")
    return value


def _optional_str(obj: Mapping[str, Any], key: str, limit: int = MAX_ID) -> str | None:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > limit:
        raise InvalidRecord(f"'{key}' must be a string of at most {limit} characters")
    return value


def _choice(obj: Mapping[str, Any], key: str, allowed: tuple[str, ...], default: str) -> str:
    value = obj.get(key, default)
    if value not in allowed:
        raise InvalidRecord(f"'{key}' must be one of {', '.join(allowed)}; got {quoted(value)}")
    return str(value)


def _string_map(obj: Mapping[str, Any], key: str) -> dict[str, str]:
    value = obj.get(key) or {}
    if not isinstance(value, dict):
        raise InvalidRecord(f"'{key}' must be an object")
    # Providers (FCM data, APNs custom keys) only carry strings: convert scalars, refuse nests.
    out: dict[str, str] = {}
    for k, v in value.items():
        if isinstance(v, (dict, list)):
            raise InvalidRecord(f"'{key}.{k[:80]}' must be a scalar")
        out[str(k)] = v if isinstance(v, str) else orjson.dumps(v).decode()
    return out


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


PUSH_OPTIONS: dict[str, type | tuple[type, ...]] = {
    "sound": str,
    "badge": int,
    "image": str,
    "mutable_content": bool,
    "content_available": bool,
}


def parse_push_options(obj: Mapping[str, Any]) -> dict[str, Any]:
    """``push``: how a push is presented (APNs aps fields, FCM notification image/sound)."""
    value = obj.get("push") or {}
    if not isinstance(value, dict):
        raise InvalidRecord("'push' must be an object")
    for key, item in value.items():
        kind = PUSH_OPTIONS.get(key)
        if kind is None:
            raise InvalidRecord(f"'push.{key[:80]}' is not one of {', '.join(PUSH_OPTIONS)}")
        if not isinstance(item, kind) or (kind is int and isinstance(item, bool)):
            raise InvalidRecord(f"'push.{key}' must be of type {getattr(kind, '__name__', kind)}")
    return dict(value)


def parse_request(raw: bytes | str | None, default_created_at: float = 0.0) -> NotificationRequest:
    """Validate one public request; raise InvalidRecord with the reason on any defect."""
    obj = decode_json_object(raw, MAX_REQUEST_BYTES)
    version = obj.get("schema_version", SCHEMA_VERSION)
    if version != SCHEMA_VERSION:
        raise InvalidRecord(
            f"unsupported schema_version {quoted(version)} (supported: {SCHEMA_VERSION})"
        )
    channels = obj.get("channels") or []
    if not isinstance(channels, list) or any(c not in CHANNELS for c in channels):
        raise InvalidRecord(f"'channels' must be a list drawn from {', '.join(CHANNELS)}")
    ttl = obj.get("ttl_seconds")
    if ttl is not None and (not isinstance(ttl, int) or isinstance(ttl, bool) or ttl < 0):
        raise InvalidRecord("'ttl_seconds' must be a non-negative integer")
    fallback = obj.get("fallback_channel")
    if fallback is not None and fallback not in CHANNELS:
        raise InvalidRecord(f"'fallback_channel' must be one of {', '.join(CHANNELS)}")
    created_at = obj.get("created_at", default_created_at)
    if not isinstance(created_at, (int, float)) or isinstance(created_at, bool):
        raise InvalidRecord("'created_at' must be epoch seconds")
    data = _string_map(obj, "data")
    return NotificationRequest(
        notification_id=_required_str(obj, "notification_id"),
        user_id=_required_str(obj, "user_id"),
        title=render(_required_str(obj, "title", MAX_TEXT), data),
        body=render(_required_str(obj, "body", MAX_TEXT), data),
        category=_optional_str(obj, "category") or "general",
        priority=_choice(obj, "priority", PRIORITIES, "normal"),
        channels=tuple(dict.fromkeys(channels)),
        idempotency_key=_optional_str(obj, "idempotency_key") or "",
        data=data,
        collapse_key=_optional_str(obj, "collapse_key"),
        ttl_seconds=ttl,
        created_at=float(created_at),
        fallback_channel=fallback,
        push=parse_push_options(obj),
    )


def parse_preferences(raw: bytes | str | None) -> Preferences:
    obj = decode_json_object(raw)
    channels = obj.get("channels") or {}
    if not isinstance(channels, dict) or any(
        k not in CHANNELS or not isinstance(v, bool) for k, v in channels.items()
    ):
        raise InvalidRecord("'channels' must map channel names to true/false")
    muted = obj.get("muted_categories") or []
    if not isinstance(muted, list) or not all(isinstance(c, str) for c in muted):
        raise InvalidRecord("'muted_categories' must be a list of strings")
    return Preferences(_required_str(obj, "user_id"), dict(channels), tuple(muted))


def parse_device(raw: bytes | str | None) -> DeviceRegistration:
    obj = decode_json_object(raw)
    return DeviceRegistration(
        user_id=_required_str(obj, "user_id"),
        token=_required_str(obj, "token", 512),
        platform=_choice(obj, "platform", PLATFORMS, ""),
        action=_choice(obj, "action", ("register", "unregister"), "register"),
    )


def parse_contact(raw: bytes | str | None) -> ContactUpdate:
    obj = decode_json_object(raw)
    changes: dict[str, str | None] = {}
    for key in CONTACT_FIELDS:
        if key in obj:
            value = _optional_str(obj, key, 2048)
            if value is not None and key == "email" and "@" not in value:
                raise InvalidRecord("'email' is not an e-mail address")
            if value is not None and key == "phone" and not value.startswith("+"):
                raise InvalidRecord("'phone' must be in E.164 form (+15551234567)")
            changes[key] = value
    if not changes:
        raise InvalidRecord(f"a contact update needs one of {', '.join(CONTACT_FIELDS)}")
    return ContactUpdate(_required_str(obj, "user_id"), changes)


def parse_suppression(raw: bytes | str | None) -> Suppression:
    obj = decode_json_object(raw)
    return Suppression(
        user_id=_required_str(obj, "user_id"),
        address=_required_str(obj, "address", 2048),
        reason=_optional_str(obj, "reason") or "unspecified",
        action=_choice(obj, "action", ("suppress", "lift"), "suppress"),
    )


def to_json(record: Any) -> bytes:
    """Serialise a record dataclass (or a plain dict) for a topic."""
    return orjson.dumps(asdict(record) if hasattr(record, "__dataclass_fields__") else record)
