"""The words records, tables, providers and settings are made of, each defined once.

Every one is a ``StrEnum``: a member *is* its string (``Priority.HIGH == "high"``, the same
hash, ``f"{member}"`` and JSON give ``high``), so the wire format and the tables' stored values
are the strings they always were, a string read back from a topic or a changelog compares equal
to its member, and msgspec decodes a wire field straight into the member (refusing any other
value, naming the field). With them, the push options a request names (``PushOptions``).

Here in ``config`` rather than in ``streams`` (where DESIGN.md puts vocabulary enums) because
the provider contract speaks the same words (a message's channel, priority, platform and push
options) and providers may depend on ``config`` only (tests/unit/test_layering.py). A leaf
module: it imports nothing of the project.
"""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING, Annotated

import msgspec
from msgspec import UNSET, Meta, UnsetType


class Channel(StrEnum):
    PUSH = "push"
    EMAIL = "email"
    SMS = "sms"
    WEBHOOK = "webhook"
    IN_APP = "in_app"


class Priority(StrEnum):
    """Each priority has its own request handling, lanes and agents (a campaign never sits in
    front of a password reset)."""

    HIGH = "high"
    NORMAL = "normal"
    LOW = "low"


class Platform(StrEnum):
    """A push device's platform: which push provider serves it (agents/route.py)."""

    IOS = "ios"
    ANDROID = "android"


class EventStatus(StrEnum):
    """A ``delivery-events`` record's status."""

    ACCEPTED = "accepted"  # fanned out; ``deliveries`` says into how many deliveries
    REJECTED = "rejected"  # refused by the resolve stage; ``reason`` is a RejectReason
    SENT = "sent"
    RETRYING = "retrying"  # a classified transient failure, with the wait before the next try
    FAILED = "failed"  # final: dead-lettered, or the recipient is invalid
    DUPLICATE_SUPPRESSED = "duplicate_suppressed"  # ``reason`` is a DuplicateReason
    FELL_BACK = "fell_back"  # every delivery failed; the fallback channel was fanned out once
    # Quiet hours: ``held`` when channels wait for the user's quiet window to end (``at`` of
    # the release in ``reason``), ``released`` when they are fanned out (``deliveries``; the
    # released channels in ``channel``-order in ``reason``). ``capped``: the user's daily cap
    # was reached; not sent.
    HELD = "held"
    RELEASED = "released"
    CAPPED = "capped"
    # Not sent now, no attempt spent: its provider's circuit breaker is open (agents/circuit.py).
    # (Not ``held``: that is a notification's channels waiting for the user's quiet hours.)
    DEFERRED = "deferred"
    EXPIRED = "expired"  # final: older than its ttl or its category's maximum age at send time
    # Final: not sent because its user was erased after the request (agents/erasure.py).
    CANCELLED = "cancelled"
    # Not about one notification: the user's history on this partition of the events topic is
    # to be anonymised (one copy per partition, ``notification_id`` empty; agents/erasure.py).
    ERASED = "erased"
    # Reported later by providers (feedback webhooks).
    DELIVERED = "delivered"
    OPENED = "opened"
    CLICKED = "clicked"
    BOUNCED = "bounced"
    COMPLAINED = "complained"
    # The user read it: a read receipt (``PUT /v1/notifications/{id}/read``). About the
    # notification, not one delivery (no ``delivery_id``).
    READ = "read"


# A delivery in one of these states went out.
SUCCESSES: tuple[EventStatus, ...] = (
    EventStatus.SENT,
    EventStatus.DELIVERED,
    EventStatus.OPENED,
    EventStatus.CLICKED,
)
# A delivery in one of these states will not change by itself any more.
FINAL: tuple[EventStatus, ...] = (
    *SUCCESSES,
    EventStatus.FAILED,
    EventStatus.EXPIRED,
    EventStatus.CANCELLED,
    EventStatus.BOUNCED,
    EventStatus.COMPLAINED,
)


class NotificationStatus(StrEnum):
    """A notification's overall status in the status table, folded from its events."""

    PENDING = "pending"  # events about it arrived before its ``accepted``
    ACCEPTED = "accepted"
    PARTIALLY_SENT = "partially_sent"  # some delivery succeeded, others are not final yet
    SENT = "sent"  # every delivery is final and one succeeded
    FAILED = "failed"  # every delivery is final and none succeeded
    EXPIRED = "expired"  # every delivery expired before it could be sent
    REJECTED = "rejected"
    HELD = "held"  # every delivery so far is waiting for a quiet window to end
    CAPPED = "capped"  # the user's daily cap was reached: not sent
    CANCELLED = "cancelled"  # every delivery was cancelled: its user was erased
    # The user read it (a read receipt): it reached them, whatever its other deliveries do.
    READ = "read"


# The changes a caller's status callback is told of (agents/callbacks.py): each is a step of
# the notification a client acts on. Not ``retrying``, ``deferred`` or ``duplicate_suppressed``:
# the pipeline's own bookkeeping, which changes nothing the client can see or do.
CALLBACK_STATUSES: frozenset[EventStatus] = frozenset(
    {
        EventStatus.ACCEPTED,
        EventStatus.REJECTED,
        EventStatus.SENT,
        EventStatus.FAILED,
        EventStatus.FELL_BACK,
        EventStatus.HELD,
        EventStatus.RELEASED,
        EventStatus.CAPPED,
        EventStatus.EXPIRED,
        EventStatus.DELIVERED,
        EventStatus.OPENED,
        EventStatus.CLICKED,
        EventStatus.BOUNCED,
        EventStatus.COMPLAINED,
        EventStatus.READ,
    }
)


