"""``/v1/users/{user_id}/…``: a user's preferences, devices, contacts and attributes.

Writes are the control records a Kafka producer would write (``user-preferences``,
``device-registrations``, ``user-contacts``, ``user-attributes``, key = user_id), checked by
the same parsers the control agent uses; reads come from the owning worker's tables.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import faust
import msgspec
import orjson
from faust.web import Request, Response, View

from agents.views import user_snapshot
from api.body import field_errors, invalid_record, read_object
from api.context import ApiContext, reply
from api.errors import ApiError, not_found
from api.guard import operation
from api.keys import Scope
from api.schemas import (
    Accepted,
    AttributesBody,
    ContactsBody,
    DeviceBody,
    PreferencesBody,
    UserView,
)
from config.vocabulary import DeviceAction
from streams import topics as topic_names
from streams.campaigns import parse_attributes
from streams.records import InvalidRecord, parse_contact, parse_device, parse_preferences

Parser = Callable[[bytes], object]
Handler = Callable[..., Awaitable[Response]]


def _unmasked(value: str) -> str:
    return value


def _for_user(obj: dict[str, Any], user_id: str) -> dict[str, Any]:
    if obj.get("user_id") not in (None, user_id):
        raise ApiError(400, "invalid_request", "the body's user_id is not the path's")
    return {**obj, "user_id": user_id}


def _checked(obj: dict[str, Any], body: type, parse: Parser) -> bytes:
    errors = field_errors(obj, body)
    if errors:
        raise ApiError(400, "invalid_request", "the request has invalid fields", errors)
    raw = orjson.dumps(obj)
    try:
        parse(raw)
    except InvalidRecord as exc:
        raise invalid_record(exc) from None
    return raw


def register(app: faust.App, ctx: ApiContext) -> None:
    topic = {
        name: app.topic(name, key_type=bytes, value_type=bytes)
        for name in (
            topic_names.PREFERENCES,
            topic_names.DEVICES,
            topic_names.CONTACTS,
            topic_names.USER_ATTRIBUTES,
        )
    }
    tables = ctx.tables

    def snapshot(user_id: str) -> dict[str, Any]:
        found = user_snapshot(tables, user_id, mask=_unmasked)
        if not any(found[part] for part in ("preferences", "devices", "contacts", "attributes")):
            raise not_found(f"no data for user {user_id!r}")
        return found

    def part(user_id: str, name: str) -> dict[str, Any]:
        """One part of the user's data (empty when there is none: not a 404, a user with no
        devices is a user with no devices)."""
        return {"user_id": user_id, name: user_snapshot(tables, user_id, mask=_unmasked)[name]}

    async def write(name: str, user_id: str, raw: bytes) -> Response:
        await ctx.send(topic[name], user_id.encode(), raw)
        return reply(Accepted(user_id=user_id), 202)

    def declare(
        method: str, path: str, scope: Scope, summary: str, **kw: Any
    ) -> Callable[[Handler], Handler]:
        return operation(ctx, method, path, scope, summary=summary, tag="users", **kw)

    @app.page("/v1/users/{user_id}")
    class User(View):
        @declare("GET", "/v1/users/{user_id}", Scope.READ, "Everything held about a user",
                 responses={200: UserView, 404: None})  # fmt: skip
        @app.table_route(table=tables.preferences, match_info="user_id")  # type: ignore[arg-type]
        async def get(self, request: Request, user_id: str) -> Response:
            return self.json(snapshot(user_id))

    @app.page("/v1/users/{user_id}/preferences")
    class Preferences(View):
        @declare("GET", "/v1/users/{user_id}/preferences", Scope.READ, "The user's preferences",
                 responses={200: UserView})  # fmt: skip
        @app.table_route(table=tables.preferences, match_info="user_id")  # type: ignore[arg-type]
        async def get(self, request: Request, user_id: str) -> Response:
            return self.json(part(user_id, "preferences"))

        @declare("PUT", "/v1/users/{user_id}/preferences", Scope.SEND,
                 "Replace the user's preferences", body=PreferencesBody,
                 responses={202: Accepted})  # fmt: skip
        async def put(self, request: Request, user_id: str) -> Response:
            obj = _for_user(await read_object(request), user_id)
            raw = _checked(obj, PreferencesBody, parse_preferences)
            return await write(topic_names.PREFERENCES, user_id, raw)

    @app.page("/v1/users/{user_id}/devices")
    class Devices(View):
        @declare("GET", "/v1/users/{user_id}/devices", Scope.READ, "The user's devices",
                 responses={200: UserView})  # fmt: skip
        @app.table_route(table=tables.preferences, match_info="user_id")  # type: ignore[arg-type]
        async def get(self, request: Request, user_id: str) -> Response:
            return self.json(part(user_id, "devices"))

        @declare("POST", "/v1/users/{user_id}/devices", Scope.SEND,
                 "Register (or unregister) a push token", body=DeviceBody,
                 responses={202: Accepted})  # fmt: skip
        async def post(self, request: Request, user_id: str) -> Response:
            obj = _for_user(await read_object(request), user_id)
            raw = _checked(obj, DeviceBody, parse_device)
            return await write(topic_names.DEVICES, user_id, raw)

    @app.page("/v1/users/{user_id}/devices/{platform}/{token}")
    class Device(View):
        @declare("DELETE", "/v1/users/{user_id}/devices/{platform}/{token}", Scope.SEND,
                 "Unregister a push token", responses={202: Accepted})  # fmt: skip
        async def delete(
            self, request: Request, user_id: str, platform: str, token: str
        ) -> Response:
            obj = {"user_id": user_id, "token": token, "platform": platform,
                   "action": DeviceAction.UNREGISTER.value}  # fmt: skip
            return await write(
                topic_names.DEVICES, user_id, _checked(obj, DeviceBody, parse_device)
            )

    @app.page("/v1/users/{user_id}/contacts")
    class Contacts(View):
        @declare("GET", "/v1/users/{user_id}/contacts", Scope.READ, "The user's contacts",
                 responses={200: UserView})  # fmt: skip
        @app.table_route(table=tables.preferences, match_info="user_id")  # type: ignore[arg-type]
        async def get(self, request: Request, user_id: str) -> Response:
            return self.json(part(user_id, "contacts"))

        @declare("PUT", "/v1/users/{user_id}/contacts", Scope.SEND,
                 "Set the user's addresses (a field left out stays, null removes it)",
                 body=ContactsBody, responses={202: Accepted})  # fmt: skip
        async def put(self, request: Request, user_id: str) -> Response:
            obj = _for_user(await read_object(request), user_id)
            raw = _checked(obj, ContactsBody, parse_contact)
            return await write(topic_names.CONTACTS, user_id, raw)

    @app.page("/v1/users/{user_id}/attributes")
    class Attributes(View):
        @declare("GET", "/v1/users/{user_id}/attributes", Scope.READ, "The user's attributes",
                 responses={200: UserView})  # fmt: skip
        @app.table_route(table=tables.preferences, match_info="user_id")  # type: ignore[arg-type]
        async def get(self, request: Request, user_id: str) -> Response:
            return self.json(part(user_id, "attributes"))

        @declare("PUT", "/v1/users/{user_id}/attributes", Scope.SEND,
                 "Merge attributes (timezone, locale, what segments filter on; null removes)",
                 body=AttributesBody, responses={202: Accepted})  # fmt: skip
        async def put(self, request: Request, user_id: str) -> Response:
            obj = await read_object(request)
            errors = field_errors(obj, AttributesBody)
            if errors:
                raise ApiError(400, "invalid_request", "the request has invalid fields", errors)
            record = {"user_id": user_id, "attributes": obj["attributes"]}
            raw = _checked(record, _AttributesRecord, parse_attributes)
            return await write(topic_names.USER_ATTRIBUTES, user_id, raw)


class _AttributesRecord(msgspec.Struct, frozen=True):
    user_id: str
    attributes: dict[str, Any]
