"""The newest in-app notifications per user, for the inbox view."""

from __future__ import annotations

from typing import Any

import faust
from faust.types import TableT

from config.settings import Settings


def declare(app: faust.App, settings: Settings) -> TableT:
    return app.Table(
        "inbox",
        default=list,
        partitions=settings.partitions,
        key_type=bytes,  # raw keys: table_route must hash the bytes the record was keyed by
        help="user_id -> [newest in-app notifications]",
    )


def messages(table: TableT, user_id: str) -> list[dict[str, Any]]:
    return list(table[user_id])


def add(table: TableT, user_id: str, message: dict[str, Any], keep: int) -> None:
    table[user_id] = [message, *table[user_id]][:keep]
