"""Status: folds ``delivery-events`` into the notification status table."""

from __future__ import annotations

import logging

import faust
from faust.types import StreamT

from config.settings import Settings
from streams.deliveries import parse_event
from streams.records import InvalidRecord
from streams.topics import Topics
from tables import Tables, status

log = logging.getLogger(__name__)


def register(
    app: faust.App, settings: Settings, topics: Topics, tables: Tables
) -> faust.types.AgentT:
    async def track_status(stream: StreamT) -> None:
        async for event in stream.events():
            try:
                status.record(tables.status, parse_event(event.message.value))
            except InvalidRecord as exc:
                # delivery-events is internal; a bad record is a bug upstream, not a reason to stop.
                log.error("unreadable delivery event at %s: %s", event.message.tp, exc)

    return app.agent(topics.delivery_events, name="track_status")(track_status)
