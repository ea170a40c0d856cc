"""Addresses a user must not be sent to again: hard bounces, spam complaints, dead endpoints."""

from __future__ import annotations

from typing import TypeAlias, TypedDict

import faust
from faust.types import TableT

from config.settings import Settings
from config.vocabulary import SuppressionAction
from streams.records import Suppression


class SuppressionEntry(TypedDict):
    reason: str
    at: float  # epoch seconds it was suppressed


Suppressed: TypeAlias = dict[str, SuppressionEntry]  # address -> why and since when
SuppressionsTable: TypeAlias = TableT[str, Suppressed]  # user_id -> suppressed addresses


def declare(app: faust.App, settings: Settings) -> SuppressionsTable:
    return app.Table(
        "suppressions",
        default=dict,
        partitions=settings.partitions,
        key_type=bytes,  # raw keys: table_route must hash the bytes the record was keyed by
        help="user_id -> {address: {reason, at}}",
    )


def suppressed(table: SuppressionsTable, user_id: str) -> Suppressed:
    return dict(table[user_id])


def apply(table: SuppressionsTable, suppression: Suppression, now: float) -> None:
    current = dict(table[suppression.user_id])
    if suppression.action == SuppressionAction.LIFT:
        current.pop(suppression.address, None)
    else:
        current[suppression.address] = SuppressionEntry(reason=suppression.reason, at=now)
    table[suppression.user_id] = current
