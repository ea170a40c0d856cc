"""Delivery ledger: which delivery ids were already handed to a provider, per user.

Kafka delivers at least once; the ledger is consulted before a send and written after it, so
a replayed delivery record does not reach the person twice. What it cannot stop is a crash
between the provider's answer and the ledger's changelog write, which is why that write has a
producer of its own (tables/prompt_changelog.py). A user's entries are split
into buckets (tables/expiring.py): a send rewrites about 1/16 of them.
"""

from __future__ import annotations

from typing import TypeAlias, TypedDict

import faust
from faust.types import TableT

from config.settings import Settings
from tables.expiring import live_entry, put_entry
from tables.prompt_changelog import PromptChangelogTable

MAX_DELIVERIES_PER_USER = 5000


class LedgerEntry(TypedDict):
    exp: float  # epoch seconds
    provider: str  # the provider that took the delivery


LedgerBucket: TypeAlias = dict[str, LedgerEntry]  # delivery id -> its send
LedgerTable: TypeAlias = TableT[str, LedgerBucket]  # "<user_id>#<bucket>" -> bucket


def declare(app: faust.App, settings: Settings) -> LedgerTable:
    # Its changelog writes go out on their own connection (tables/prompt_changelog.py): the
    # sooner one is at the broker, the fewer sends a failover repeats.
    table = PromptChangelogTable(
        app,
        name="delivery_ledger",
        default=dict,
        beacon=app.tables.beacon,
        partitions=settings.partitions,
        key_type=bytes,  # raw keys: table_route must hash the bytes the record was keyed by
        help="<user_id>#<bucket> -> {delivery_id: {exp, provider}}",
        linger_ms=settings.ledger_linger_ms,
    )
    app.tables.add(table)
    return table


async def flush(table: LedgerTable) -> None:
    """Every ledger write so far is at the broker (a rebalance waits for this before the
    partitions go, so their next owner knows every send)."""
    if isinstance(table, PromptChangelogTable):  # what declare() builds
        await table.flush_changelog()


def sent_by(table: LedgerTable, user_id: str, delivery_id: str, now: float) -> str | None:
    """The provider that took this delivery, if it was already sent."""
    entry = live_entry(table, user_id, delivery_id, now)
    return None if entry is None else str(entry.get("provider") or "unknown")


def record_sent(
    table: LedgerTable, user_id: str, delivery_id: str, provider: str, now: float, ttl: float
) -> None:
    entry = LedgerEntry(exp=now + ttl, provider=provider)
    put_entry(table, user_id, delivery_id, entry, now, MAX_DELIVERIES_PER_USER)
