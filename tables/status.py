"""Notification status, keyed by notification_id, folded from ``delivery-events``."""

from __future__ import annotations

from typing import Any

import faust
from faust.types import TableT

from config.settings import Settings
from streams.deliveries import (
    ACCEPTED,
    ALREADY_SENT,
    BOUNCED,
    COMPLAINED,
    DUPLICATE_REQUEST,
    DUPLICATE_SUPPRESSED,
    FAILED,
    FELL_BACK,
    REJECTED,
    RETRYING,
    SENT,
    SUCCESSES,
    DeliveryEvent,
)

# A delivery in one of these states will not change by itself any more.
FINAL = (*SUCCESSES, FAILED, BOUNCED, COMPLAINED)


def declare(app: faust.App, settings: Settings) -> TableT:
    return app.Table(
        "notification_status",
        default=None,
        partitions=settings.partitions,
        key_type=bytes,  # raw keys: table_route must hash the bytes the record was keyed by
        help="notification_id -> {status, reason, deliveries: {delivery_id: {...}}}",
    )


def get(table: TableT, notification_id: str) -> dict[str, Any] | None:
    value = table.get(notification_id)
    return dict(value) if value is not None else None


def fold(current: dict[str, Any] | None, event: DeliveryEvent) -> dict[str, Any]:
    """Pure: the status after ``event``. Events may arrive in any order across partitions."""
    state: dict[str, Any] = (
        dict(current)
        if current
        else {"user_id": event.user_id, "status": "pending", "deliveries": {}, "expected": 0}
    )
    state["updated_at"] = max(state.get("updated_at", 0.0), event.at)
    # A request or a failure read again after a crash reports its fan-out again: the same
    # deliveries, so the largest report counts, never the sum.
    if event.status == ACCEPTED:
        state["fanned_out"] = max(state.get("fanned_out", 0), event.deliveries)
        state["requested_at"] = event.requested_at
    elif event.status == FELL_BACK:
        state["fell_back_to"] = max(state.get("fell_back_to", 0), event.deliveries)
        state["fell_back"] = {"channel": event.channel, "reason": event.reason}
    elif event.status == REJECTED:
        if event.reason == DUPLICATE_REQUEST and state["expected"]:
            # The same notification sent again (a producer's retry, a record passed on twice
            # across a crash): it was accepted once and that stands; the repeat is counted.
            state["repeats_rejected"] = state.get("repeats_rejected", 0) + 1
            return state
        state["reason"] = event.reason
    state["expected"] = state.get("fanned_out", 0) + state.get("fell_back_to", 0)
    if event.delivery_id is not None:
        deliveries = dict(state["deliveries"])
        entry = dict(deliveries.get(event.delivery_id) or {"attempts": 0})
        deliveries[event.delivery_id] = _delivery_after(entry, event)
        state["deliveries"] = deliveries
    state["status"] = _overall(state, event)
    return state


def _delivery_after(entry: dict[str, Any], event: DeliveryEvent) -> dict[str, Any]:
    """One delivery's entry after ``event``. A record read again after a crash or a rebalance
    reports on a delivery a second time; that never takes a final state back."""
    current = entry.get("status")
    if event.status == DUPLICATE_SUPPRESSED:
        entry["duplicates_suppressed"] = entry.get("duplicates_suppressed", 0) + 1
        if event.reason == ALREADY_SENT and current not in FINAL:
            # The ledger holds the send: the first report of it may never have been produced.
            entry.update(channel=event.channel, status=SENT, at=event.at)
            entry["provider"] = event.provider or entry.get("provider")
        return entry
    if current in FINAL and event.status not in FINAL:
        return entry
    if event.status in (SENT, RETRYING, FAILED):
        entry["attempts"] = entry["attempts"] + 1
    entry.update(channel=event.channel, status=event.status, reason=event.reason, at=event.at)
    entry["provider"] = event.provider or entry.get("provider")
    return entry


def _overall(state: dict[str, Any], event: DeliveryEvent) -> str:
    if event.status == REJECTED and event.delivery_id is None:
        return REJECTED
    outcomes = [d["status"] for d in state["deliveries"].values()]
    done = [s for s in outcomes if s in FINAL]
    succeeded = any(s in SUCCESSES for s in outcomes)
    if state["expected"] and len(done) >= state["expected"]:
        return SENT if succeeded else FAILED
    if succeeded:
        return "partially_sent"
    return "accepted" if state["expected"] else "pending"


def record(table: TableT, event: DeliveryEvent) -> None:
    table[event.notification_id] = fold(table.get(event.notification_id), event)
