"""Per-user sliding window of accepted notification times."""

from __future__ import annotations

from typing import TypeAlias

import faust
from faust.types import TableT

from config.settings import Settings
from tables.expiring import window_hits

RateWindowsTable: TypeAlias = TableT[str, list[float]]  # user_id -> accepted_at, oldest first


def declare(app: faust.App, settings: Settings) -> RateWindowsTable:
    return app.Table(
        "rate_windows",
        default=list,
        partitions=settings.partitions,
        key_type=bytes,  # raw keys: table_route must hash the bytes the record was keyed by
        help="user_id -> [accepted_at, ...] inside the rate window",
    )


def recent(table: RateWindowsTable, user_id: str, now: float, window_seconds: float) -> list[float]:
    return window_hits(table[user_id], now, window_seconds)


def record(table: RateWindowsTable, user_id: str, now: float, window_seconds: float) -> None:
    table[user_id] = [*window_hits(table[user_id], now, window_seconds), now]
