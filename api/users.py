"""``/v1/users/{user_id}/…``: a user's preferences, devices, contacts and attributes.

Writes are the control records a Kafka producer would write (``user-preferences``,
``device-registrations``, ``user-contacts``, ``user-attributes``, key = user_id), checked by
the same parsers the control agent uses; reads come from the owning worker's tables.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import faust
from faust.web import Request, Response, View

from agents.views import user_snapshot
from api.body import checked_record, read_object
from api.context import ApiContext, reply
from api.erasure import Erasure
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
from streams.records import parse_contact, parse_device, parse_preferences

Parser = Callable[[bytes], object]
Handler = Callable[..., Awaitable[Response]]


def _unmasked(value: str) -> str:
    return value


def _for_user(obj: dict[str, Any], user_id: str) -> dict[str, Any]:
    if obj.get("user_id") not in (None, user_id):
        raise ApiError(400, "invalid_request", "the body's user_id is not the path's")
    return {**obj, "user_id": user_id}


@dataclass(frozen=True)
class UserPart:
    """One part of a user's data: its path, control topic, write method and record type."""

    name: str  # the path's last segment, and the part's key in the user's snapshot
    topic: str
    method: str  # PUT replaces (or merges, as the record says), POST adds
    summary: str
    body: type
    parse: Parser  # the control agent's own parser: what it would refuse is refused here


PARTS = (
    UserPart("preferences", topic_names.PREFERENCES, "PUT", "Replace the user's preferences",
             PreferencesBody, parse_preferences),
    UserPart("devices", topic_names.DEVICES, "POST", "Register (or unregister) a push token",
             DeviceBody, parse_device),
    UserPart("contacts", topic_names.CONTACTS, "PUT",
             "Set the user's addresses (a field left out stays, null removes it)",
             ContactsBody, parse_contact),
    UserPart("attributes", topic_names.USER_ATTRIBUTES, "PUT",
             "Merge attributes (timezone, locale, what segments filter on; null removes)",
             AttributesBody, parse_attributes),
)  # fmt: skip


def register(app: faust.App, ctx: ApiContext) -> None:
    topic = {p.topic: app.topic(p.topic, key_type=bytes, value_type=bytes) for p in PARTS}
    tables = ctx.tables
    erasure = Erasure(app, ctx)

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

        async def delete(self, request: Request, user_id: str) -> Response:
            return await erasure.delete(request, user_id)  # declared there (api/erasure.py)

    def part_view(spec: UserPart) -> type[View]:
        """The GET of one part of a user, and its write (PUT or POST) to its control topic."""
        path = f"/v1/users/{{user_id}}/{spec.name}"

        @declare("GET", path, Scope.READ, f"The user's {spec.name}", responses={200: UserView})
        @app.table_route(table=tables.preferences, match_info="user_id")
        async def get(view: View, request: Request, user_id: str) -> Response:
            return view.json(part(user_id, spec.name))

        @declare(spec.method, path, Scope.SEND, spec.summary, body=spec.body,
                 responses={202: Accepted})  # fmt: skip
        async def change(view: View, request: Request, user_id: str) -> Response:
            obj = _for_user(await read_object(request), user_id)
            return await write(spec.topic, user_id, checked_record(obj, spec.body, spec.parse)[0])

        methods = {"get": get, spec.method.lower(): change}
        return type(f"User{spec.name.title()}", (View,), methods)

    for user_part in PARTS:
        app.page(f"/v1/users/{{user_id}}/{user_part.name}")(part_view(user_part))

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
                topic_names.DEVICES, user_id, checked_record(obj, DeviceBody, parse_device)[0]
            )
