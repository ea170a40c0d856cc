"""Notification status, keyed by notification_id, folded from ``delivery-events``."""

from __future__ import annotations

from typing import Any

import faust
from faust.types import TableT

from config.settings import Settings
from streams.deliveries import ACCEPTED, FAILED, REJECTED, SENT, DeliveryEvent


def declare(app: faust.App, settings: Settings) -> TableT:
    return app.Table(
        "notification_status",
        default=None,
        partitions=settings.partitions,
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
        else {
            "user_id": event.user_id,
            "status": "pending",
            "deliveries": {},
            "expected": 0,
        }
    )
    state["updated_at"] = max(state.get("updated_at", 0.0), event.at)
    if event.status == ACCEPTED:
        state["expected"] = event.deliveries
        state["requested_at"] = event.requested_at
    elif event.status == REJECTED:
        state["reason"] = event.reason
    if event.delivery_id is not None:
        deliveries = dict(state["deliveries"])
        deliveries[event.delivery_id] = {
            "channel": event.channel,
            "status": event.status,
            "provider": event.provider,
            "reason": event.reason,
            "at": event.at,
        }
        state["deliveries"] = deliveries
    state["status"] = _overall(state, event)
    return state


def _overall(state: dict[str, Any], event: DeliveryEvent) -> str:
    if event.status == REJECTED and event.delivery_id is None:
        return REJECTED
    outcomes = [d["status"] for d in state["deliveries"].values()]
    done = [s for s in outcomes if s in (SENT, FAILED)]
    if state["expected"] and len(done) >= state["expected"]:
        return SENT if SENT in done else FAILED
    return (
        "partially_sent" if SENT in outcomes else ("accepted" if state["expected"] else "pending")
    )


def record(table: TableT, event: DeliveryEvent) -> None:
    table[event.notification_id] = fold(table.get(event.notification_id), event)
