"""What the inbox routes answer: the kept messages with their state, and the unread count."""

from __future__ import annotations

import msgspec

from tables import inbox
from tables.inbox import InboxEntry


class InboxItem(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One kept in-app message. ``id`` is its position in the user's inbox (every message ever
    added counts): the live stream's event id, which ``Last-Event-ID`` resumes after."""

    id: int
    notification_id: str
    title: str
    body: str
    data: dict[str, str]
    at: float  # epoch seconds it was delivered
    read: bool
    archived: bool
    read_at: float | None = None  # when marked read on its own (not by a mark-all)
    archived_at: float | None = None


class InboxPage(msgspec.Struct, frozen=True, kw_only=True):
    user_id: str
    unread: int  # kept messages neither read nor archived
    messages: list[InboxItem]  # newest first


def item(entry: InboxEntry) -> InboxItem:
    message = entry.message
    return InboxItem(
        id=entry.position,
        notification_id=message["notification_id"],
        title=message["title"],
        body=message["body"],
        data=message["data"],
        at=message["at"],
        read=entry.read,
        archived=entry.archived,
        read_at=message.get("read_at"),
        archived_at=message.get("archived_at"),
    )


def page(user_id: str, entries: list[InboxEntry], include_archived: bool) -> InboxPage:
    shown = [item(e) for e in entries if include_archived or not e.archived]
    return InboxPage(user_id=user_id, unread=inbox.unread(entries), messages=shown)
