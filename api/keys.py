"""API keys: who may call the HTTP API, with which scopes, at what rate.

A key is ``nk_<key id>_<secret>``. Only the SHA-256 of it is configured (``NOTIFY_API_KEYS``),
so the settings, the chart's Secret and any dump of them never hold a usable key. A plain hash
is enough here, unlike for passwords: the secret is 32 random bytes, so there is nothing to
guess, and a slow hash (bcrypt, argon2) would cost milliseconds on every request.

Rotation: several entries may share a key id, each with its own hash; all are valid until one
is removed, so a caller moves to a new key with no window in which neither works.
Comparison is constant-time (``hmac.compare_digest``) against every hash of the id.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections import defaultdict
from collections.abc import Iterable
from enum import StrEnum
from typing import Annotated

import msgspec
from msgspec import Meta

KEY_PREFIX = "nk_"
KeyId = Annotated[str, Meta(pattern=r"^[A-Za-z0-9-]{1,64}$")]


class Scope(StrEnum):
    SEND = "send"  # write: notifications, campaigns, user data, receipts
    READ = "read"  # statuses, user views, inbox, metrics and operator views
    ADMIN = "admin"  # erasure, dead-letter redrive, anything destructive; implies the others


class KeyEntry(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One configured key, as ``NOTIFY_API_KEYS`` lists it (README, HTTP API)."""

    id: KeyId
    sha256: Annotated[str, Meta(pattern=r"^[0-9a-f]{64}$")]
    scopes: list[Scope]
    rate_per_second: Annotated[float, Meta(gt=0)] | None = None  # else NOTIFY_API_RATE_PER_SECOND
    callback_url: str | None = None  # status callbacks of this caller's notifications


class ApiKey(msgspec.Struct, frozen=True):
    """The caller a request was authenticated as."""

    id: str
    scopes: frozenset[Scope]
    rate_per_second: float | None
    callback_url: str | None

    def allows(self, scope: Scope) -> bool:
        return Scope.ADMIN in self.scopes or scope in self.scopes


def new_key(key_id: str) -> tuple[str, str]:
    """A fresh key and the hash to configure for it."""
    token = f"{KEY_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
    return token, digest(token)


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def key_id_of(token: str) -> str | None:
    """The id part of a well-formed key (ids have no underscore), or None."""
    if not token.startswith(KEY_PREFIX):
        return None
    key_id, sep, secret = token[len(KEY_PREFIX) :].partition("_")
    return key_id if sep and key_id and secret else None


class KeyRing:
    def __init__(self, entries: Iterable[KeyEntry]) -> None:
        self._by_id: dict[str, list[KeyEntry]] = defaultdict(list)
        for entry in entries:
            self._by_id[entry.id].append(entry)

    @classmethod
    def from_json(cls, raw: str) -> KeyRing:
        """``NOTIFY_API_KEYS``: a JSON list of entries; raises ValueError naming the defect."""
        if not raw.strip():
            return cls(())
        try:
            return cls(msgspec.json.decode(raw, type=list[KeyEntry]))
        except msgspec.ValidationError as exc:
            raise ValueError(f"NOTIFY_API_KEYS: {exc}") from None
        except msgspec.DecodeError as exc:
            raise ValueError(f"NOTIFY_API_KEYS is not JSON: {exc}") from None

    @property
    def enabled(self) -> bool:
        """No key configured: the API is open (local runs, the demo), and says so at start."""
        return bool(self._by_id)

    def authenticate(self, token: str) -> ApiKey | None:
        key_id = key_id_of(token)
        entries = self._by_id.get(key_id or "", [])
        presented = digest(token)
        found: KeyEntry | None = None
        for entry in entries:  # every hash of the id is compared: no early exit to time
            if hmac.compare_digest(presented, entry.sha256):
                found = entry
        if found is None:
            return None
        return ApiKey(found.id, frozenset(found.scopes), found.rate_per_second, found.callback_url)
