"""Status: folds ``delivery-events`` into the notification status table (and a campaign's
notifications into its outcome counts, tables/campaign_progress.py)."""

from __future__ import annotations

import faust

from agents import safe
from agents.callbacks import Callbacks
from agents.erasure import Erasures
from agents.metrics import Metrics
from agents.supervision import supervised_agent
from agents.tracing import Tracing, annotate
from config.settings import Settings
from config.vocabulary import EventStatus
from streams.campaigns import campaign_of
from streams.deliveries import parse_event
from streams.faust_types import Agent, Event, Stream
from streams.topics import Topics
from tables import Tables, campaign_progress, erasures, status


def register(
    app: faust.App,
    settings: Settings,
    topics: Topics,
    tables: Tables,
    metrics: Metrics,
    tracing: Tracing,
) -> Agent:
    erasure = Erasures(settings, topics, tables, metrics)
    callbacks = Callbacks(topics, metrics) if settings.callbacks_enabled else None

    def erased(user_id: str, requested_at: float) -> bool:
        return erasures.refuses(tables.erased_users, user_id, requested_at)

    async def fold(event: Event) -> None:
        with tracing.span("notify.status", event.message.headers):
            await fold_one(event)

    async def fold_one(event: Event) -> None:
        delivery_event = parse_event(event.message.value)
        if delivery_event.status == EventStatus.ERASED:
            # Not about one notification: the user's history on this partition is forgotten.
            await erasure.anonymise_history(delivery_event.user_id, event.message.partition)
            return
        annotate(
            {
                "notify.notification_id": delivery_event.notification_id,
                "notify.status": delivery_event.status,
            }
        )
        # Each event is folded once, by its partition's owner: summed over workers, the count
        # is the topic's (receipts, opens and clicks included).
        metrics.event_folded(delivery_event.channel, delivery_event.status)
        before, after = status.record(tables.status, delivery_event, erased)
        if callbacks is not None:
            await callbacks.after_fold(delivery_event, before, after)
        campaign_id = campaign_of(delivery_event.notification_id)
        if campaign_id is None:
            return
        # A campaign's notification: its progress counts it by the status it is now in.
        campaign_progress.tally(
            tables.campaign_outcomes,
            campaign_id,
            event.message.partition,
            (before["status"], before.get("reason")) if before else (None, None),
            (after["status"], after.get("reason")),
        )

    async def track_status(stream: Stream) -> None:
        async for event in stream.events():
            # delivery-events is internal, but anyone can write to it: a bad record is kept on
            # its own DLQ for whoever wrote it, and the fold moves on.
            await safe.handle_safely(event, fold, topics.delivery_events_dlq, "track_status")

    return supervised_agent(app, topics.delivery_events, "track_status")(track_status)
