"""Idempotency keys seen per user, each with its expiry and the record that claimed it; a
user's keys are split into buckets (tables/expiring.py), so a claim rewrites about 1/16 of
them."""

from __future__ import annotations

from typing import TypeAlias, TypedDict

import faust
from faust.types import TableT

from config.settings import Settings
from tables.expiring import live_entry, put_entry

# A single recipient getting more distinct notifications than this inside the TTL is far past
# any rate limit; the oldest keys are dropped first.
MAX_KEYS_PER_USER = 2000


class DedupEntry(TypedDict):
    exp: float  # epoch seconds
    src: str  # the record that claimed the key: ``topic:partition:offset``


DedupBucket: TypeAlias = dict[str, DedupEntry]  # idempotency key -> its claim
DedupTable: TypeAlias = TableT[str, DedupBucket]  # "<user_id>#<bucket>" -> bucket


def declare(app: faust.App, settings: Settings) -> DedupTable:
    return app.Table(
        "dedup",
        default=dict,
        partitions=settings.partitions,
        key_type=bytes,  # raw keys: table_route must hash the bytes the record was keyed by
        help="<user_id>#<bucket> -> {idempotency_key: {exp, src}}",
    )


def claim_of(table: DedupTable, user_id: str, key: str, now: float) -> str | None:
    """The source (``partition:offset``) that claimed ``key``, or None if it is free."""
    entry = live_entry(table, user_id, key, now)
    return None if entry is None else str(entry["src"])


def claim(table: DedupTable, user_id: str, key: str, source: str, now: float, ttl: float) -> None:
    put_entry(table, user_id, key, DedupEntry(exp=now + ttl, src=source), now, MAX_KEYS_PER_USER)
