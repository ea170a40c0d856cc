"""Helpers for values that hold a bounded, self-expiring set of recent entries.

Faust tables cannot delete keys outside an event of the key's partition, so time-limited state
(dedup keys, rate windows, the delivery ledger) lives inside the user's own values and is
pruned whenever they are written: storage stays bounded without a sweeper.

Per-user maps that grow with a user's traffic (dedup keys, the delivery ledger) are split into
``BUCKETS`` values by a stable hash of the entry key (table key ``<user_id>#<bucket>``, on the
user's partition like every key written from the user's events): a write rewrites about 1/16 of
the user's entries instead of all of them. With one value per user every request or delivery
cost O(entries in the window), serialised and shipped to the changelog whole.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, MutableMapping
from typing import TypedDict, TypeVar

BUCKETS = 16


class Expiring(TypedDict):
    """What every entry of a self-expiring map has: when it expires (epoch seconds)."""

    exp: float


E = TypeVar("E", bound=Expiring)


def live_entries(entries: Mapping[str, E], now: float, cap: int) -> dict[str, E]:
    """Entries whose ``exp`` is still in the future, newest ``cap`` kept."""
    live = {k: v for k, v in entries.items() if v["exp"] > now}
    if len(live) <= cap:
        return live
    newest = sorted(live.items(), key=lambda kv: kv[1]["exp"], reverse=True)[:cap]
    return dict(newest)


def window_hits(timestamps: list[float], now: float, window_seconds: float) -> list[float]:
    """Timestamps inside the sliding window ``(now - window, now]``."""
    start = now - window_seconds
    return [t for t in timestamps if t > start]


def bucket_key(owner: str, key: str) -> str:
    """The table key of the bucket holding ``key`` (crc32: the same in every process)."""
    return f"{owner}#{zlib.crc32(key.encode()) % BUCKETS}"


def live_entry(table: Mapping[str, Mapping[str, E]], owner: str, key: str, now: float) -> E | None:
    """``key``'s entry in ``owner``'s buckets, unless it has expired (``exp``)."""
    entry = table[bucket_key(owner, key)].get(key)
    return entry if entry is not None and entry["exp"] > now else None


def put_entry(
    table: MutableMapping[str, dict[str, E]],
    owner: str,
    key: str,
    entry: E,
    now: float,
    cap_per_owner: int,
) -> None:
    """Store ``entry`` (with its ``exp``) and prune its bucket: expired entries go, and the
    oldest beyond the bucket's share of ``cap_per_owner``."""
    bucket = bucket_key(owner, key)
    entries = live_entries(table[bucket], now, -(-cap_per_owner // BUCKETS) - 1)
    entries[key] = entry
    table[bucket] = entries
