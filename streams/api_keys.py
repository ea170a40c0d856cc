"""API key records: what ``NOTIFY_API_KEYS`` lists and the compacted ``api-keys`` topic carries.

On the topic each key is one record, key = ``<key id>:<sha256>``, value = its entry; a
tombstone (null value) revokes it. One record per key, not per id, so adding a key for a
rotation never has to read what is there first, and a worker looks a presented key up by
the hash it computes anyway.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import msgspec
from msgspec import Meta

from streams.wire import InvalidRecord, Raw, RecordDecoder


class Scope(StrEnum):
    SEND = "send"  # write: notifications, campaigns, templates, user data, receipts
    READ = "read"  # statuses, user views, inbox, metrics and operator views
    ADMIN = "admin"  # erasure, keys, dead-letter redrive, anything destructive; implies all


KeyId = Annotated[str, Meta(pattern=r"^[A-Za-z0-9-]{1,64}$")]
Sha256 = Annotated[str, Meta(pattern=r"^[0-9a-f]{64}$")]


class KeyEntry(msgspec.Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    """One key: its id, the SHA-256 of the whole key, what it may do."""

    id: KeyId
    sha256: Sha256
    scopes: list[Scope]
    rate_per_second: Annotated[float, Meta(gt=0)] | None = None  # else NOTIFY_API_RATE_PER_SECOND
    callback_url: Annotated[str, Meta(max_length=2048)] | None = None  # status callbacks


_ENTRY = RecordDecoder(KeyEntry, name="api key")


def record_key(key_id: str, sha256: str) -> str:
    return f"{key_id}:{sha256}"


def parse_key_record(key: Raw, value: Raw) -> tuple[str, KeyEntry | None]:
    """(table key, entry) of an ``api-keys`` record; None: the key is revoked."""
    if not key:
        raise InvalidRecord("an api-keys record needs its key: <key id>:<sha256>")
    name = key if isinstance(key, str) else bytes(key).decode(errors="replace")
    if value is None:
        key_id, sep, sha256 = name.partition(":")
        if not sep or not key_id or len(sha256) != 64:
            raise InvalidRecord(f"api-keys tombstone with a bad key {name[:140]!r}")
        return name, None
    entry = _ENTRY.decode(value)
    if name != record_key(entry.id, entry.sha256):
        raise InvalidRecord("an api-keys record's key must be <id>:<sha256> of its value")
    return name, entry


def encode_entry(entry: KeyEntry) -> bytes:
    return msgspec.json.encode(entry)


def decode_stored(value: bytes) -> KeyEntry:
    return msgspec.json.decode(value, type=KeyEntry)
