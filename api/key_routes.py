"""``/v1/keys``: make, list and revoke API keys (admin scope). A key made here is a record of
the compacted ``api-keys`` topic: every worker reads it into its keys table within moments,
and its value (the key itself) is in the answer only, never stored."""

from __future__ import annotations

from typing import Annotated

import faust
import msgspec
from faust.web import Request, Response, View
from msgspec import Meta

from api.body import read_body
from api.context import ApiContext, reply
from api.errors import ApiError
from api.guard import operation
from api.keys import KeyRing, new_key
from streams.api_keys import KeyEntry, KeyId, Scope, encode_entry, record_key
from tables import api_keys


class NewKeyBody(msgspec.Struct, frozen=True, kw_only=True):
    id: KeyId
    scopes: Annotated[list[Scope], Meta(min_length=1)]
    rate_per_second: Annotated[float, Meta(gt=0)] | None = None
    callback_url: Annotated[str, Meta(max_length=2048)] | None = None


class MadeKey(msgspec.Struct, frozen=True, kw_only=True):
    key: str  # shown this once
    id: str
    sha256: str
    scopes: list[Scope]


class KeyListing(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    sha256_prefix: str  # enough to tell keys apart and to revoke one
    scopes: list[Scope]
    source: str  # settings | topic
    rate_per_second: float | None = None


class KeyList(msgspec.Struct, frozen=True, kw_only=True):
    keys: list[KeyListing]


class Revoked(msgspec.Struct, frozen=True, kw_only=True):
    status: str = "revoked"
    id: str
    sha256_prefix: str


def _listing(entry: KeyEntry, source: str) -> KeyListing:
    return KeyListing(id=entry.id, sha256_prefix=entry.sha256[:12], scopes=entry.scopes,
                      source=source, rate_per_second=entry.rate_per_second)  # fmt: skip


def register(app: faust.App, ctx: ApiContext, ring: KeyRing) -> None:
    table = ctx.tables.api_keys

    @app.page("/v1/keys")
    class Keys(View):
        @operation(ctx, "POST", "/v1/keys", Scope.ADMIN, summary="Make a key (shown once)",
                   body=NewKeyBody, responses={201: MadeKey}, tag="keys")  # fmt: skip
        async def post(self, request: Request) -> Response:
            wanted = await read_body(request, NewKeyBody)
            token, sha256 = new_key(wanted.id)
            entry = KeyEntry(wanted.id, sha256, wanted.scopes, wanted.rate_per_second,
                             wanted.callback_url)  # fmt: skip
            key = record_key(entry.id, sha256)
            await ctx.send(ctx.topics.api_keys, key.encode(), encode_entry(entry))
            return reply(MadeKey(key=token, id=entry.id, sha256=sha256, scopes=entry.scopes), 201)

        @operation(ctx, "GET", "/v1/keys", Scope.ADMIN, summary="Every key, by id and hash prefix",
                   responses={200: KeyList}, tag="keys")  # fmt: skip
        async def get(self, request: Request) -> Response:
            listed = [_listing(e, "settings") for e in ring.settings_entries()]
            listed += [_listing(e, "topic") for e in api_keys.entries(table)]
            return reply(KeyList(keys=sorted(listed, key=lambda k: (k.id, k.sha256_prefix))))

    @app.page("/v1/keys/{key_id}/{sha256}")
    class Key(View):
        @operation(ctx, "DELETE", "/v1/keys/{key_id}/{sha256}", Scope.ADMIN,
                   summary="Revoke a key made through the API (give its whole sha256)",
                   responses={202: Revoked, 404: None, 409: None}, tag="keys")  # fmt: skip
        async def delete(self, request: Request, key_id: str, sha256: str) -> Response:
            if any(e.id == key_id and e.sha256 == sha256 for e in ring.settings_entries()):
                raise ApiError(409, "conflict", "a key from NOTIFY_API_KEYS: remove it there")
            key = record_key(key_id, sha256)
            if api_keys.get(table, key) is None:
                raise ApiError(404, "not_found", "no such key")
            await ctx.send(ctx.topics.api_keys, key.encode(), None)
            return reply(Revoked(id=key_id, sha256_prefix=sha256[:12]), 202)
