"""User attributes (``user-attributes`` control topic), the table campaign segments filter.

``scan`` reads one partition's users in key order from a given cursor on, straight from that
partition's store: a campaign's agent on partition p walks only p's share of the users, and a
new owner of p resumes after the last user the previous one emitted. Faust has no public API
for either (its table iterates every active partition, from the start), so ``scan`` reads the
RocksDB store's per-partition databases; the private parts it uses are pinned in
``patches/private_api.py``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeAlias

import faust
from faust.stores.rocksdb import Store as RocksDBStore
from faust.types import TableT

from config.settings import Settings
from streams.campaigns import AttributesUpdate
from streams.partitioning import partition_for

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


class PartitionClosed(Exception):
    """The partition's store is not open here (revoked, or not assigned yet)."""


def scan(
    table: AttributesTable, partition: int, after: str | None, limit: int
) -> list[tuple[str, Mapping[str, Any]]]:
    """Up to ``limit`` users of ``partition`` whose id sorts after ``after`` (byte order), with
    their attributes. Synchronous on purpose: no await while a database iterator is open, so a
    rebalance (which closes the partition's database) can only happen between two calls."""
    store = table.data
    if isinstance(store, RocksDBStore):
        return _scan_rocksdb(store, partition, after, limit)
    # The in-memory store (functional tests): one dict for every partition, keys as written.
    partitions = table.partitions or 1
    keys = sorted(
        str(k)
        for k in store.data  # type: ignore[attr-defined]  # faust's memory Store has .data
        if partition_for(str(k), partitions) == partition and (after is None or str(k) > after)
    )
    return [(k, dict(store.data[k])) for k in keys[:limit]]  # type: ignore[attr-defined]


def _scan_rocksdb(
    store: RocksDBStore, partition: int, after: str | None, limit: int
) -> list[tuple[str, Mapping[str, Any]]]:
    db = store._dbs.get(partition)  # noqa: SLF001  # pinned, patches/private_api.py
    if db is None:
        raise PartitionClosed(partition)
    start = after.encode() if after is not None else None
    found: list[tuple[str, Mapping[str, Any]]] = []
    for raw_key, raw_value in db.items(from_key=start):
        if raw_key == store.offset_key or (start is not None and raw_key == start):
            continue
        value = store._decode_value(raw_value)  # noqa: SLF001  # pinned
        found.append((raw_key.decode(errors="replace"), value))
        if len(found) >= limit:
            break
    return found
