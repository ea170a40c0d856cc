"""``GET /v1/users/{user_id}/inbox/stream``: the user's new in-app messages, live, as
Server-Sent Events, and the changes of their state as events named ``change``
(``{"action": "read", "notification_id": "n1", "unread": 3}``; ``read_all`` names none).

Served by the worker that owns the user's partition: its deliver lane adds the user's messages
and hands each to this worker's hub (agents/inbox_hub.py). ``table_route`` forwards only whole
responses, so another worker answers ``307`` with the owner's URL; a client follows it with its
``Authorization`` header (aiohttp and browsers drop that header on a redirect to another
origin, so a client re-sends it itself). Each message is one event whose ``id`` is its position
in the inbox; a client reconnecting with ``Last-Event-ID`` (or ``?last_event_id=``) is first
sent what the inbox keeps after it. A comment line goes out after every
``NOTIFY_INBOX_STREAM_HEARTBEAT_SECONDS`` without a message. The stream ends when the worker
stops, when its client falls too far behind (``NOTIFY_INBOX_STREAM_QUEUE``), and when a
rebalance gives the user's partition to another worker; the client reconnects, to the new
owner.

Not an operation of /openapi.json: OpenAPI cannot describe an event stream's items, and
a schema-driven client reading it would wait forever. The guard still requires the read
scope (every GET that is not a declared operation needs it).
"""

from __future__ import annotations

import logging
from typing import Any, cast

import faust
import msgspec
from aiohttp import web
from faust.web import Request, Response, View
from yarl import URL

from agents.inbox_hub import FeedClosed, InboxChange
from agents.inbox_owner import is_this_worker, owner_url
from api.context import ApiContext
from api.errors import ApiError
from api.inbox_schemas import item
from tables import inbox
from tables.inbox import InboxEntry

log = logging.getLogger(__name__)

PATH = "/v1/users/{user_id}/inbox/stream"
RETRY_MS = 2000  # how long EventSource waits before it reconnects
_ENCODER = msgspec.json.Encoder()


def event(entry: InboxEntry) -> bytes:
    """One message as an SSE event (JSON has no raw newline, so ``data`` is one line)."""
    return b"id: %d\ndata: %s\n\n" % (entry.position, _ENCODER.encode(item(entry)))


def change_event(change: InboxChange) -> bytes:
    """A state change as an SSE event named ``change`` and without an ``id``: the client's
    Last-Event-ID stays the last message's (a change is not replayed on reconnecting; the
    reconnected client lists the inbox for the state of what it already had)."""
    data = {
        "action": change.action,
        "notification_id": change.notification_id,
        "unread": change.unread,
    }
    return b"event: change\ndata: %s\n\n" % _ENCODER.encode(data)


HEARTBEAT = b": heartbeat\n\n"
OPENING = b"retry: %d\n: connected\n\n" % RETRY_MS


def last_event_id(request: Any) -> int | None:
    raw = request.headers.get("Last-Event-ID") or request.query.get("last_event_id")
    if raw is None or raw == "":
        return None
    if not raw.isdigit() or len(raw) > 18:
        raise ApiError(400, "invalid_request", "Last-Event-ID must be an id this stream sent")
    return int(raw)


def missed(entries: list[InboxEntry], after: int | None) -> list[InboxEntry]:
    """What a client resuming after id ``after`` has not seen, oldest first (nothing for a
    fresh stream: its client lists the inbox itself)."""
    if after is None:
        return []
    return sorted((e for e in entries if e.position > after), key=lambda e: e.position)


def redirect_to(owner: URL, request_url: URL) -> URL:
    """The same path and query on the owning worker."""
    return owner.with_path(request_url.path).with_query(request_url.query)


def register(app: faust.App, ctx: ApiContext) -> None:
    hub = ctx.inbox_hub
    table = ctx.tables.inbox
    heartbeat = ctx.settings.inbox_stream_heartbeat_seconds

    @app.page(PATH)
    class InboxStream(View):
        async def get(self, request: Request, user_id: str) -> Response:
            after = last_event_id(request)
            owner = owner_url(app, table, user_id)
            if owner is None or hub is None:
                # A rebalance is under way: the client retries after a second (Retry-After).
                raise ApiError(
                    503, "unavailable", "no worker owns this inbox yet; retry", retry_after=1.0
                )
            if not is_this_worker(app, owner):
                location = str(redirect_to(owner, URL(str(request.url))))
                return cast(Response, web.Response(status=307, headers={"Location": location}))
            response = web.StreamResponse(
                headers={
                    "Content-Type": "text/event-stream",
                    "Cache-Control": "no-cache",
                    "X-Accel-Buffering": "no",  # a proxy in front must not buffer it
                }
            )
            # Subscribed and read in one step (no await between): a message is either in
            # what the inbox holds now or offered to the feed, never neither nor both.
            feed = hub.subscribe(user_id)
            backlog = missed(inbox.entries(table, user_id), after)
            sent = after if after is not None else -1
            try:
                await response.prepare(cast(web.Request, request))
                await response.write(OPENING)
                for kept in backlog:
                    await response.write(event(kept))
                    sent = kept.position
                while True:
                    new = await feed.next_entry(heartbeat)
                    if new is None:
                        await response.write(HEARTBEAT)
                    elif isinstance(new, InboxChange):
                        await response.write(change_event(new))
                    elif new.position > sent:
                        await response.write(event(new))
                        sent = new.position
            except FeedClosed as closed:
                log.info("ended a live inbox stream: %s", closed)
            except ConnectionError:
                pass  # the client went away; found at the next write
            finally:
                hub.unsubscribe(feed)
            return cast(Response, response)
