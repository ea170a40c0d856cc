"""Internal records: one delivery to one address, and the events that report on it."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import orjson

from streams.records import CHANNELS, PLATFORMS, PRIORITIES, InvalidRecord, decode_json_object

# Delivery-event statuses. ``rejected`` carries the reason the resolve stage refused a request.
ACCEPTED = "accepted"
REJECTED = "rejected"
SENT = "sent"
RETRYING = "retrying"  # a classified transient failure, with the wait before the next attempt
FAILED = "failed"  # final: dead-lettered, or the recipient is invalid
DUPLICATE_SUPPRESSED = "duplicate_suppressed"
# The ``duplicate_suppressed`` reason when the delivery ledger already holds the send.
ALREADY_SENT = "already sent"
FELL_BACK = "fell_back"  # every delivery failed; the fallback channel was fanned out once
# The ``rejected`` reason for a request whose idempotency key (or notification id) was already
# claimed: resolve stage and status fold both need it.
DUPLICATE_REQUEST = "duplicate"
# Reported later by providers (feedback webhooks).
DELIVERED = "delivered"
OPENED = "opened"
CLICKED = "clicked"
BOUNCED = "bounced"
COMPLAINED = "complained"
SUCCESSES = (SENT, DELIVERED, OPENED, CLICKED)


@dataclass(frozen=True, slots=True)
class Delivery:
    delivery_id: str
    notification_id: str
    user_id: str
    channel: str
    address: str
    title: str
    body: str
    priority: str
    category: str = "general"
    platform: str | None = None
    data: Mapping[str, str] = field(default_factory=dict)
    collapse_key: str | None = None
    ttl_seconds: int | None = None
    requested_at: float = 0.0
    attempt: int = 0  # attempts already made
    not_before: float = 0.0  # a retry waits in its tier until then
    errors: list[dict[str, Any]] = field(default_factory=list)  # one per failed attempt
    fallback_channel: str | None = None
    is_fallback: bool = False  # a fallback delivery never falls back again
    push: dict[str, Any] = field(default_factory=dict)  # push presentation options

    def to_json(self) -> bytes:
        return orjson.dumps(asdict(self))

    def after_failure(self, error: str, at: float, not_before: float) -> Delivery:
        """The same delivery, one attempt later, carrying its error history."""
        history = [*self.errors, {"attempt": self.attempt + 1, "error": error, "at": at}]
        return replace(self, attempt=self.attempt + 1, not_before=not_before, errors=history)


@dataclass(frozen=True, slots=True)
class DeliveryEvent:
    notification_id: str
    user_id: str
    status: str
    at: float
    delivery_id: str | None = None
    channel: str | None = None
    provider: str | None = None
    provider_message_id: str | None = None
    reason: str | None = None
    requested_at: float = 0.0
    deliveries: int = 0  # on ``accepted``: how many deliveries the fan-out produced
    segments: int | None = None  # on an SMS ``sent``: billed segments

    def to_json(self) -> bytes:
        return orjson.dumps({k: v for k, v in asdict(self).items() if v is not None})


def delivery_id_for(notification_id: str, channel: str, address: str) -> str:
    """Stable id: the same request fanned out twice yields the same ids, so the ledger works."""
    digest = hashlib.blake2s(address.encode(), digest_size=6).hexdigest()
    return f"{notification_id}:{channel}:{digest}"


def _from_json(cls: Any, raw: bytes | str | None) -> Any:
    obj = decode_json_object(raw)
    try:
        return cls(**obj)
    except TypeError as exc:
        raise InvalidRecord(f"not a {cls.__name__}: {exc}") from None


def parse_delivery(raw: bytes | str | None) -> Delivery:
    delivery: Delivery = _from_json(Delivery, raw)
    if delivery.channel not in CHANNELS:
        raise InvalidRecord(f"unknown channel {delivery.channel!r}")
    if delivery.priority not in PRIORITIES:
        raise InvalidRecord(f"unknown priority {delivery.priority!r}")
    if delivery.channel == "push" and delivery.platform not in PLATFORMS:
        raise InvalidRecord(f"push delivery needs a platform in {PLATFORMS}")
    return delivery


def parse_event(raw: bytes | str | None) -> DeliveryEvent:
    return _from_json(DeliveryEvent, raw)  # type: ignore[no-any-return]
