"""User attributes (``user-attributes`` control topic), the table campaign segments filter.

``scan`` reads one partition's users in key order from a given cursor on: a campaign's agent on
partition p walks only p's share of the users, and a new owner of p resumes after the last user
the previous one emitted (tables/partition_scan.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeAlias

import faust
from faust.types import TableT

from config.settings import Settings
from streams.campaigns import AttributesUpdate
from tables import partition_scan
from tables.partition_scan import PartitionClosed as PartitionClosed

Attributes: TypeAlias = dict[str, Any]  # name -> str | int | float | bool
AttributesTable: TypeAlias = TableT[str, Attributes]  # user_id -> attributes


def declare(app: faust.App, settings: Settings) -> AttributesTable:
    return app.Table(
        "user_attributes",
        default=dict,
        partitions=settings.partitions,
        key_type=bytes,  # raw keys: table_route must hash the bytes the record was keyed by
        help="user_id -> {attribute: value}",
    )


def get(table: AttributesTable, user_id: str) -> Attributes:
    return dict(table[user_id])


def apply(table: AttributesTable, update: AttributesUpdate) -> None:
    current = dict(table[update.user_id])
    for name, value in update.changes.items():
        if value is None:
            current.pop(name, None)
        else:
            current[name] = value
    table[update.user_id] = current


def scan(
    table: AttributesTable, partition: int, after: str | None, limit: int
) -> list[tuple[str, Mapping[str, Any]]]:
    """Up to ``limit`` users of ``partition`` whose id sorts after ``after`` (byte order), with
    their attributes (tables/partition_scan.py)."""
    return partition_scan.scan(table, partition, after, limit)
