"""Outstanding deliveries of notifications that name a fallback channel.

The resolve stage opens an entry when it fans out; the deliver stage (same user, same
partition) counts final outcomes. When the last delivery has failed and none succeeded, the
fallback channel is used, once.
"""

from __future__ import annotations

from typing import Any

import faust
from faust.types import TableT

from config.settings import Settings
from tables.expiring import live_entries

MAX_OPEN_PER_USER = 1000


def declare(app: faust.App, settings: Settings) -> TableT:
    return app.Table(
        "fallbacks",
        default=dict,
        partitions=settings.partitions,
        key_type=bytes,  # raw keys: table_route must hash the bytes the record was keyed by
        help="user_id -> {notification_id: {pending, fallback, sent, exp}}",
    )


def open_entry(
    table: TableT,
    user_id: str,
    notification_id: str,
    deliveries: int,
    fallback: str,
    now: float,
    ttl: float,
) -> None:
    entries = live_entries(table[user_id], now, MAX_OPEN_PER_USER - 1)
    entries[notification_id] = {
        "pending": deliveries,
        "fallback": fallback,
        "sent": False,
        "exp": now + ttl,
    }
    table[user_id] = entries


def record_outcome(
    table: TableT, user_id: str, notification_id: str, succeeded: bool
) -> str | None:
    """Count one final outcome; return the fallback channel when it must be used now."""
    entries: dict[str, Any] = dict(table[user_id])
    entry = entries.get(notification_id)
    if entry is None:
        return None
    entry = {**entry, "pending": entry["pending"] - 1, "sent": entry["sent"] or succeeded}
    fallback = entry["fallback"] if entry["pending"] <= 0 and not entry["sent"] else None
    if entry["pending"] <= 0:
        entries.pop(notification_id)  # settled either way; a fallback is used at most once
    else:
        entries[notification_id] = entry
    table[user_id] = entries
    return fallback  # type: ignore[no-any-return]