class DeliveryKind(StrEnum):
    """What a delivery record is besides a notification to a user's address (a delivery
    without a kind is one). The lanes, retry tiers and ledger carry every kind alike."""

    # A status change POSTed to the caller's callback URL (agents/callbacks.py): its own
    # lane, its own provider (no breaker shared with the users' webhooks), and its outcome
    # is never a delivery event (so it can never call back about itself).
    CALLBACK = "callback"


class RejectReason(StrEnum):
    """Why the resolve stage refused a request (a ``rejected`` event's ``reason``)."""

    # Its idempotency key (or notification id) was already claimed: the status fold keeps the
    # first acceptance when it sees this.
    DUPLICATE = "duplicate"
    CATEGORY_MUTED = "category_muted"
    NO_CHANNEL_ALLOWED = "no_channel_allowed"
    RATE_LIMITED = "rate_limited"
    NO_ADDRESS = "no_reachable_address"
    # The template could not be rendered (unknown, a missing variable...): the event's reason
    # is ``template_error: <template, locale, part and cause>``.
    TEMPLATE_ERROR = "template_error"
    # The same user, template and rendered content inside NOTIFY_CONTENT_DEDUP_SECONDS.
    DUPLICATE_CONTENT = "duplicate_content"
    # The user was erased after this request was made (a held or in-flight request).
    USER_ERASED = "user_erased"


class CampaignSkip(StrEnum):
    """Why a user the segment matched was not sent a campaign's request (counted, not sent)."""

    CATEGORY_MUTED = RejectReason.CATEGORY_MUTED.value  # the campaign's category is muted
    NO_CHANNEL_ALLOWED = RejectReason.NO_CHANNEL_ALLOWED.value  # every campaign channel off
    MISSING_PLACEHOLDER = "missing_placeholder"  # the title or body names an unknown attribute


class ScanStatus(StrEnum):
    """A campaign's scan on one partition (and, folded over partitions, the campaign's)."""

    SCHEDULED = "scheduled"  # waiting for its start time
    RUNNING = "running"
    DONE = "done"  # every user of the partition was read
    CANCELLED = "cancelled"


class DuplicateReason(StrEnum):
    """Why a delivery was not sent again (a ``duplicate_suppressed`` event's ``reason``)."""

    ALREADY_SENT = "already sent"  # the delivery ledger holds the send
    READ_TWICE = "read twice"  # a second copy arrived while the first was in flight, and failed


class AuditAction(StrEnum):
    """What an ``audit-events`` record reports (agents/erasure.py)."""

    USER_ERASED = "user_erased"
    UNSUBSCRIBED = "unsubscribed"


class DeviceAction(StrEnum):
    REGISTER = "register"
    UNREGISTER = "unregister"


class SuppressionAction(StrEnum):
    SUPPRESS = "suppress"
    LIFT = "lift"


class InboxAction(StrEnum):
    """What a ``user-inbox-actions`` record does to a user's in-app inbox (tables/inbox.py)."""

    READ = "read"  # one message, by notification_id
    READ_ALL = "read_all"
    ARCHIVE = "archive"  # one message, by notification_id: gone from the default listing


class ContactField(StrEnum):
    """A user's addresses in the contacts table (``user-contacts`` records)."""

    EMAIL = "email"
    PHONE = "phone"
    WEBHOOK_URL = "webhook_url"


# The types of a record's vocabulary fields. At run time each is its enum, so msgspec decodes
# the field into the member and refuses any other value with a reason naming the field. To the
# type checker each is ``str``: every member is one, and records are also built from plain
# strings (tests, bench/ workloads, values read back from a table, where a member comes back
# as the string it was stored as), which must not need a cast.
if TYPE_CHECKING:
    ChannelField = str
    PriorityField = str
    PlatformField = str
    EventStatusField = str
    AuditActionField = str
else:
    ChannelField = Channel
    PriorityField = Priority
    PlatformField = Platform
    EventStatusField = EventStatus
    AuditActionField = AuditAction


# 64 bits, like every integer orjson writes (streams.wire.JsonInt, above this module).
_Int = Annotated[int, Meta(ge=-(2**63), le=2**63 - 1)]


class PushOptions(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Every option is optional and absent ones stay absent on the wire: an unset field is
    ``UNSET`` (falsy) and is not encoded, so a delivery carries exactly the options its request
    named. ``null`` is refused, as is an option this does not know."""

    sound: str | UnsetType = UNSET
    badge: _Int | UnsetType = UNSET  # 0 clears the badge, so "set" is not "truthy"
    image: str | UnsetType = UNSET  # a URL; APNs needs mutable-content for an extension to fetch it
    mutable_content: bool | UnsetType = UNSET
    content_available: bool | UnsetType = UNSET  # wakes the app (background push)


NO_PUSH_OPTIONS = PushOptions()
