"""Internal records: one delivery to one address, and the events that report on it."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import orjson

from streams.records import (
    CHANNELS,
    PLATFORMS,
    PRIORITIES,
    InvalidRecord,
    decode_json_object,
    parse_push_options,
)
from streams.wire import FieldChecks, quoted

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
MAX_ERROR_CHARS = 2000


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
        """The same delivery, one attempt later, carrying its error history. Each error is cut
        to MAX_ERROR_CHARS: a provider's error body must not grow a retry record past what a
        lane accepts (streams.wire.MAX_RECORD_BYTES)."""
        if len(error) > MAX_ERROR_CHARS:
            error = f"{error[:MAX_ERROR_CHARS]}..."
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


# Internal topics carry our own records, but also whatever else is written to them: every field
# is type-checked against the dataclass before the record is built, so a string where a number
# belongs is a dead letter here instead of a TypeError in a provider, a retry heap or a fold.
_DELIVERY = FieldChecks(Delivery)
_EVENT = FieldChecks(DeliveryEvent)


def parse_delivery(raw: bytes | str | None) -> Delivery:
    obj = decode_json_object(raw)
    _DELIVERY.check(obj)
    delivery = Delivery(**obj)
    if delivery.channel not in CHANNELS:
        raise InvalidRecord(f"unknown channel {quoted(delivery.channel)}")
    if delivery.priority not in PRIORITIES:
        raise InvalidRecord(f"unknown priority {quoted(delivery.priority)}")
    if delivery.channel == "push" and delivery.platform not in PLATFORMS:
        raise InvalidRecord(f"push delivery needs a platform in {PLATFORMS}")
    if delivery.attempt < 0 or delivery.not_before < 0:
        raise InvalidRecord("'attempt' and 'not_before' must not be negative")
    parse_push_options({"push": delivery.push})  # the provider builds its payload from these
    return delivery


def parse_event(raw: bytes | str | None) -> DeliveryEvent:
    obj = decode_json_object(raw)
    _EVENT.check(obj)
    return DeliveryEvent(**obj)
