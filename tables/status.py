"""Notification status, keyed by notification_id, folded from ``delivery-events``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Required, TypeAlias, TypedDict

import faust
from faust.types import TableT

from config.settings import Settings
from config.vocabulary import FINAL as FINAL
from config.vocabulary import (
    SUCCESSES,
    DuplicateReason,
    EventStatus,
    NotificationStatus,
    RejectReason,
)
from streams.deliveries import DeliveryEvent


class DeliveryState(TypedDict, total=False):
    """One delivery of the notification, as its events reported it."""

    attempts: Required[int]  # sends tried: sent, retrying and failed reports
    status: str  # the EventStatus last reported
    channel: str | None
    reason: str | None
    at: float
    provider: str | None
    duplicates_suppressed: int


class FallbackReport(TypedDict):
    channel: str | None
    reason: str | None


class NotificationState(TypedDict, total=False):
    """A notification's status. Vocabulary fields hold their enum's string (a member when
    written here, the plain string once read back from the changelog: they compare equal)."""

    user_id: Required[str]
    status: Required[str]  # a NotificationStatus
    deliveries: Required[dict[str, DeliveryState]]  # delivery_id -> state
    expected: Required[int]  # deliveries fanned out, fallbacks included
    updated_at: float
    fanned_out: int
    requested_at: float
    fell_back_to: int
    fell_back: FallbackReport
    reason: str | None  # why it was rejected (or capped)
    holding: bool  # channels are waiting for a quiet window to end (agents/holds.py)
    held_until: str  # epoch seconds of the release, as the ``held`` event gave it
    released: dict[str, int]  # released channels ("push,sms") -> deliveries fanned out
    repeats_rejected: int  # the same notification sent again after it was accepted
    read_at: float  # the first read receipt's time (``read`` event)
    callback_url: str  # where its status changes are POSTed (agents/callbacks.py)


StatusTable: TypeAlias = TableT[str, NotificationState]  # notification_id -> its state


def declare(app: faust.App, settings: Settings) -> StatusTable:
    return app.Table(
        "notification_status",
        default=None,
        partitions=settings.partitions,
        key_type=bytes,  # raw keys: table_route must hash the bytes the record was keyed by
        help="notification_id -> {status, reason, deliveries: {delivery_id: {...}}}",
    )


def get(table: StatusTable, notification_id: str) -> NotificationState | None:
    value = table.get(notification_id)
    return NotificationState(**value) if value is not None else None


def fold(current: NotificationState | None, event: DeliveryEvent) -> NotificationState:
    """Pure: the status after ``event``. Events may arrive in any order across partitions."""
    state = (
        NotificationState(**current)
        if current
        else NotificationState(
            user_id=event.user_id, status=NotificationStatus.PENDING, deliveries={}, expected=0
        )
    )
    state["updated_at"] = max(state.get("updated_at", 0.0), event.at)
    if event.callback_url is not None and "callback_url" not in state:
        # The first request's: a duplicate of it, refused, must not redirect its callbacks.
        state["callback_url"] = event.callback_url
    if event.status == EventStatus.READ:
        # The first read counts: a receipt sent twice (a retried PUT) moves nothing.
        state["read_at"] = min(state.get("read_at", event.at), event.at)
    elif state["user_id"] != event.user_id:
        # A read receipt may come before anything else, with the user id its caller gave
        # (api/receipts.py); the pipeline's own events know the recipient and win.
        state["user_id"] = event.user_id
    # A request or a failure read again after a crash reports its fan-out again: the same
    # deliveries, so the largest report counts, never the sum.
    if event.status == EventStatus.ACCEPTED:
        state["fanned_out"] = max(state.get("fanned_out", 0), event.deliveries)
        state["requested_at"] = event.requested_at
    elif event.status == EventStatus.FELL_BACK:
        state["fell_back_to"] = max(state.get("fell_back_to", 0), event.deliveries)
        state["fell_back"] = FallbackReport(channel=event.channel, reason=event.reason)
    elif event.status == EventStatus.HELD:
        state["holding"] = True
        state["held_until"] = event.reason or ""
    elif event.status == EventStatus.RELEASED:
        # Keyed by the channels released, so a release read twice counts once.
        channels, _, why = (event.reason or "").partition(": ")
        released = dict(state.get("released", {}))
        released[channels] = max(released.get(channels, 0), event.deliveries)
        state["released"] = released
        state["holding"] = False
        if why:
            state["reason"] = why
    elif event.status == EventStatus.CAPPED:
        state["reason"] = event.reason
    elif event.status == EventStatus.REJECTED:
        if event.reason == RejectReason.DUPLICATE and state["expected"]:
            # The same notification sent again (a producer's retry, a record passed on twice
            # across a crash): it was accepted once and that stands; the repeat is counted.
            state["repeats_rejected"] = state.get("repeats_rejected", 0) + 1
            return state
        state["reason"] = event.reason
    state["expected"] = (
        state.get("fanned_out", 0)
        + state.get("fell_back_to", 0)
        + sum(state.get("released", {}).values())
    )
    if event.delivery_id is not None:
        deliveries = dict(state["deliveries"])
        entry = DeliveryState(**(deliveries.get(event.delivery_id) or DeliveryState(attempts=0)))
        deliveries[event.delivery_id] = _delivery_after(entry, event)
        state["deliveries"] = deliveries
    state["status"] = _overall(state, event)
    return state


def _delivery_after(entry: DeliveryState, event: DeliveryEvent) -> DeliveryState:
    """One delivery's entry after ``event``. A record read again after a crash or a rebalance
    reports on a delivery a second time; that never takes a final state back."""
    current = entry.get("status")
    if event.status == EventStatus.DUPLICATE_SUPPRESSED:
        entry["duplicates_suppressed"] = entry.get("duplicates_suppressed", 0) + 1
        if event.reason == DuplicateReason.ALREADY_SENT and current not in FINAL:
            # The ledger holds the send: the first report of it may never have been produced.
            entry["channel"] = event.channel
            entry["status"] = EventStatus.SENT
            entry["at"] = event.at
            entry["provider"] = event.provider or entry.get("provider")
        return entry
    if current in FINAL and event.status not in FINAL:
        return entry
    if event.status in (EventStatus.SENT, EventStatus.RETRYING, EventStatus.FAILED):
        entry["attempts"] = entry["attempts"] + 1
    entry["channel"] = event.channel
    entry["status"] = event.status
    entry["reason"] = event.reason
    entry["at"] = event.at
    entry["provider"] = event.provider or entry.get("provider")
    return entry


def _overall(state: NotificationState, event: DeliveryEvent) -> NotificationStatus:
    if event.status == EventStatus.REJECTED and event.delivery_id is None:
        return NotificationStatus.REJECTED
    if event.status == EventStatus.CAPPED:
        return NotificationStatus.CAPPED
    if "read_at" in state:
        # Read by its user: it reached them, whatever its other deliveries do after. Not a
        # refused one: a receipt for a rejected or capped notification changes nothing.
        previous = state["status"]
        if previous in (NotificationStatus.REJECTED, NotificationStatus.CAPPED):
            return NotificationStatus(previous)
        return NotificationStatus.READ
    outcomes = [d.get("status") for d in state["deliveries"].values()]
    done = [s for s in outcomes if s in FINAL]
    succeeded = any(s in SUCCESSES for s in outcomes)
    if state.get("holding"):
        # Never "sent" or "failed" while channels wait: they have not been tried.
        if succeeded:
            return NotificationStatus.PARTIALLY_SENT
        return NotificationStatus.ACCEPTED if state["expected"] else NotificationStatus.HELD
    if "released" in state and not state["expected"]:
        return NotificationStatus.REJECTED  # released to nothing: turned off in the night
    if state["expected"] and len(done) >= state["expected"]:
        if succeeded:
            return NotificationStatus.SENT
        if all(s == EventStatus.EXPIRED for s in done):
            return NotificationStatus.EXPIRED
        if all(s == EventStatus.CANCELLED for s in done):
            return NotificationStatus.CANCELLED
        return NotificationStatus.FAILED
    if succeeded:
        return NotificationStatus.PARTIALLY_SENT
    return NotificationStatus.ACCEPTED if state["expected"] else NotificationStatus.PENDING


def record(
    table: StatusTable,
    event: DeliveryEvent,
    erased: Callable[[str, float], bool] | None = None,
) -> tuple[NotificationState | None, NotificationState]:
    """Folds ``event`` into its notification's row; the row before and after it.

    ``erased(user_id, requested_at)``: asked only of a notification's first event (one lookup
    per notification): one first seen after its user's erasure reached this partition (its
    events were still on their way) is anonymised at once. A row frozen at its user's
    erasure (``anonymised``) stays as it is: before and after are the same."""
    before = table.get(event.notification_id)
    if before is not None and before["user_id"] == ERASED_USER:
        return before, before
    after = fold(before, event)
    if before is None and erased is not None and erased(event.user_id, event.requested_at):
        after = anonymised(after)
    table[event.notification_id] = after
    return before, after


# The user id of a notification whose user was erased.
ERASED_USER = ""
_KEPT_REASONS = frozenset(RejectReason) | frozenset(DuplicateReason)


def anonymised(state: NotificationState) -> NotificationState:
    """Pure: the history of a notification whose user was erased, with nothing that could name
    them: no user id, no free-text reasons (a provider's answer may quote an address), and the
    delivery ids, which hold a digest of the address, replaced by ``<channel>-<n>``. What is
    kept (statuses, channels, counts, times) still counts in reports.

    Deliveries not final yet are ``cancelled``: the lanes refuse them (tables/erasures.py).
    The state is then frozen: later events about it are not folded (``record``), as their
    delivery ids no longer match."""
    deliveries: dict[str, DeliveryState] = {}
    for n, (_, entry) in enumerate(sorted(state["deliveries"].items())):
        kept = DeliveryState(**entry)
        kept.pop("reason", None)
        if kept.get("status") not in FINAL:
            kept["status"] = EventStatus.CANCELLED
        deliveries[f"{kept.get('channel') or 'delivery'}-{n}"] = kept
    result = NotificationState(**state)
    result["user_id"] = ERASED_USER
    result["deliveries"] = deliveries
    if result.get("reason") not in _KEPT_REASONS:
        result.pop("reason", None)
    if "fell_back" in result:
        result["fell_back"] = FallbackReport(channel=result["fell_back"]["channel"], reason=None)
    result["holding"] = False
    if result["status"] not in (NotificationStatus.REJECTED, NotificationStatus.CAPPED):
        result["status"] = _settled(result)
    return result


def _settled(state: NotificationState) -> NotificationStatus:
    outcomes = [d.get("status") for d in state["deliveries"].values()]
    if any(s in SUCCESSES for s in outcomes):
        return NotificationStatus.SENT
    if outcomes and all(s == EventStatus.EXPIRED for s in outcomes):
        return NotificationStatus.EXPIRED
    if outcomes and all(s != EventStatus.CANCELLED for s in outcomes):
        return NotificationStatus.FAILED
    return NotificationStatus.CANCELLED
