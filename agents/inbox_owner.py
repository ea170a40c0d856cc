"""Which worker owns a user's inbox, and closing live streams whose user moved away.

A Server-Sent Events stream cannot be forwarded like ``table_route`` forwards a GET (it forwards
whole responses), so the stream is served by the worker that owns the user's partition, the one
whose deliver lane adds the user's messages, and any other answers with a redirect to it. Both
ask Faust's router the way ``table_route`` does: the URL the group's assignment gives for the
inbox table's partition of the key.
"""

from __future__ import annotations

import logging

import faust
from faust.types import TP
from yarl import URL

from agents.inbox_hub import InboxHub
from tables.inbox import InboxTable

log = logging.getLogger(__name__)


def owner_url(app: faust.App, table: InboxTable, user_id: str) -> URL | None:
    """The owning worker's web URL; None while no assignment names one (a rebalance)."""
    try:
        url: URL = app.router.key_store(table.name, user_id)
    except KeyError:
        return None
    return url


def _ident(url: URL) -> tuple[str, int]:
    # As faust/app/router.py compares them: a URL without a scheme is parsed as a path.
    return ((url.host if url.scheme else url.path) or "", int(url.port or 80))


def is_this_worker(app: faust.App, url: URL) -> bool:
    return _ident(url) == _ident(URL(str(app.conf.canonical_url)))


def owned_here(app: faust.App, table: InboxTable, user_id: str) -> bool:
    url = owner_url(app, table, user_id)
    return url is not None and is_this_worker(app, url)


def close_streams_that_move(app: faust.App, hub: InboxHub, table: InboxTable) -> None:
    """After each assignment, end the streams of users whose partition went to another worker:
    their messages are added there now, and the client's reconnect is redirected there."""

    @app.on_partitions_assigned.connect  # type: ignore[arg-type]  # faust types it loosely
    async def close_moved_inbox_streams(
        sender: object, assigned: set[TP], **kwargs: object
    ) -> None:
        closed = hub.close_where(
            lambda user_id: not owned_here(app, table, user_id),
            "the user's partition moved to another worker",
        )
        if closed:
            log.info("closed %d live inbox streams whose partition moved", closed)
