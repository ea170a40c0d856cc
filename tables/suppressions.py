"""Addresses a user must not be sent to again: hard bounces, spam complaints, dead endpoints."""

from __future__ import annotations

from typing import Any

import faust
from faust.types import TableT

from config.settings import Settings
from streams.records import Suppression


def declare(app: faust.App, settings: Settings) -> TableT:
    return app.Table(
        "suppressions",
        default=dict,
        partitions=settings.partitions,
        key_type=bytes,  # raw keys: table_route must hash the bytes the record was keyed by
        help="user_id -> {address: {reason, at}}",
    )


def suppressed(table: TableT, user_id: str) -> dict[str, Any]:
    return dict(table[user_id])


def apply(table: TableT, suppression: Suppression, now: float) -> None:
    current = dict(table[suppression.user_id])
    if suppression.action == "lift":
        current.pop(suppression.address, None)
    else:
        current[suppression.address] = {"reason": suppression.reason, "at": now}
    table[suppression.user_id] = current
