"""Idempotency keys seen per user, each with its expiry and the record that claimed it."""

from __future__ import annotations

from typing import Any

import faust
from faust.types import TableT

from config.settings import Settings
from tables.expiring import live_entries

# A single recipient getting more distinct notifications than this inside the TTL is far past
# any rate limit; the oldest keys are dropped first.
MAX_KEYS_PER_USER = 2000


def declare(app: faust.App, settings: Settings) -> TableT:
    return app.Table(
        "dedup",
        default=dict,
        partitions=settings.partitions,
        key_type=bytes,  # raw keys: table_route must hash the bytes the record was keyed by
        help="user_id -> {idempotency_key: {exp, src}}",
    )


def claim_of(table: TableT, user_id: str, key: str, now: float) -> str | None:
    """The source (``partition:offset``) that claimed ``key``, or None if it is free."""
    entry: dict[str, Any] | None = table[user_id].get(key)
    if entry is None or entry["exp"] <= now:
        return None
    return str(entry["src"])


def claim(table: TableT, user_id: str, key: str, source: str, now: float, ttl: float) -> None:
    entries = live_entries(table[user_id], now, MAX_KEYS_PER_USER - 1)
    entries[key] = {"exp": now + ttl, "src": source}
    table[user_id] = entries
