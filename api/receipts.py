"""``PUT /v1/notifications/{notification_id}/read``: a read receipt, the user read it.

It becomes a ``read`` event on ``delivery-events`` (key = notification_id), which the status
agent folds like any other: the notification's status turns ``read``, the first read's time
is kept, and a caller with a callback URL is told (agents/callbacks.py).

Whose notification: the status row's user, read on the worker that owns the row (the route is
a ``table_route``, forwarded there by the worker that took it). The row may not be there yet:
the status agent folds ``accepted`` after the intake resolved the request, seconds later under
a backlog, and a user may open a push before that. The caller then names the user
(``?user_id=``: a query parameter, since a forwarded request keeps its URL and headers but
not its body), and the receipt is recorded with it; the pipeline's own events name the
recipient when they arrive, and win (tables/status.py). Without the row and without a user it
is a 404, which the caller may retry; a user that is not the row's is a 409.
"""

from __future__ import annotations

import time

import faust
import msgspec
from faust.web import Request, Response, View

from api.context import ApiContext
from api.errors import ApiError, not_found
from api.guard import operation
from api.keys import Scope
from api.schemas import Accepted
from config.vocabulary import EventStatus
from streams.deliveries import DeliveryEvent
from streams.records import MAX_ID
from tables import status

PATH = "/v1/notifications/{notification_id}/read"


def receipt_user(row_user: str | None, named: str | None, notification_id: str) -> str:
    """Pure: the user a receipt is recorded for, or the ApiError to answer with."""
    if named is not None and (not named.strip() or len(named) > MAX_ID):
        raise ApiError(400, "invalid_request", f"user_id: 1 to {MAX_ID} characters")
    if row_user is None:
        if named is None:
            raise not_found(
                f"no notification {notification_id!r} yet: name its user (?user_id=) to "
                "record the receipt before its status exists"
            )
        return named
    if named is not None and named != row_user:
        raise ApiError(409, "user_mismatch", "the notification is another user's")
    return row_user


def register(app: faust.App, ctx: ApiContext) -> None:
    @app.page(PATH)
    class ReadReceipt(View):
        @operation(
            ctx,
            "PUT",
            PATH,
            Scope.SEND,
            summary="Record that the user read the notification (?user_id= names the user "
            "while its status does not exist yet)",
            responses={202: Accepted, 404: None, 409: None},
            tag="notifications",
        )
        @app.table_route(table=ctx.tables.status, match_info="notification_id")  # type: ignore[arg-type]
        async def put(self, request: Request, notification_id: str) -> Response:
            if not notification_id.strip() or len(notification_id) > MAX_ID:
                raise ApiError(400, "invalid_request", f"notification_id: 1 to {MAX_ID} characters")
            row = status.get(ctx.tables.status, notification_id)
            user_id = receipt_user(
                row["user_id"] if row is not None else None,
                request.query.get("user_id"),
                notification_id,
            )
            event = DeliveryEvent(
                notification_id=notification_id,
                user_id=user_id,
                status=EventStatus.READ,
                at=time.time(),
            )
            await ctx.send(ctx.topics.delivery_events, notification_id.encode(), event.to_json())
            accepted = Accepted(
                notification_id=notification_id,
                user_id=user_id,
                status_url=f"/v1/notifications/{notification_id}",
            )
            return self.json(msgspec.to_builtins(accepted), status=202)
