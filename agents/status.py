"""Status: folds ``delivery-events`` into the notification status table."""

from __future__ import annotations

import faust

from agents import safe
from agents.supervision import RestartingSupervisor
from config.settings import Settings
from streams.deliveries import parse_event
from streams.faust_types import Agent, Event, Stream
from streams.topics import Topics
from tables import Tables, status


def register(app: faust.App, settings: Settings, topics: Topics, tables: Tables) -> Agent:
    async def fold(event: Event) -> None:
        status.record(tables.status, parse_event(event.message.value))

    async def track_status(stream: Stream) -> None:
        async for event in stream.events():
            # delivery-events is internal, but anyone can write to it: a bad record is kept on
            # its own DLQ for whoever wrote it, and the fold moves on.
            await safe.handle_safely(event, fold, topics.delivery_events_dlq, "track_status")

    return app.agent(
        topics.delivery_events, name="track_status", supervisor_strategy=RestartingSupervisor
    )(track_status)
