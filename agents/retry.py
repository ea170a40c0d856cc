"""Retry tiers: one agent per delay topic holds each retry until its not-before time, then puts
it back on its delivery lane.

A record is acked only once re-routed, so the committed offset never passes a retry still
waiting in memory (``patches/commit_guard.py`` commits only runs of finished offsets): a crash
re-reads it instead of losing it. At a rebalance the held retries of the old assignment are
dropped, not re-routed: the partition's next owner reads them again from the committed offset,
and re-routing this copy as well would put the delivery on its lane twice.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import faust

from agents import produce
from agents.holding import Holding, HoldPolicy
from agents.route import lane
from agents.supervision import supervised_agent
from agents.tracing import Tracing
from config.settings import Settings
from streams.deliveries import Delivery, parse_delivery
from streams.faust_types import Agent, Event, Stream
from streams.topics import Topics, tier_label


def register(
    app: faust.App, settings: Settings, topics: Topics, tracing: Tracing
) -> dict[str, Agent]:
    holding: Holding[Delivery] = Holding(app, "held retries", settings.retry_pending_cap)

    def due(event: Event) -> tuple[float, Delivery]:
        delivery = parse_delivery(event.message.value)
        return delivery.not_before, delivery

    async def reroute(event: Event, delivery: Delivery) -> None:
        # Back under the key it came with: a hot user's sub-key keeps its lane partition, and
        # in the record's own trace: the next attempt's span hangs off this one's.
        key = event.message.key or delivery.user_id.encode()
        with tracing.carried(event.message.headers):
            await produce.send(topics.deliveries[lane(delivery)], key, delivery.to_json())

    agents: dict[str, Agent] = {}
    for delay, channel in topics.retries.items():
        name = f"retry_{tier_label(delay)}"
        policy = HoldPolicy(name, "re-route", due, reroute, topics.deliveries_dlq)
        agents[name] = supervised_agent(app, channel, name)(_tier(holding, policy))
    return agents


def _tier(
    holding: Holding[Delivery], policy: HoldPolicy[Delivery]
) -> Callable[[Stream], Awaitable[None]]:
    async def retry_tier(stream: Stream) -> None:
        await holding.run(stream, policy)

    return retry_tier
