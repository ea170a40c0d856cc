"""Control topics into tables: preferences, device registrations and contact addresses.

A producer sets a user up with plain Kafka messages (key = user_id, JSON value) on
``user-preferences``, ``device-registrations`` and ``user-contacts``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import faust
from faust.types import EventT, StreamT

from agents import dead_letter
from config.settings import Settings
from streams import topics as topic_names
from streams.partitioning import is_on_home_partition
from streams.records import InvalidRecord, parse_contact, parse_device, parse_preferences
from streams.topics import Topics
from tables import Tables, contacts, devices, preferences

log = logging.getLogger(__name__)

# A record re-keyed through the by-user topic remembers which control topic it came from.
KIND_HEADER = "x-control-kind"


@dataclass
class ControlWriter:
    settings: Settings
    topics: Topics
    tables: Tables

    def _appliers(self) -> dict[str, tuple[Callable[[Any], Any], Callable[[Any], None]]]:
        t = self.tables
        return {
            topic_names.PREFERENCES: (parse_preferences, lambda r: preferences.put(t.preferences, r)),
            topic_names.DEVICES: (parse_device, lambda r: devices.apply(t.devices, r)),
            topic_names.CONTACTS: (parse_contact, lambda r: contacts.apply(t.contacts, r)),
        }

    async def handle(self, event: EventT) -> None:
        message = event.message
        headers = dict(message.headers or {})
        kind = message.topic
        if kind == topic_names.CONTROL_BY_USER:
            raw_kind = headers.get(KIND_HEADER, b"")
            kind = raw_kind.decode() if isinstance(raw_kind, bytes) else str(raw_kind)
        appliers = self._appliers()
        if kind not in appliers:
            await dead_letter.dead_letter(self.topics.control_dlq, event, f"unknown kind {kind!r}")
            return
        parse, apply = appliers[kind]
        try:
            record = parse(message.value)
        except InvalidRecord as exc:
            await dead_letter.dead_letter(self.topics.control_dlq, event, f"{kind}: {exc}")
            return
        if message.topic != topic_names.CONTROL_BY_USER and not is_on_home_partition(
            record.user_id, message.partition, self.settings.partitions
        ):
            await self.topics.control_by_user.send(
                key=record.user_id.encode(), value=message.value,
                headers={KIND_HEADER: kind.encode()},
            )
            return
        apply(record)


def register(
    app: faust.App, settings: Settings, topics: Topics, tables: Tables
) -> faust.types.AgentT:
    writer = ControlWriter(settings, topics, tables)

    async def apply_control_records(stream: StreamT) -> None:
        async for event in stream.events():
            try:
                await writer.handle(event)
            except Exception:
                log.exception("control record failed on %s", event.message.tp)
                await dead_letter.dead_letter(topics.control_dlq, event, "internal error")

    return app.agent(topics.control, name="apply_control_records")(apply_control_records)
