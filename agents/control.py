"""Control topics into tables: preferences, devices, contacts, suppressions, attributes, and
the in-app inbox's read and archived state.

A producer sets a user up with plain Kafka messages (key = user_id, JSON value) on
``user-preferences``, ``device-registrations``, ``user-contacts`` and ``user-attributes``;
``user-erasures`` forgets a user and ``user-unsubscribes`` mutes a category or a channel
(agents/erasure.py); a user's inbox actions (read, read all, archive) come on
``user-inbox-actions``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import faust

from agents import produce, safe
from agents.erasure import Erasures
from agents.inbox_hub import InboxChange, InboxHub
from agents.metrics import Metrics
from agents.supervision import supervised_agent
from config.settings import Settings
from streams import topics as topic_names
from streams.campaigns import parse_attributes
from streams.erasure import parse_erasure, parse_unsubscribe
from streams.faust_types import Agent, Event, Stream
from streams.inbox_actions import InboxActionFields, parse_inbox_action
from streams.partitioning import is_on_home_partition
from streams.records import (
    InvalidRecord,
    Preferences,
    parse_contact,
    parse_device,
    parse_preferences,
    parse_suppression,
)
from streams.topics import Topics
from streams.wire import quoted
from tables import (
    Tables,
    contacts,
    devices,
    inbox,
    preferences,
    suppressions,
    user_attributes,
)

log = logging.getLogger(__name__)

# A record re-keyed through the by-user topic remembers which control topic it came from.
KIND_HEADER = "x-control-kind"

Applier = Callable[[Any, float], Awaitable[None]]  # (record, the record's timestamp)


def _at_once(apply: Callable[[Any], object]) -> Applier:
    async def applier(record: Any, timestamp: float) -> None:
        apply(record)

    return applier


def control_kind(topic: str, headers: Any) -> str:
    """The control topic a record belongs to: its own, or the one its re-key header names."""
    for name, value in headers.items() if isinstance(headers, dict) else headers or ():
        if name == KIND_HEADER:
            return value.decode(errors="replace") if isinstance(value, bytes) else str(value)
    return topic


@dataclass
class ControlWriter:
    settings: Settings
    topics: Topics
    tables: Tables
    metrics: Metrics
    # This worker's live inbox streams, told of every inbox action applied (agents/inbox_hub.py).
    inbox_hub: InboxHub | None = None

    def __post_init__(self) -> None:
        t = self.tables
        erasures = Erasures(self.settings, self.topics, self.tables, self.metrics)
        self._appliers: dict[str, tuple[Callable[[Any], Any], Applier]] = {
            topic_names.PREFERENCES: (parse_preferences, _at_once(self._put_preferences)),
            topic_names.DEVICES: (parse_device, _at_once(lambda r: devices.apply(t.devices, r))),
            topic_names.CONTACTS: (
                parse_contact,
                _at_once(lambda r: contacts.apply(t.contacts, r)),
            ),
            topic_names.SUPPRESSIONS: (
                parse_suppression,
                _at_once(lambda r: suppressions.apply(t.suppressions, r, time.time())),
            ),
            topic_names.USER_ATTRIBUTES: (
                parse_attributes,
                _at_once(lambda r: user_attributes.apply(t.user_attributes, r)),
            ),
            topic_names.USER_ERASURES: (parse_erasure, erasures.erase),
            topic_names.USER_UNSUBSCRIBES: (parse_unsubscribe, erasures.unsubscribe),
            # Timed by the record (when the API took the action), so a replay keeps its time.
            topic_names.INBOX_ACTIONS: (parse_inbox_action, self._apply_inbox_action),
        }

    async def _apply_inbox_action(self, action: InboxActionFields, timestamp: float) -> None:
        changed = inbox.apply(self.tables.inbox, action, timestamp or time.time())
        hub = self.inbox_hub
        if changed and hub is not None and hub.listens(action.user_id):
            unread = inbox.unread(inbox.entries(self.tables.inbox, action.user_id))
            hub.publish_change(
                action.user_id, InboxChange(action.action, action.notification_id, unread)
            )

    def _put_preferences(self, prefs: Preferences) -> None:
        before = preferences.get(self.tables.preferences, prefs.user_id)
        # An unsubscribe: a channel the user allowed (a channel left out is allowed) now off.
        switched_off = [
            channel
            for channel, allowed in prefs.channels.items()
            if not allowed and (before is None or before.allows_channel(channel))
        ]
        if switched_off:
            self.metrics.unsubscribed(switched_off)
        preferences.put(self.tables.preferences, prefs)

    async def handle(self, event: Event) -> None:
        message = event.message
        kind = control_kind(message.topic, message.headers)
        appliers = self._appliers
        if kind not in appliers:
            raise InvalidRecord(f"unknown kind {quoted(kind)}")
        if message.value is None and kind in topic_names.USER_DATA_CONTROL:
            return  # an erasure's tombstone (agents/erasure.py): the user's values are gone
        parse, apply = appliers[kind]
        try:
            record = parse(message.value)
        except InvalidRecord as exc:
            raise InvalidRecord(f"{kind}: {exc}") from None
        if message.topic in appliers and not is_on_home_partition(
            record.user_id, message.partition, self.settings.partitions
        ):
            await produce.send(
                self.topics.control_by_user,
                record.user_id.encode(),
                message.value,
                {KIND_HEADER: kind.encode()},
            )
            return
        await apply(record, message.timestamp or 0.0)


def register(
    app: faust.App,
    settings: Settings,
    topics: Topics,
    tables: Tables,
    metrics: Metrics,
    inbox_hub: InboxHub | None = None,
) -> Agent:
    writer = ControlWriter(settings, topics, tables, metrics, inbox_hub)

    async def apply_control_records(stream: Stream) -> None:
        async for event in stream.events():
            await safe.handle_safely(
                event, writer.handle, topics.control_dlq, "apply_control_records"
            )

    return supervised_agent(app, topics.control, "apply_control_records")(apply_control_records)
