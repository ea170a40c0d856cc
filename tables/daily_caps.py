"""Notifications admitted per user on the user's current local day, for the daily cap.

One small value per user (``{"day": "2026-12-01", "count": 3}``): a new local day starts the
count again, so nothing needs sweeping. Only users with a cap are written.
"""

from __future__ import annotations

from typing import TypeAlias, TypedDict

import faust
from faust.types import TableT

from config.settings import Settings


class DayCount(TypedDict):
    day: str  # the user's local date, YYYY-MM-DD
    count: int


DailyCapsTable: TypeAlias = TableT[str, DayCount]  # user_id -> today's count


def declare(app: faust.App, settings: Settings) -> DailyCapsTable:
    return app.Table(
        "daily_caps",
        default=None,
        partitions=settings.partitions,
        key_type=bytes,  # raw keys: table_route must hash the bytes the record was keyed by
        help="user_id -> {day (user's local date), count}",
    )


def count_on(table: DailyCapsTable, user_id: str, day: str) -> int:
    value = table.get(user_id)
    return value["count"] if value is not None and value["day"] == day else 0


def add_one(table: DailyCapsTable, user_id: str, day: str) -> None:
    table[user_id] = DayCount(day=day, count=count_on(table, user_id, day) + 1)
