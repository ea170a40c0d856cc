"""``DELETE /v1/users/{user_id}`` (erasure) and ``/v1/unsubscribe/{token}`` (one-click links).

Both write one control record, keyed by user_id, and answer 202 once the broker has it: the
erasure and the preference change are applied on the user's own partition by the control
agent (agents/erasure.py), which is also what makes them survive a worker restart.

The unsubscribe link needs no API key (api/guard.py lets ``/v1/unsubscribe/`` through): the
mail client POSTs it on the user's behalf (RFC 8058), and the token's HMAC is the
authorisation (providers/unsubscribe.py). ``GET`` only shows a page with a button that POSTs:
mail scanners fetch links, and a fetch must never unsubscribe anyone.
"""

from __future__ import annotations

import html
import time
from typing import cast

import faust
import msgspec
from aiohttp import web
from faust.web import Request, Response, View

from api.context import ApiContext
from api.errors import ApiError
from api.guard import caller, operation
from api.keys import Scope
from api.schemas import Accepted
from providers.unsubscribe import PATH, UnsubscribeClaim, UnsubscribeLinks, UnsubscribeTokenError
from streams import topics as topic_names
from streams.erasure import Unsubscribe, UserErasure, encode


class Unsubscribed(msgspec.Struct, frozen=True, kw_only=True):
    """Written to the broker: the user's next notification of it is not sent."""

    status: str = "accepted"
    category: str | None = None
    channel: str | None = None


def _claim(links: UnsubscribeLinks, token: str) -> UnsubscribeClaim:
    try:
        return links.verify(token, time.time())
    except UnsubscribeTokenError as exc:
        # An expired link was ours: the caller may ask for a new one. Any other is refused.
        status = 400 if exc.code == "expired_link" else 403
        raise ApiError(status, exc.code, str(exc)) from None


class Erasure:
    """The erasure route's work; ``api/users.py`` serves it as the ``DELETE`` of its
    ``/v1/users/{user_id}`` view (aiohttp takes one view per path)."""

    def __init__(self, app: faust.App, ctx: ApiContext) -> None:
        self.ctx = ctx
        self.topic = app.topic(topic_names.USER_ERASURES, key_type=bytes, value_type=bytes)
        operation(ctx, "DELETE", "/v1/users/{user_id}", Scope.ADMIN,
                  summary="Erase the user: every value held, pending deliveries, the history",
                  responses={202: Accepted}, tag="users")  # fmt: skip

    async def delete(self, request: Request, user_id: str) -> Response:
        if not user_id.strip():
            raise ApiError(400, "invalid_request", "the user id must not be blank")
        key = caller(request)
        record = UserErasure(
            user_id=user_id, requested_at=time.time(), requested_by=key.id if key else ""
        )
        await self.ctx.send(self.topic, user_id.encode(), encode(record))
        body = msgspec.to_builtins(Accepted(user_id=user_id))
        return cast(Response, web.json_response(body, status=202))


def register(app: faust.App, ctx: ApiContext) -> None:
    links = UnsubscribeLinks(ctx.settings)
    topic = app.topic(topic_names.USER_UNSUBSCRIBES, key_type=bytes, value_type=bytes)
    path = PATH + "{token}"

    @app.page(path)
    class OneClick(View):
        @operation(ctx, "POST", path, None, summary="One-click unsubscribe (RFC 8058)",
                   responses={202: Unsubscribed, 403: None}, tag="users")  # fmt: skip
        async def post(self, request: Request, token: str) -> Response:
            claim = _claim(links, token)
            record = Unsubscribe(
                user_id=claim.user_id,
                category="" if claim.channel else claim.category,
                channel=claim.channel or None,
            )
            await ctx.send(topic, claim.user_id.encode(), encode(record))
            answer = Unsubscribed(category=record.category or None, channel=record.channel)
            return cast(Response, web.json_response(msgspec.to_builtins(answer), status=202))

        async def get(self, request: Request, token: str) -> Response:
            """Not an API operation (a page for people): says what the button will do."""
            claim = _claim(links, token)
            what = html.escape(claim.channel or claim.category)
            page = (
                '<!DOCTYPE html><html><head><meta charset="utf-8"><title>Unsubscribe</title>'
                f"</head><body><p>Stop receiving “{what}” notifications?</p>"
                '<form method="post"><button type="submit">Unsubscribe</button></form>'
                "</body></html>"
            )
            return cast(Response, web.Response(text=page, content_type="text/html"))
