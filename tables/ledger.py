"""Delivery ledger: which delivery ids were already handed to a provider, per user.

Kafka delivers at least once; the ledger is consulted before a send and written after it, so
a replayed delivery record does not reach the person twice. What it cannot stop is a crash
between the provider's answer and the ledger's changelog write.

A user's ledger is split into ``BUCKETS`` values by a stable hash of the delivery id (key
``<user_id>#<bucket>``, on the user's partition like every key written from the user's
events): each send rewrites one bucket, about 1/16 of the user's recent deliveries, instead of
all of them. One value per user made every delivery cost O(deliveries in the dedup window),
serialised and shipped to the changelog whole: up to 5,000 entries for a busy user.
"""

from __future__ import annotations

import zlib

import faust
from faust.types import TableT

from config.settings import Settings
from tables.expiring import live_entries

MAX_DELIVERIES_PER_USER = 5000
BUCKETS = 16
_PER_BUCKET = -(-MAX_DELIVERIES_PER_USER // BUCKETS)


def declare(app: faust.App, settings: Settings) -> TableT:
    return app.Table(
        "delivery_ledger",
        default=dict,
        partitions=settings.partitions,
        key_type=bytes,  # raw keys: table_route must hash the bytes the record was keyed by
        help="<user_id>#<bucket> -> {delivery_id: {exp, provider}}",
    )


def bucket_key(user_id: str, delivery_id: str) -> str:
    """The key of the bucket holding ``delivery_id`` (crc32: the same in every process)."""
    return f"{user_id}#{zlib.crc32(delivery_id.encode()) % BUCKETS}"


def already_sent(table: TableT, user_id: str, delivery_id: str, now: float) -> bool:
    entry = table[bucket_key(user_id, delivery_id)].get(delivery_id)
    return entry is not None and entry["exp"] > now


def record_sent(
    table: TableT, user_id: str, delivery_id: str, provider: str, now: float, ttl: float
) -> None:
    key = bucket_key(user_id, delivery_id)
    entries = live_entries(table[key], now, _PER_BUCKET - 1)
    entries[delivery_id] = {"exp": now + ttl, "provider": provider}
    table[key] = entries
