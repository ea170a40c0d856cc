"""Pure helpers for values that hold a bounded, self-expiring set of recent entries.

Faust tables cannot delete keys outside an event of the key's partition, so time-limited state
(dedup keys, rate windows, the delivery ledger) lives inside the user's own value and is pruned
whenever that user is written: storage stays bounded without a sweeper.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def live_entries(
    entries: Mapping[str, Any], now: float, cap: int, expires_at: str = "exp"
) -> dict[str, Any]:
    """Entries whose ``expires_at`` is still in the future, newest ``cap`` kept."""
    live = {k: v for k, v in entries.items() if v[expires_at] > now}
    if len(live) <= cap:
        return live
    newest = sorted(live.items(), key=lambda kv: kv[1][expires_at], reverse=True)[:cap]
    return dict(newest)


def window_hits(timestamps: list[float], now: float, window_seconds: float) -> list[float]:
    """Timestamps inside the sliding window ``(now - window, now]``."""
    start = now - window_seconds
    return [t for t in timestamps if t > start]
