"""API keys from the ``api-keys`` topic, held whole by every worker (a GlobalTable, like the
templates and for the same reasons: any worker may be asked by any caller, keys are few and
change rarely, one partition and a recovery buffer of one record, see tables/held_whole.py).

``<key id>:<sha256>`` -> the entry's JSON bytes.
"""

from __future__ import annotations

from typing import TypeAlias

import faust
from faust.types import TableT

from config.settings import Settings
from streams.api_keys import KeyEntry, decode_stored, encode_entry
from tables.held_whole import declare_held_whole

ApiKeysTable: TypeAlias = TableT[str, bytes]


def declare(app: faust.App, settings: Settings) -> ApiKeysTable:
    return declare_held_whole(
        app,
        "api_keys",
        "<key id>:<sha256> -> {id, sha256, scopes, rate_per_second, callback_url}",
        key_type=str,
        value_type=bytes,
    )


def get(table: ApiKeysTable, key: str) -> KeyEntry | None:
    found = table.get(key)
    return None if found is None else decode_stored(found)


def put(table: ApiKeysTable, key: str, entry: KeyEntry | None) -> None:
    if entry is None:
        table.pop(key, None)
    else:
        table[key] = encode_entry(entry)


def entries(table: ApiKeysTable) -> list[KeyEntry]:
    return [decode_stored(value) for value in table.values() if value is not None]
