"""API keys: who may call the HTTP API, with which scopes, at what rate.

A key is ``nk_<key id>_<secret>``. Only the SHA-256 of it is configured (``NOTIFY_API_KEYS``),
so the settings, the chart's Secret and any dump of them never hold a usable key. A plain hash
is enough here, unlike for passwords: the secret is 32 random bytes, so there is nothing to
guess, and a slow hash (bcrypt, argon2) would cost milliseconds on every request.

Rotation: several entries may share a key id, each with its own hash; all are valid until one
is removed, so a caller moves to a new key with no window in which neither works.
Comparison is constant-time (``hmac.compare_digest``) against every hash of the id.

Keys made through the API (``POST /v1/keys``, api/key_routes.py) are records of the compacted
``api-keys`` topic, held by every worker (tables/api_keys.py), and are looked up by the hash
of the presented key; revoking one is a tombstone.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections import defaultdict
from collections.abc import Callable, Iterable

import msgspec

from streams.api_keys import KeyEntry, record_key
from streams.api_keys import Scope as Scope  # re-exported: routes import it from api

KEY_PREFIX = "nk_"
# Looks a key up by "<key id>:<sha256>" in the keys from the api-keys topic (tables/api_keys.py).
TopicLookup = Callable[[str], KeyEntry | None]


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
    """The keys from the settings, and those from the ``api-keys`` topic once ``from_topic``
    is given (the app passes its table's lookup)."""

    def __init__(self, entries: Iterable[KeyEntry], from_topic: TopicLookup | None = None) -> None:
        self._by_id: dict[str, list[KeyEntry]] = defaultdict(list)
        for entry in entries:
            self._by_id[entry.id].append(entry)
        self.from_topic = from_topic

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
        """No key in the settings: the API is open (local runs, the demo), and says so at
        start. The settings hold at least the first admin key, which makes the others."""
        return bool(self._by_id)

    def settings_entries(self) -> list[KeyEntry]:
        return [entry for entries in self._by_id.values() for entry in entries]

    def authenticate(self, token: str) -> ApiKey | None:
        key_id = key_id_of(token)
        if key_id is None:
            return None
        entries = list(self._by_id.get(key_id, []))
        presented = digest(token)
        if self.from_topic is not None:
            # Looked up by the hash just computed; still compared below, like the others.
            stored = self.from_topic(record_key(key_id, presented))
            if stored is not None:
                entries.append(stored)
        found: KeyEntry | None = None
        for entry in entries:  # every hash of the id is compared: no early exit to time
            if hmac.compare_digest(presented, entry.sha256) and entry.id == key_id:
                found = entry
        if found is None:
            return None
        return ApiKey(found.id, frozenset(found.scopes), found.rate_per_second, found.callback_url)
