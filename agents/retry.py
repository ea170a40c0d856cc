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

import faust
from faust.exceptions import ProducerSendError
from faust.types import TP

from agents import produce, safe
from agents.counters import FAILURES
from agents.lanes import is_stale
from agents.route import lane
from agents.scheduler import DueScheduler
from agents.supervision import supervised_agent
from config.settings import Settings
from streams.deliveries import Delivery, parse_delivery
from streams.faust_types import Agent, Event, Stream
from streams.topics import Topics, tier_label

log = logging.getLogger(__name__)


def register(app: faust.App, settings: Settings, topics: Topics) -> dict[str, Agent]:
    agents: dict[str, Agent] = {}
    schedulers: list[DueScheduler[tuple[Event, Delivery]]] = []
    for delay, channel in topics.retries.items():
        name = f"retry_{tier_label(delay)}"
        agents[name] = supervised_agent(app, channel, name)(
            _tier_agent(app, settings, topics, schedulers, name)
        )

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
    schedulers: list[DueScheduler[tuple[Event, Delivery]]],
    name: str,
):
    async def retry_tier(stream: Stream) -> None:
        scheduler: DueScheduler[tuple[Event, Delivery]] = DueScheduler(settings.retry_pending_cap)
        schedulers.append(scheduler)

        async def dispatch(item: tuple[Event, Delivery]) -> None:
            event, delivery = item
            if is_stale(event, app.consumer_generation_id):
                return  # revoked meanwhile: read again by the partition's next owner
            try:
                await produce.send(
                    topics.deliveries[lane(delivery)], delivery.user_id.encode(), delivery.to_json()
                )
            except ProducerSendError as exc:
                # Refused outright (too large): trying again would refuse it again, forever.
                await safe.dead_letter_or_log(
                    topics.deliveries_dlq,
                    event,
                    f"re-route refused: {exc}",
                    name,
                    "reroute_refused",
                )
            except Exception:
                log.exception("re-routing retry %s failed; trying again", delivery.delivery_id)
                scheduler.put_back(scheduler.now() + REROUTE_BACKOFF_SECONDS, item)
                return
            event.ack()

        async def hold(event: Event) -> None:
            delivery = parse_delivery(event.message.value)
            await scheduler.put(delivery.not_before, (event, delivery))

        async def run_forever() -> None:
            # The dispatcher is a task beside the agent's loop: if it died, the tier would go on
            # reading and holding retries without ever sending one. It never stays dead.
            while True:
                try:
                    await scheduler.run(dispatch)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    FAILURES.agent_restarts[f"{name}.dispatch"] += 1
                    log.exception("%s: the retry dispatcher failed; restarting it", name)
                    await asyncio.sleep(REROUTE_BACKOFF_SECONDS)

        runner = asyncio.ensure_future(run_forever())
        try:
            async for event in stream.noack().events():  # type: ignore[attr-defined]
                if not await safe.handle_safely(event, hold, topics.deliveries_dlq, name):
                    event.ack()  # dead-lettered (or, failing that, logged): nothing holds it
        finally:
            runner.cancel()
            schedulers.remove(scheduler)

    return retry_tier
