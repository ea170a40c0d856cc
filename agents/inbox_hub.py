"""The live inbox: each worker's open inbox streams, fed as in-app messages are added.

The deliver lane that adds a message to a user's inbox (agents/outcomes.py) hands it to this
worker's hub, which offers it to every stream open for that user here (api/inbox_stream.py
serves them as Server-Sent Events). Only the worker that owns the user's partition adds the
user's messages, so a stream is served by the owner; others redirect to it.

An inbox action applied by the control agent on the same worker (read, archived, all read) is
offered the same way, as a change with the unread count after it, so a user's other open
tabs and devices update their badges without polling.

A lane never waits on a client: each stream has a bounded queue, and a stream whose client reads
too slowly to keep it from filling is closed (the client reconnects with its Last-Event-ID and
is sent what it missed from the ring). With nobody listening to a user, a publish is one dict
lookup.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeAlias

from mode import Service

from config.errors import NotifyError
from tables.inbox import InboxEntry, InboxMessage

log = logging.getLogger(__name__)


class FeedClosed(NotifyError):
    """The stream was closed by the hub; the message says why."""


@dataclass(frozen=True)
class InboxChange:
    """A change of kept messages' state: ``action`` is an InboxAction (``read``, ``archive``,
    ``read_all``); ``notification_id`` names the message (None for ``read_all``); ``unread`` is
    the user's unread count after it."""

    action: str
    notification_id: str | None
    unread: int


Update: TypeAlias = InboxEntry | InboxChange


class InboxFeed:
    """One open stream's queue of the user's new messages and state changes."""

    def __init__(self, user_id: str, size: int) -> None:
        self.user_id = user_id
        # None: closed (put where the queue was emptied, so it always fits).
        self._queue: asyncio.Queue[Update | None] = asyncio.Queue(maxsize=size)
        self.closed_because: str | None = None

    def offer(self, entry: Update) -> bool:
        """Queue ``entry``; False (and the feed closed) when the client has fallen behind."""
        if self.closed_because is not None:
            return False
        try:
            self._queue.put_nowait(entry)
        except asyncio.QueueFull:
            self.close("slow client: its queue was full")
            return False
        return True

    def close(self, reason: str) -> None:
        if self.closed_because is not None:
            return
        self.closed_because = reason
        while not self._queue.empty():
            self._queue.get_nowait()
        self._queue.put_nowait(None)

    async def next_entry(self, wait: float) -> Update | None:
        """The next new message or change; None when ``wait`` seconds passed without one
        (time for a heartbeat). Raises FeedClosed once the hub closed the feed."""
        if self.closed_because is None:
            try:
                entry = await asyncio.wait_for(self._queue.get(), wait)
            except TimeoutError:
                return None
            if entry is not None:
                return entry
        raise FeedClosed(self.closed_because or "closed")


class InboxHub(Service):
    """A Service of the app, so that stopping the worker ends every open stream (aiohttp
    would otherwise wait on them at shutdown)."""

    def __init__(
        self, queue_size: int, on_drop: Callable[[], object] = lambda: None, **kwargs: Any
    ) -> None:
        """``on_drop``: called for each stream closed because its client read too slowly."""
        super().__init__(**kwargs)
        self.queue_size = queue_size
        self._on_drop = on_drop
        self._feeds: dict[str, set[InboxFeed]] = {}
        self.dropped = 0  # feeds closed because their client read too slowly

    @property
    def open_streams(self) -> int:
        return sum(len(feeds) for feeds in self._feeds.values())

    def subscribe(self, user_id: str) -> InboxFeed:
        feed = InboxFeed(user_id, self.queue_size)
        self._feeds.setdefault(user_id, set()).add(feed)
        return feed

    def unsubscribe(self, feed: InboxFeed) -> None:
        feeds = self._feeds.get(feed.user_id)
        if feeds is None:
            return
        feeds.discard(feed)
        if not feeds:
            del self._feeds[feed.user_id]

    def listens(self, user_id: str) -> bool:
        """Whether a stream of the user is open here (so a change is worth working out)."""
        return user_id in self._feeds

    def publish(self, user_id: str, position: int, message: InboxMessage) -> None:
        """A message just added to the user's inbox at ``position`` (tables/inbox.add)."""
        if user_id in self._feeds:
            self._offer(user_id, InboxEntry(position, message, read=False, archived=False))

    def publish_change(self, user_id: str, change: InboxChange) -> None:
        """An inbox action just applied to the user's inbox (agents/control.py)."""
        if user_id in self._feeds:
            self._offer(user_id, change)

    def _offer(self, user_id: str, entry: Update) -> None:
        feeds = self._feeds.get(user_id, set())
        for feed in list(feeds):
            if not feed.offer(entry):
                self.dropped += 1
                self._on_drop()
                log.info("closed a live inbox stream: %s", feed.closed_because)
                self.unsubscribe(feed)

    def close_where(self, moved: Callable[[str], bool], reason: str) -> int:
        """Close every stream of a user for whom ``moved`` says so; how many were closed."""
        closed = 0
        for user_id in [u for u in self._feeds if moved(u)]:
            for feed in self._feeds.pop(user_id):
                feed.close(reason)
                closed += 1
        return closed

    async def on_stop(self) -> None:
        self.close_where(lambda _user: True, "the worker is stopping")
