"""Erased users, held whole by every worker: a GlobalTable fed from ``erased-users``.

Every lane may send a user's deliveries, not only the one on the user's partition: a hot user's
go out under ``user_id#n`` on other partitions (streams/salting.py), and retry tiers send from
wherever they are read. So the marker that stops them is on every worker, like the templates
(tables/held_whole.py explains the one partition and the buffer of one). A marker says when the
user was erased; a delivery of a request made up to then is never sent, one made later (the
user came back and registered again) is.

Markers are small (a user id and a time) and erasures rare, so they are kept.
"""

from __future__ import annotations

from typing import TypeAlias

import faust
from faust.types import TableT

from config.settings import Settings
from streams.erasure import ErasedMarker
from tables.held_whole import declare_held_whole

ErasedUsersTable: TypeAlias = TableT[str, float]  # user_id -> erased_at (epoch seconds)


def declare(app: faust.App, settings: Settings) -> ErasedUsersTable:
    return declare_held_whole(
        app,
        "erased_users",
        "user_id -> erased_at: deliveries of requests made up to then are never sent",
        key_type=bytes,
    )


def erased_at(table: ErasedUsersTable, user_id: str) -> float | None:
    value = table.get(user_id)
    return None if value is None else float(value)


def refuses(table: ErasedUsersTable, user_id: str, requested_at: float) -> bool:
    """A request made at ``requested_at`` (0: unknown, as old as can be) for ``user_id`` was
    made before the user was erased: nothing of it may be sent."""
    at = table.get(user_id)
    return at is not None and requested_at <= at


def mark(table: ErasedUsersTable, marker: ErasedMarker) -> None:
    """Idempotent: the latest erasure of a user stands."""
    current = erased_at(table, marker.user_id)
    if current is None or marker.erased_at > current:
        table[marker.user_id] = marker.erased_at
