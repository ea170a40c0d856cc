"""Everything the tables keep under a user's keys, found and deleted for an erasure.

Deleting a key writes a tombstone to its table's changelog, so compaction drops the user's
values from the changelogs too. Each table is written here only on the event's own partition,
like everywhere else: ``erase_user`` runs on the user's partition (every key below is written
from the user's own events), ``erase_owner_keys`` on each partition for the delivery ledger,
whose keys follow the lane key a delivery came under (a hot user's ``user_id#n`` lands on
other partitions, streams/salting.py).

Not here, and why: the notification status is keyed by notification id (agents/erasure.py
anonymises it on every partition); dedup keys and ledger entries hold ids and address hashes,
no addresses, but are deleted anyway, as they are the user's.
"""

from __future__ import annotations

from collections.abc import Iterable, MutableMapping
from typing import Any

from streams.partitioning import partition_for
from streams.salting import SALT_SEPARATOR, spread_salts
from tables import Tables
from tables.expiring import BUCKETS


def _delete(table: MutableMapping[str, Any], keys: Iterable[str]) -> int:
    """Deletes the keys held (``in`` first: reading a missing key of a table with a default
    would write the default)."""
    deleted = 0
    for key in keys:
        if key in table:
            del table[key]
            deleted += 1
    return deleted


def _buckets(owner: str) -> list[str]:
    return [f"{owner}{SALT_SEPARATOR}{bucket}" for bucket in range(BUCKETS)]


def _inbox_keys(tables: Tables, user_id: str) -> list[str]:
    head = tables.inbox.get(f"{user_id}#head")
    keep = int(head["keep"]) if head else 0  # type: ignore[typeddict-item]  # the head key holds one
    return [f"{user_id}#{slot}" for slot in range(keep)] + [f"{user_id}#head"]


def erase_user(tables: Tables, user_id: str) -> dict[str, int]:
    """Deletes every value the user's own partition keeps for ``user_id``; how many keys per
    table (no values: they are what is being forgotten)."""
    per_user: dict[str, MutableMapping[str, Any]] = {
        "preferences": tables.preferences,
        "devices": tables.devices,
        "contacts": tables.contacts,
        "suppressions": tables.suppressions,
        "user_attributes": tables.user_attributes,
        "rate_windows": tables.rate_windows,
        "daily_caps": tables.daily_caps,
        "fallbacks": tables.fallbacks,
    }
    deleted = {name: _delete(table, [user_id]) for name, table in per_user.items()}
    deleted["inbox"] = _delete(tables.inbox, _inbox_keys(tables, user_id))
    deleted["dedup"] = _delete(tables.dedup, _buckets(user_id))
    return {name: count for name, count in deleted.items() if count}


def ledger_owners(user_id: str, partition: int, partitions: int, fanout: int) -> list[str]:
    """The lane keys of ``user_id`` whose ledger lives on ``partition``: the user's own, and a
    hot user's salted sub-keys (the salts the router uses, streams/salting.py)."""
    owners = [user_id] + [
        f"{user_id}{SALT_SEPARATOR}{salt}" for salt in spread_salts(user_id, fanout, partitions)
    ]
    return [owner for owner in owners if partition_for(owner, partitions) == partition]


def erase_owner_keys(tables: Tables, owners: Iterable[str]) -> int:
    """Deletes the delivery ledger buckets of these lane keys (all on this partition)."""
    return _delete(tables.ledger, [key for owner in owners for key in _buckets(owner)])
