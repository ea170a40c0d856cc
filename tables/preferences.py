"""The latest preference snapshot per user (from the ``user-preferences`` control topic)."""

from __future__ import annotations

from dataclasses import asdict

import faust
from faust.types import TableT

from config.settings import Settings
from streams.records import Preferences


def declare(app: faust.App, settings: Settings) -> TableT:
    return app.Table(
        "preferences",
        default=None,
        partitions=settings.partitions,
        key_type=bytes,  # raw keys: table_route must hash the bytes the record was keyed by
        help="user_id -> {channels, muted_categories}",
    )


def get(table: TableT, user_id: str) -> Preferences | None:
    value = table.get(user_id)
    if value is None:
        return None
    return Preferences(user_id, value["channels"], tuple(value["muted_categories"]))


def put(table: TableT, prefs: Preferences) -> None:
    value = asdict(prefs)
    value.pop("user_id")
    value["muted_categories"] = list(prefs.muted_categories)
    table[prefs.user_id] = value
