"""Retry tiers: one agent per delay topic holds each retry until its not-before time, then puts
it back on its delivery lane.

A record is acked only once re-routed, so the committed offset never passes a retry still
waiting in memory (``patches/commit_guard.py`` commits only runs of finished offsets): a crash
re-reads it instead of losing it. At a rebalance the held retries of the old assignment are
dropped, not re-routed: the partition's next owner reads them again from the committed offset,
and re-routing this copy as well would put the delivery on its lane twice.
"""

from __future__ import annotations

import asyncio
import logging
import time

import faust
from faust.types import TP, EventT, StreamT

from agents import dead_letter, produce
from agents.lanes import is_stale
from agents.route import lane
from agents.scheduler import DueScheduler
from config.settings import Settings
from streams.deliveries import Delivery, parse_delivery
from streams.records import InvalidRecord
from streams.topics import Topics, tier_label

log = logging.getLogger(__name__)


def register(app: faust.App, settings: Settings, topics: Topics) -> dict[str, faust.types.AgentT]:
    agents: dict[str, faust.types.AgentT] = {}
    schedulers: list[DueScheduler[tuple[EventT, Delivery]]] = []
    for delay, channel in topics.retries.items():
        name = f"retry_{tier_label(delay)}"
        agents[name] = app.agent(channel, name=name)(_tier_agent(app, settings, topics, schedulers))

    @app.on_partitions_revoked.connect  # type: ignore[arg-type]  # faust types it loosely
    async def drop_held_retries(sender: object, revoked: set[TP], **kwargs: object) -> None:
        for scheduler in schedulers:
            dropped = scheduler.discard(lambda item: item[0].message.tp in revoked)
            if dropped:
                log.info("rebalance: %d held retries left to the next owner", dropped)

    return agents


# A re-route that failed (producer error) is tried again after this long, still unacked.
REROUTE_BACKOFF_SECONDS = 1.0


def _tier_agent(  # type: ignore[no-untyped-def]
    app: faust.App,
    settings: Settings,
    topics: Topics,
    schedulers: list[DueScheduler[tuple[EventT, Delivery]]],
):
    async def retry_tier(stream: StreamT) -> None:
        scheduler: DueScheduler[tuple[EventT, Delivery]] = DueScheduler(settings.retry_pending_cap)
        schedulers.append(scheduler)

        async def dispatch(item: tuple[EventT, Delivery]) -> None:
            event, delivery = item
            if is_stale(event, app.consumer_generation_id):
                return  # revoked meanwhile: read again by the partition's next owner
            try:
                await produce.send(
                    topics.deliveries[lane(delivery)], delivery.user_id.encode(), delivery.to_json()
                )
            except Exception:
                log.exception("re-routing retry %s failed; trying again", delivery.delivery_id)
                scheduler.put_back(time.time() + REROUTE_BACKOFF_SECONDS, item)
                return
            event.ack()

        runner = asyncio.ensure_future(scheduler.run(dispatch))
        try:
            async for event in stream.noack().events():  # type: ignore[attr-defined]
                try:
                    delivery = parse_delivery(event.message.value)
                except InvalidRecord as exc:
                    await dead_letter.dead_letter(topics.deliveries_dlq, event, str(exc))
                    event.ack()
                    continue
                await scheduler.put(delivery.not_before, (event, delivery))
        finally:
            runner.cancel()
            schedulers.remove(scheduler)

    return retry_tier
