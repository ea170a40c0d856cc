"""``/v1/users/{user_id}/inbox``: a user's in-app inbox, its unread count, and the actions on it.

The listing is read from the owning worker's inbox table (``table_route``). Mark read, mark all
read and archive are ``user-inbox-actions`` records (key = user_id), the same a Kafka producer
may write, applied by the control agent on the user's partition (streams/inbox_actions.py): a
202 says the action is on the broker, and the listing shows it once the owner applied it. The
live stream of the same inbox is api/inbox_stream.py.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import faust
import msgspec
from faust.web import Request, Response, View

from api import inbox_stream
from api.body import invalid_record
from api.context import ApiContext, reply
from api.errors import ApiError
from api.guard import operation
from api.inbox_schemas import InboxPage, page
from api.keys import Scope
from api.schemas import Accepted
from config.vocabulary import InboxAction
from streams.inbox_actions import InboxActionFields, parse_inbox_action
from streams.records import InvalidRecord, to_json
from tables import inbox

Handler = Callable[..., Awaitable[Response]]
_TRUE, _FALSE = ("true", "1", "yes"), ("false", "0", "no", "")


def include_archived(query: Any) -> bool:
    value = str(query.get("include_archived", "")).lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ApiError(400, "invalid_request", "include_archived must be true or false")


def action_record(user_id: str, action: InboxAction, notification_id: str | None) -> bytes:
    """The record the control agent will apply, checked by the same parser it uses."""
    raw = to_json(
        InboxActionFields(user_id=user_id, action=action, notification_id=notification_id)
    )
    try:
        parse_inbox_action(raw)
    except InvalidRecord as exc:
        raise invalid_record(exc) from None
    return raw


def register(app: faust.App, ctx: ApiContext) -> None:
    tables = ctx.tables

    def declare(
        method: str, path: str, scope: Scope, summary: str, **kw: Any
    ) -> Callable[[Handler], Handler]:
        return operation(ctx, method, path, scope, summary=summary, tag="inbox", **kw)

    async def act(user_id: str, action: InboxAction, notification_id: str | None) -> Response:
        raw = action_record(user_id, action, notification_id)
        await ctx.send(ctx.topics.inbox_actions, user_id.encode(), raw)
        return reply(Accepted(user_id=user_id), status=202)

    @app.page("/v1/users/{user_id}/inbox")
    class Inbox(View):
        @declare("GET", "/v1/users/{user_id}/inbox", Scope.READ,
                 "The user's in-app messages, newest first, and the unread count "
                 "(?include_archived=true lists archived ones too)",
                 responses={200: InboxPage})  # fmt: skip
        @app.table_route(table=tables.inbox, match_info="user_id")  # type: ignore[arg-type]
        async def get(self, request: Request, user_id: str) -> Response:
            archived = include_archived(request.query)
            found = inbox.entries(tables.inbox, user_id)
            return self.json(msgspec.to_builtins(page(user_id, found, archived)))

    @app.page("/v1/users/{user_id}/inbox/read-all")
    class ReadAll(View):
        @declare("POST", "/v1/users/{user_id}/inbox/read-all", Scope.SEND,
                 "Mark every kept message read", responses={202: Accepted, 400: None})  # fmt: skip
        async def post(self, request: Request, user_id: str) -> Response:
            return await act(user_id, InboxAction.READ_ALL, None)

    @app.page("/v1/users/{user_id}/inbox/{notification_id}/read")
    class Read(View):
        @declare("POST", "/v1/users/{user_id}/inbox/{notification_id}/read", Scope.SEND,
                 "Mark one message read", responses={202: Accepted, 400: None})  # fmt: skip
        async def post(self, request: Request, user_id: str, notification_id: str) -> Response:
            return await act(user_id, InboxAction.READ, notification_id)

    @app.page("/v1/users/{user_id}/inbox/{notification_id}/archive")
    class Archive(View):
        @declare("POST", "/v1/users/{user_id}/inbox/{notification_id}/archive", Scope.SEND,
                 "Archive one message: left out of the listing and the unread count",
                 responses={202: Accepted, 400: None})  # fmt: skip
        async def post(self, request: Request, user_id: str, notification_id: str) -> Response:
            return await act(user_id, InboxAction.ARCHIVE, notification_id)

    inbox_stream.register(app, ctx)
