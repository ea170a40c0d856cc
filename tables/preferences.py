"""The latest preference snapshot per user (from the ``user-preferences`` control topic)."""

from __future__ import annotations

from typing import TypeAlias, TypedDict

import faust
from faust.types import TableT

from config.settings import Settings
from streams.records import Preferences


class StoredPreferences(TypedDict):
    channels: dict[str, bool]  # Channel -> allowed; a channel left out is allowed
    muted_categories: list[str]


PreferencesTable: TypeAlias = TableT[str, StoredPreferences]  # user_id -> preferences


def declare(app: faust.App, settings: Settings) -> PreferencesTable:
    return app.Table(
        "preferences",
        default=None,
        partitions=settings.partitions,
        key_type=bytes,  # raw keys: table_route must hash the bytes the record was keyed by
        help="user_id -> {channels, muted_categories}",
    )


def get(table: PreferencesTable, user_id: str) -> Preferences | None:
    value = table.get(user_id)
    if value is None:
        return None
    return Preferences(user_id, value["channels"], tuple(value["muted_categories"]))


def put(table: PreferencesTable, prefs: Preferences) -> None:
    table[prefs.user_id] = StoredPreferences(
        channels=dict(prefs.channels), muted_categories=list(prefs.muted_categories)
    )
