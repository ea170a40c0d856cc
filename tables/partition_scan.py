"""One partition of a table, read in key order from a cursor on, straight from its store.

Faust has no public API for it (its table iterates every active partition, from the start), so
this reads the RocksDB store's per-partition databases; the private parts it uses are pinned
in ``patches/private_api.py``. Campaign scans (tables/user_attributes.py) and the erasure of a
user's notification history (agents/erasure.py) walk a partition with it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from faust.stores.rocksdb import Store as RocksDBStore
from faust.types import TableT

from streams.partitioning import partition_for


class PartitionClosed(Exception):
    """The partition's store is not open here (revoked, or not assigned yet)."""


def scan(
    table: TableT[str, Any], partition: int, after: str | None, limit: int
) -> list[tuple[str, Mapping[str, Any]]]:
    """Up to ``limit`` keys of ``partition`` that sort after ``after`` (byte order), with
    their values. Synchronous on purpose: no await while a database iterator is open, so a
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
