"""Outstanding deliveries of notifications that name a fallback channel.

The resolve stage opens an entry when it fans out; the deliver stage (same user, same
partition) counts final outcomes. When the last delivery has failed and none succeeded, the
fallback channel is used, once.
"""

from __future__ import annotations

from typing import TypeAlias, TypedDict

import faust
from faust.types import TableT

from config.settings import Settings
from tables.expiring import live_entries

MAX_OPEN_PER_USER = 1000


class FallbackEntry(TypedDict):
    pending: int  # deliveries whose final outcome has not come yet
    fallback: str  # the Channel to use if none of them succeeds
    sent: bool  # one of them succeeded
    exp: float  # epoch seconds


OpenFallbacks: TypeAlias = dict[str, FallbackEntry]  # notification_id -> entry
FallbacksTable: TypeAlias = TableT[str, OpenFallbacks]  # user_id -> open entries


def declare(app: faust.App, settings: Settings) -> FallbacksTable:
    return app.Table(
        "fallbacks",
        default=dict,
        partitions=settings.partitions,
        key_type=bytes,  # raw keys: table_route must hash the bytes the record was keyed by
        help="user_id -> {notification_id: {pending, fallback, sent, exp}}",
    )


def open_entry(
    table: FallbacksTable,
    user_id: str,
    notification_id: str,
    deliveries: int,
    fallback: str,
    now: float,
    ttl: float,
) -> None:
    entries = live_entries(table[user_id], now, MAX_OPEN_PER_USER - 1)
    entries[notification_id] = FallbackEntry(
        pending=deliveries, fallback=fallback, sent=False, exp=now + ttl
    )
    table[user_id] = entries


def is_open(table: FallbacksTable, user_id: str, notification_id: str) -> bool:
    return notification_id in table[user_id]


def record_outcome(
    table: FallbacksTable, user_id: str, notification_id: str, succeeded: bool
) -> str | None:
    """Count one final outcome; return the fallback channel when it must be used now."""
    entries = dict(table[user_id])
    entry = entries.get(notification_id)
    if entry is None:
        return None
    entry = FallbackEntry(
        pending=entry["pending"] - 1,
        fallback=entry["fallback"],
        sent=entry["sent"] or succeeded,
        exp=entry["exp"],
    )
    fallback = entry["fallback"] if entry["pending"] <= 0 and not entry["sent"] else None
    if entry["pending"] <= 0:
        entries.pop(notification_id)  # settled either way; a fallback is used at most once
    else:
        entries[notification_id] = entry
    table[user_id] = entries
    return fallback
