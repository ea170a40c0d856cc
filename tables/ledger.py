"""Delivery ledger: which delivery ids were already handed to a provider, per user.

Kafka delivers at least once; the ledger is consulted before a send and written after it, so
a replayed delivery record does not reach the person twice. What it cannot stop is a crash
between the provider's answer and the ledger's changelog write.
"""

from __future__ import annotations

import faust
from faust.types import TableT

from config.settings import Settings
from tables.expiring import live_entries

MAX_DELIVERIES_PER_USER = 5000


def declare(app: faust.App, settings: Settings) -> TableT:
    return app.Table(
        "delivery_ledger",
        default=dict,
        partitions=settings.partitions,
        key_type=bytes,  # raw keys: table_route must hash the bytes the record was keyed by
        help="user_id -> {delivery_id: {exp, provider}}",
    )


def already_sent(table: TableT, user_id: str, delivery_id: str, now: float) -> bool:
    entry = table[user_id].get(delivery_id)
    return entry is not None and entry["exp"] > now


def record_sent(
    table: TableT, user_id: str, delivery_id: str, provider: str, now: float, ttl: float
) -> None:
    entries = live_entries(table[user_id], now, MAX_DELIVERIES_PER_USER - 1)
    entries[delivery_id] = {"exp": now + ttl, "provider": provider}
    table[user_id] = entries
