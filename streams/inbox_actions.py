"""Inbox actions: a user marks an in-app message read, marks all read, or archives one.

Plain Kafka records on ``user-inbox-actions`` (key = user_id, JSON), written by the HTTP API or
any producer, applied to the inbox table on the user's own partition by the control agent
(agents/control.py), like every other change to a user's state.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import msgspec

from config.vocabulary import InboxAction
from streams.records import Id
from streams.wire import InvalidRecord, Raw, RecordDecoder

if TYPE_CHECKING:
    InboxActionField = str
else:
    InboxActionField = InboxAction


class InboxActionFields(msgspec.Struct, frozen=True, omit_defaults=True):
    """``{"user_id": "u1", "action": "read", "notification_id": "n1", "at": 1767225600.0}``;
    ``notification_id`` is required but for ``read_all``; ``at`` (epoch seconds, when the user
    acted) defaults to when the record is applied."""

    user_id: Id
    action: InboxActionField
    notification_id: Id | None = None
    at: float | None = None


_INBOX_ACTION = RecordDecoder(InboxActionFields, name="user-inbox-actions record")


def parse_inbox_action(raw: Raw) -> InboxActionFields:
    action = _INBOX_ACTION.decode(raw)
    if not action.user_id.strip():
        raise InvalidRecord("'user_id' is required and must be a non-empty string")
    if action.action != InboxAction.READ_ALL and not (action.notification_id or "").strip():
        raise InvalidRecord(f"'notification_id' is required to {action.action} a message")
    return action
