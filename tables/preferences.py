"""The latest preference snapshot per user (from the ``user-preferences`` control topic)."""

from __future__ import annotations

from typing import NotRequired, TypeAlias, TypedDict

import faust
from faust.types import TableT

from config.settings import Settings
from streams.records import Preferences


class StoredPreferences(TypedDict):
    channels: dict[str, bool]  # Channel -> allowed; a channel left out is allowed
    muted_categories: list[str]
    # Written since quiet hours and caps: older values have neither.
    quiet_hours: NotRequired[dict[str, list[int]]]  # channel -> [start, end] local minutes
    daily_cap: NotRequired[int | None]


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
    quiet = value.get("quiet_hours") or {}
    return Preferences(
        user_id,
        value["channels"],
        tuple(value["muted_categories"]),
        {channel: (window[0], window[1]) for channel, window in quiet.items()},
        value.get("daily_cap"),
    )


def put(table: PreferencesTable, prefs: Preferences) -> None:
    stored = StoredPreferences(
        channels=dict(prefs.channels), muted_categories=list(prefs.muted_categories)
    )
    if prefs.quiet_hours:
        stored["quiet_hours"] = {c: [start, end] for c, (start, end) in prefs.quiet_hours.items()}
    if prefs.daily_cap is not None:
        stored["daily_cap"] = prefs.daily_cap
    table[prefs.user_id] = stored
