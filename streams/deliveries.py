"""Internal records: one delivery to one address, and the events that report on it.

Internal topics carry our own records, but also whatever else is written to them: every field
is type-checked by the decoder before the record exists, and a field these records do not
have is refused, so a string where a number belongs is a dead letter here instead of a
TypeError in a provider, a retry heap or a fold.
"""

from __future__ import annotations

import hashlib
from typing import Annotated, TypedDict

import msgspec
from msgspec import UNSET, Meta, UnsetType

from config.vocabulary import (
    NO_PUSH_OPTIONS,
    Channel,
    ChannelField,
    DeliveryKind,
    DuplicateReason,
    EventStatus,
    EventStatusField,
    PlatformField,
    PriorityField,
    PushOptions,
    RejectReason,
)
from config.vocabulary import SUCCESSES as SUCCESSES
from streams.records import DEFAULT_CATEGORY, PLATFORMS, InvalidRecord
from streams.wire import JsonInt, NonNegativeInt, Raw, RecordDecoder

# The statuses and reasons under the names older modules and scripts import.
ACCEPTED = EventStatus.ACCEPTED
REJECTED = EventStatus.REJECTED
SENT = EventStatus.SENT
RETRYING = EventStatus.RETRYING
FAILED = EventStatus.FAILED
DUPLICATE_SUPPRESSED = EventStatus.DUPLICATE_SUPPRESSED
FELL_BACK = EventStatus.FELL_BACK
DELIVERED = EventStatus.DELIVERED
OPENED = EventStatus.OPENED
CLICKED = EventStatus.CLICKED
BOUNCED = EventStatus.BOUNCED
COMPLAINED = EventStatus.COMPLAINED
READ = EventStatus.READ
ALREADY_SENT = DuplicateReason.ALREADY_SENT
DUPLICATE_REQUEST = RejectReason.DUPLICATE

MAX_ERROR_CHARS = 2000


class DeliveryError(TypedDict):
    """One failed attempt in a delivery's history (a TypedDict: msgspec checks it on decode,
    and the history reads as the plain objects it is on the wire)."""

    attempt: JsonInt
    error: str
    at: float


class Delivery(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One delivery to one address. Its message fields (ids, address, texts, push options...)
    are what the provider gets: agents/deliver.py builds the ``OutboundMessage`` from them by
    name, so a field added to the message is carried here under the same name."""

    delivery_id: str
    notification_id: str
    user_id: str
    channel: ChannelField
    address: str
    title: str
    body: str
    priority: PriorityField
    category: str = DEFAULT_CATEGORY
    platform: PlatformField | None = None
    data: dict[str, str] = msgspec.field(default_factory=dict)
    collapse_key: str | None = None
    ttl_seconds: JsonInt | None = None
    requested_at: float = 0.0
    attempt: NonNegativeInt = 0  # attempts already made
    not_before: Annotated[float, Meta(ge=0)] = 0.0  # a retry waits in its tier until then
    errors: list[DeliveryError] = msgspec.field(default_factory=list)  # one per failed attempt
    fallback_channel: ChannelField | None = None
    is_fallback: bool = False  # a fallback delivery never falls back again
    push: PushOptions = NO_PUSH_OPTIONS  # push presentation, on every channel (agents/fanout.py)
    # E-mail: a template's HTML part (``body`` is then its text part). UNSET is never encoded,
    # so a delivery without one is the same bytes it always was.
    html: str | UnsetType = UNSET
    # A delivery of another kind than a notification (a status callback): UNSET, and so the
    # same bytes as ever, for every notification.
    kind: DeliveryKind | UnsetType = UNSET

    def to_json(self) -> bytes:
        return _ENCODER.encode(self)

    def after_failure(self, error: str, at: float, not_before: float) -> Delivery:
        """The same delivery, one attempt later, carrying its error history. Each error is cut
        to MAX_ERROR_CHARS: a provider's error body must not grow a retry record past what a
        lane accepts (streams.wire.MAX_RECORD_BYTES)."""
        if len(error) > MAX_ERROR_CHARS:
            error = f"{error[:MAX_ERROR_CHARS]}..."
        history = [*self.errors, DeliveryError(attempt=self.attempt + 1, error=error, at=at)]
        return msgspec.structs.replace(
            self, attempt=self.attempt + 1, not_before=not_before, errors=history
        )


class DeliveryEvent(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    notification_id: str
    user_id: str
    status: EventStatusField
    at: float
    delivery_id: str | None = None
    channel: ChannelField | None = None
    provider: str | None = None
    provider_message_id: str | None = None
    reason: str | None = None  # a RejectReason, a DuplicateReason, or an error's description
    requested_at: float = 0.0
    deliveries: JsonInt = 0  # on ``accepted``: how many deliveries the fan-out produced
    segments: JsonInt | None = None  # on an SMS ``sent``: billed segments
    # On the intake's events (accepted, rejected, held, capped, released) of a request that
    # named one: the status fold keeps it in the notification's row (agents/callbacks.py).
    callback_url: str | None = None

    def to_json(self) -> bytes:
        """Fields that are None are left out, as they always were (the decoder defaults them)."""
        values = msgspec.structs.astuple(self)
        return _ENCODER.encode(
            {k: v for k, v in zip(self.__struct_fields__, values, strict=True) if v is not None}
        )


_ENCODER = msgspec.json.Encoder()


def delivery_id_for(notification_id: str, channel: str, address: str) -> str:
    """Stable id: the same request fanned out twice yields the same ids, so the ledger works."""
    digest = hashlib.blake2s(address.encode(), digest_size=6).hexdigest()
    return f"{notification_id}:{channel}:{digest}"


_DELIVERY = RecordDecoder(Delivery)
_EVENT = RecordDecoder(DeliveryEvent)


def parse_delivery(raw: Raw) -> Delivery:
    delivery = _DELIVERY.decode(raw)
    if delivery.channel is Channel.PUSH and delivery.platform is None:
        raise InvalidRecord(f"push delivery needs a platform in {', '.join(PLATFORMS)}")
    return delivery


def parse_event(raw: Raw) -> DeliveryEvent:
    event = _EVENT.decode(raw)
    return event
