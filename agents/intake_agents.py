"""The request agents: one per request topic (the public one and its re-keyed twin, and the
high, normal and low ones), each a FIFO stream over the intake (agents/intake.py). The public
and high topics' agents resolve what is theirs and pass the rest on; the normal and low ones
resolve behind their CPU ceilings, like the deliver lanes, so a burst of them leaves CPU for
urgent work."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import faust

from agents import safe
from agents.cpu_headroom import CpuHeadroom, livelock_hold
from agents.hot_keys import HotKeys
from agents.intake import Intake
from agents.metrics import Metrics
from agents.supervision import supervised_agent
from agents.tracing import Tracing
from config.clock import clock_from
from config.settings import Settings
from streams.faust_types import Agent, AgentBody, Channel, Event, Stream
from streams.topics import Topics
from tables import Tables


def register(
    app: faust.App,
    settings: Settings,
    topics: Topics,
    tables: Tables,
    headroom: CpuHeadroom,
    metrics: Metrics,
    tracing: Tracing,
    hot_keys: HotKeys | None = None,
) -> dict[str, Agent]:
    """``resolve_requests`` (the public topic and its re-keyed twin), ``resolve_high_requests``
    (the high topic), and ``resolve_normal_requests`` / ``resolve_low_requests`` (what they
    passed on, each behind its CPU ceiling)."""
    intake = Intake(settings, topics, tables, metrics, clock_from(settings.clock_file), hot_keys)
    deferred = settings.passed_on_priorities()

    async def handle(event: Event) -> None:
        with tracing.span("notify.intake", event.message.headers):
            await intake.handle(event, deferred)

    async def resolve_here(event: Event) -> None:
        with tracing.span("notify.intake", event.message.headers):
            await intake.handle(event)

    async def handle_urgent(event: Event) -> None:
        with headroom.urgent():  # the agents behind a ceiling give way meanwhile
            await handle(event)

    def passing_on(name: str, handler: Callable[[Event], Awaitable[None]] = handle) -> AgentBody:
        async def agent(stream: Stream) -> None:
            async for event in stream.events():
                await safe.handle_safely(event, handler, topics.requests_dlq, name)

        return agent

    def behind_ceiling(channel: Channel, name: str, ceiling: float) -> AgentBody:
        hold = livelock_hold(channel)

        async def agent(stream: Stream) -> None:
            headroom.start()
            holds_back = headroom.holds_back(ceiling)
            async for event in stream.events():
                if holds_back:
                    await headroom.wait_below(ceiling, hold)
                await safe.handle_safely(event, resolve_here, topics.requests_dlq, name)

        return agent

    # (key, topic, agent name, body): one agent, so one FIFO stream buffer, per topic group.
    specs = (
        ("resolve", topics.requests, "resolve_requests", passing_on("resolve_requests")),
        (
            "resolve_high",
            topics.requests_high,
            "resolve_high_requests",
            passing_on("resolve_high_requests", handle_urgent),
        ),
        (
            "resolve_normal",
            topics.requests_normal,
            "resolve_normal_requests",
            behind_ceiling(
                topics.requests_normal,
                "resolve_normal_requests",
                settings.normal_requests_cpu_ceiling,
            ),
        ),
        (
            "resolve_low",
            topics.requests_low,
            "resolve_low_requests",
            behind_ceiling(
                topics.requests_low, "resolve_low_requests", settings.deliver_cpu_ceiling_low
            ),
        ),
    )
    return {key: supervised_agent(app, topic, name)(body) for key, topic, name, body in specs}
