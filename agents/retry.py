"""Retry tiers: one agent per delay topic holds each retry until its not-before time, then puts
it back on its delivery lane.

Records are acknowledged only once re-routed, and in offset order (``noack`` +
:class:`agents.acks.InOrderAcks`), so the committed offset never passes a retry still waiting in
memory: a crash re-reads it instead of losing it.
"""

from __future__ import annotations

import asyncio
import logging
import time

import faust
from faust.types import EventT, StreamT

from agents import dead_letter, produce
from agents.acks import InOrderAcks
from agents.route import lane
from agents.scheduler import DueScheduler
from config.settings import Settings
from streams.deliveries import Delivery, parse_delivery
from streams.records import InvalidRecord
from streams.topics import Topics, tier_label

log = logging.getLogger(__name__)


def register(app: faust.App, settings: Settings, topics: Topics) -> dict[str, faust.types.AgentT]:
    agents: dict[str, faust.types.AgentT] = {}
    for delay, channel in topics.retries.items():
        name = f"retry_{tier_label(delay)}"
        agents[name] = app.agent(channel, name=name)(_tier_agent(settings, topics))
    return agents


# A re-route that failed (producer error) is tried again after this long, still unacked.
REROUTE_BACKOFF_SECONDS = 1.0


def _tier_agent(settings: Settings, topics: Topics):  # type: ignore[no-untyped-def]
    async def retry_tier(stream: StreamT) -> None:
        acks = InOrderAcks()
        scheduler: DueScheduler[tuple[EventT, Delivery]] = DueScheduler(settings.retry_pending_cap)

        async def dispatch(item: tuple[EventT, Delivery]) -> None:
            event, delivery = item
            try:
                await produce.send(
                    topics.deliveries[lane(delivery)], delivery.user_id.encode(), delivery.to_json()
                )
            except Exception:
                log.exception("re-routing retry %s failed; trying again", delivery.delivery_id)
                scheduler.put_back(time.time() + REROUTE_BACKOFF_SECONDS, item)
                return
            acks.finish(event)

        runner = asyncio.ensure_future(scheduler.run(dispatch))
        try:
            async for event in stream.noack().events():  # type: ignore[attr-defined]
                acks.track(event)
                try:
                    delivery = parse_delivery(event.message.value)
                except InvalidRecord as exc:
                    await dead_letter.dead_letter(topics.deliveries_dlq, event, str(exc))
                    acks.finish(event)
                    continue
                await scheduler.put(delivery.not_before, (event, delivery))
        finally:
            runner.cancel()

    return retry_tier
