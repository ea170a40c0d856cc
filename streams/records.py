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

SCHEMA_VERSION = 1
CHANNELS: tuple[str, ...] = ("push", "email", "sms", "webhook", "in_app")
HIGH, NORMAL, LOW = "high", "normal", "low"
PRIORITIES: tuple[str, ...] = (HIGH, NORMAL, LOW)
PLATFORMS: tuple[str, ...] = ("ios", "android")
MAX_TEXT = 4000
MAX_ID = 200


class InvalidRecord(ValueError):
    """A record that can never be processed; the message is the dead-letter reason."""


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


def decode_json_object(raw: bytes | str | None) -> dict[str, Any]:
    if raw is None or raw == b"" or raw == "":
        raise InvalidRecord("empty message")
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidRecord(f"malformed JSON: {exc}") from None
    if not isinstance(value, dict):
        raise InvalidRecord(f"expected a JSON object, got {type(value).__name__}")
    return value


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
        raise InvalidRecord(f"'{key}' must be one of {', '.join(allowed)}; got {value!r}")
    return str(value)


def _string_map(obj: Mapping[str, Any], key: str) -> dict[str, str]:
    value = obj.get(key) or {}
    if not isinstance(value, dict):
        raise InvalidRecord(f"'{key}' must be an object")
    # Providers (FCM data, APNs custom keys) only carry strings: convert scalars, refuse nests.
    out: dict[str, str] = {}
    for k, v in value.items():
        if isinstance(v, (dict, list)):
            raise InvalidRecord(f"'{key}.{k}' must be a scalar")
        out[str(k)] = v if isinstance(v, str) else orjson.dumps(v).decode()
    return out


class _StrictFormatter(string.Formatter):
    """``{name}`` placeholders only: no attribute access, indexing or format specs."""

    def get_field(self, field_name: str, args: Any, kwargs: Any) -> Any:
        if not field_name.isidentifier():
            raise InvalidRecord(f"template placeholder '{{{field_name}}}' is not a plain name")
        if field_name not in kwargs:
            raise InvalidRecord(f"template placeholder '{{{field_name}}}' has no value in 'data'")
        return kwargs[field_name], field_name


_FORMATTER = _StrictFormatter()


def render(text: str, data: Mapping[str, str]) -> str:
    """Fill ``{name}`` placeholders from the request's data (``{{`` escapes a brace)."""
    if "{" not in text and "}" not in text:
        return text
    try:
        return _FORMATTER.vformat(text, (), data)
    except (ValueError, IndexError, KeyError) as exc:
        raise InvalidRecord(f"template error: {exc}") from None


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
            raise InvalidRecord(f"'push.{key}' is not one of {', '.join(PUSH_OPTIONS)}")
        if not isinstance(item, kind) or (kind is int and isinstance(item, bool)):
            raise InvalidRecord(f"'push.{key}' must be of type {getattr(kind, '__name__', kind)}")
    return dict(value)


def parse_request(raw: bytes | str | None, default_created_at: float = 0.0) -> NotificationRequest:
    """Validate one public request; raise InvalidRecord with the reason on any defect."""
    obj = decode_json_object(raw)
    version = obj.get("schema_version", SCHEMA_VERSION)
    if version != SCHEMA_VERSION:
        raise InvalidRecord(f"unsupported schema_version {version!r} (supported: {SCHEMA_VERSION})")
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
