"""Internal records: one delivery to one address, and the events that report on it."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import orjson

from streams.records import CHANNELS, PLATFORMS, PRIORITIES, InvalidRecord, decode_json_object

# Delivery-event statuses. ``rejected`` carries the reason the resolve stage refused a request.
ACCEPTED = "accepted"
REJECTED = "rejected"
SENT = "sent"
FAILED = "failed"
DUPLICATE_SUPPRESSED = "duplicate_suppressed"
STATUSES = (ACCEPTED, REJECTED, SENT, FAILED, DUPLICATE_SUPPRESSED)


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
    attempt: int = 0

    def to_json(self) -> bytes:
        return orjson.dumps(asdict(self))


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
