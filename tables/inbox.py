"""The newest in-app notifications per user, for the inbox view, with their read and archived
state.

Kept as a ring of ``keep`` slots per user (``<user_id>#<slot>``) plus a small head record
(``<user_id>#head``: how many were ever added, and the ring size). Each delivery then writes two
small values. Storing the whole list under the user id rewrote up to ``keep`` messages (~10 KB)
on every in-app delivery, into RocksDB and the changelog. With the ring, a 100,000-delivery
backlog (half in-app) peaked at 608 MB of worker RSS instead of 751 MB and drained at 565
deliveries/s instead of 549 (bench.run priority, README Performance).

Read and archived state is written by the inbox actions (streams/inbox_actions.py, applied by
agents/control.py), never by a delivery, so the delivery write stays those two values: marking
one message rewrites its slot (``read_at`` / ``archived_at``), marking all read moves a
watermark in the head (every position below ``read_upto`` is read: one write, however many
messages). The unread count is counted from the ring when it is read (at most ``keep`` slots,
which the listing reads anyway) rather than kept as a counter every delivery would have to
read and rewrite.

A message's position (its index among all ever added) is its stable id in the ring: the live
inbox stream (api/inbox_stream.py) sends it as the Server-Sent Events ``id``, and a client
resuming after id N gets the kept messages after N.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NotRequired, TypeAlias, TypedDict, cast

import faust
from faust.types import TableT

from config.settings import Settings
from config.vocabulary import InboxAction
from streams.inbox_actions import InboxActionFields


class InboxHead(TypedDict):
    count: int  # messages ever added to the ring
    keep: int  # the ring's size
    read_upto: NotRequired[int]  # positions below it were all marked read; absent: none


class InboxMessage(TypedDict):
    notification_id: str
    title: str
    body: str
    data: dict[str, str]
    at: float  # epoch seconds it was delivered
    read_at: NotRequired[float]  # marked read on its own (a mark-all is the head's watermark)
    archived_at: NotRequired[float]


@dataclass(frozen=True)
class InboxEntry:
    """One kept message as a reader sees it: its position and its folded state."""

    position: int
    message: InboxMessage
    read: bool
    archived: bool


# "<user_id>#head" -> InboxHead; "<user_id>#<slot>" -> InboxMessage
InboxTable: TypeAlias = TableT[str, InboxHead | InboxMessage]


def declare(app: faust.App, settings: Settings) -> InboxTable:
    return app.Table(
        "inbox",
        default=None,
        partitions=settings.partitions,
        key_type=bytes,  # raw keys: table_route must hash the bytes the record was keyed by
        help="<user_id>#head -> {count, keep, read_upto}; <user_id>#<slot> -> one in-app "
        "notification with its read_at / archived_at",
    )


def _head_key(user_id: str) -> str:
    return f"{user_id}#head"


def _slot_key(user_id: str, position: int, keep: int) -> str:
    return f"{user_id}#{position % keep}"


def _head(table: InboxTable, user_id: str) -> InboxHead | None:
    return cast("InboxHead | None", table.get(_head_key(user_id)))  # the head key holds one


def entries(table: InboxTable, user_id: str) -> list[InboxEntry]:
    """Every kept message, archived ones too, newest first."""
    head = _head(table, user_id)
    if not head:
        return []
    count, keep, read_upto = head["count"], head["keep"], head.get("read_upto", 0)
    found: list[InboxEntry] = []
    for position in range(count - 1, max(count - keep, 0) - 1, -1):
        stored = cast("InboxMessage | None", table.get(_slot_key(user_id, position, keep)))
        if stored is None:
            continue
        # A copy, so the caller cannot change the stored value.
        message = cast(InboxMessage, dict(stored))
        read = position < read_upto or "read_at" in message
        found.append(InboxEntry(position, message, read, "archived_at" in message))
    return found


def messages(table: InboxTable, user_id: str) -> list[InboxMessage]:
    """Newest first, archived ones too."""
    return [entry.message for entry in entries(table, user_id)]


def unread(found: list[InboxEntry]) -> int:
    """Kept messages neither read nor archived (an archived one no longer asks for attention)."""
    return sum(1 for entry in found if not entry.read and not entry.archived)


def add(table: InboxTable, user_id: str, message: InboxMessage, keep: int) -> int:
    """Keep ``message`` as the user's newest; its position."""
    head = _head(table, user_id) or InboxHead(count=0, keep=keep)
    if head["keep"] != keep:
        # The ring size changed (NOTIFY_INBOX_SIZE): start a fresh ring rather than read
        # messages back in the wrong order.
        head = InboxHead(count=0, keep=keep)
    position = head["count"]
    table[_slot_key(user_id, position, keep)] = message
    moved = InboxHead(count=position + 1, keep=keep)
    if "read_upto" in head:
        moved["read_upto"] = head["read_upto"]
    table[_head_key(user_id)] = moved
    return position


def _find(table: InboxTable, user_id: str, notification_id: str) -> InboxEntry | None:
    for entry in entries(table, user_id):
        if entry.message["notification_id"] == notification_id:
            return entry
    return None


def _rewrite(table: InboxTable, user_id: str, entry: InboxEntry, message: InboxMessage) -> None:
    head = _head(table, user_id)
    if head is not None:  # entries() found the entry through it
        table[_slot_key(user_id, entry.position, head["keep"])] = message


def mark_read(table: InboxTable, user_id: str, notification_id: str, at: float) -> bool:
    """Whether anything changed: a message no longer kept, or already read, is left alone."""
    entry = _find(table, user_id, notification_id)
    if entry is None or entry.read:
        return False
    _rewrite(table, user_id, entry, InboxMessage(**entry.message, read_at=at))
    return True


def mark_all_read(table: InboxTable, user_id: str) -> bool:
    head = _head(table, user_id)
    if head is None or head.get("read_upto", 0) >= head["count"]:
        return False
    table[_head_key(user_id)] = InboxHead(
        count=head["count"], keep=head["keep"], read_upto=head["count"]
    )
    return True


def archive(table: InboxTable, user_id: str, notification_id: str, at: float) -> bool:
    entry = _find(table, user_id, notification_id)
    if entry is None or entry.archived:
        return False
    _rewrite(table, user_id, entry, InboxMessage(**entry.message, archived_at=at))
    return True


def apply(table: InboxTable, action: InboxActionFields, now: float) -> bool:
    """One inbox action (parsed: ``notification_id`` is there but for read_all); whether it
    changed anything (a repeated action, or one on a message the ring no longer keeps, does
    not)."""
    at = action.at if action.at is not None else now
    if action.action == InboxAction.READ_ALL:
        return mark_all_read(table, action.user_id)
    notification_id = action.notification_id or ""
    if action.action == InboxAction.READ:
        return mark_read(table, action.user_id, notification_id, at)
    return archive(table, action.user_id, notification_id, at)
