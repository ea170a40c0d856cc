"""Status callbacks: what a caller's ``callback_url`` is told when its notification's status
changes. Pure: agents/callbacks.py decides when and sends.

A callback travels as a delivery of kind ``callback`` (streams/deliveries.py): the webhook
channel's address (the URL), signature and retry tiers, its own lane and provider. Its body is
the document POSTed, built here once, so a retry sends the very bytes the first try did.

Its id (the ``X-Notify-Delivery-ID`` header, and the delivery ledger's key) is derived from
the change it reports, not from the moment it was made: an event read twice (a crash, a
rebalance, a request resolved again) gives the same id, the ledger drops the second send,
and a caller that sees an id twice anyway (at-least-once) can drop it too.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping

import msgspec

from config.vocabulary import (
    CALLBACK_STATUSES,
    Channel,
    DeliveryKind,
    EventStatus,
    NotificationStatus,
    Priority,
)
from streams.deliveries import Delivery

# Statuses a notification (or one delivery) can report more than once, each time new: every
# open and click, every hold and release (each with its own release time or channels).
_REPEATING = frozenset(
    {EventStatus.OPENED, EventStatus.CLICKED, EventStatus.HELD, EventStatus.RELEASED}
)


class StatusChange(msgspec.Struct, frozen=True, omit_defaults=True):
    """One status change: the event (``status``, and the delivery it is about, if any) and
    the notification's overall status after it."""

    notification_id: str
    user_id: str
    status: str  # the event's EventStatus
    notification_status: str  # the notification's NotificationStatus after it
    at: float
    delivery_id: str | None = None
    channel: str | None = None
    provider: str | None = None
    reason: str | None = None


class CallbackDocument(StatusChange, frozen=True, omit_defaults=True):
    """The JSON body POSTed to the caller: the change and the callback's own id."""

    callback_id: str = ""


_ENCODER = msgspec.json.Encoder()


def callback_id(change: StatusChange) -> str:
    """Stable for the change: the same event read twice gives the same id."""
    repeat = ""
    if change.status in _REPEATING:
        repeat = f"{change.reason or ''}@{change.at!r}"
    source = f"{change.status}|{change.delivery_id or ''}|{repeat}"
    digest = hashlib.blake2s(source.encode(), digest_size=8).hexdigest()
    return f"{change.notification_id}:callback:{digest}"


def callback_delivery(change: StatusChange, url: str) -> Delivery:
    """The delivery that POSTs ``change`` to ``url``: keyed and ledgered by the user, like
    every lane record; no ``requested_at``, so it is never stale (a late callback still says
    what happened); no fallback."""
    identifier = callback_id(change)
    document = CallbackDocument(
        **{f: getattr(change, f) for f in StatusChange.__struct_fields__},
        callback_id=identifier,
    )
    return Delivery(
        delivery_id=identifier,
        notification_id=change.notification_id,
        user_id=change.user_id,
        channel=Channel.WEBHOOK,
        address=url,
        title=change.status,
        body=_ENCODER.encode(document).decode(),
        priority=Priority.NORMAL,
        kind=DeliveryKind.CALLBACK,
    )


def worth_a_callback(
    status: str, before: Mapping[str, object] | None, after: Mapping[str, object]
) -> bool:
    """Whether the event just folded (``status``, turning the row ``before`` into ``after``)
    is a change to tell: one of CALLBACK_STATUSES that moved something. A duplicate request's
    ``rejected`` (after it was accepted) or a second read receipt moved nothing."""
    if status not in CALLBACK_STATUSES:
        return False
    if status == EventStatus.REJECTED:
        return after.get("status") == NotificationStatus.REJECTED
    if status == EventStatus.READ:
        return before is None or "read_at" not in before
    return True


def caught_up(notification_id: str, after: Mapping[str, object]) -> Iterator[StatusChange]:
    """The changes folded before the callback URL was known: events that overtook the
    notification's ``accepted`` on their way (another worker's lane produced its ``sent``
    first), reported from what the row kept of them, under the ids they would have had."""
    user_id = str(after["user_id"])
    overall = str(after["status"])
    deliveries = after.get("deliveries")
    if isinstance(deliveries, Mapping):
        for delivery_id, state in deliveries.items():
            status = state.get("status")
            if status in CALLBACK_STATUSES:
                yield StatusChange(
                    notification_id=notification_id,
                    user_id=user_id,
                    status=status,
                    notification_status=overall,
                    at=float(state.get("at", 0.0)),
                    delivery_id=delivery_id,
                    channel=state.get("channel"),
                    provider=state.get("provider"),
                    reason=state.get("reason"),
                )
    read_at = after.get("read_at")
    if isinstance(read_at, float | int):
        yield StatusChange(
            notification_id=notification_id,
            user_id=user_id,
            status=EventStatus.READ,
            notification_status=overall,
            at=float(read_at),
        )


def lane_key(user_id: str) -> bytes:
    """A callback's lane key, and so the delivery ledger's owner of its sends: the user's, set
    apart, so callbacks never take the room of the user's own deliveries in the ledger
    (tables/ledger.py keeps at most MAX_DELIVERIES_PER_USER per owner)."""
    return f"{user_id}#callback".encode()
