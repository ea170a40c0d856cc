"""The intake agent: validate -> dedup -> preferences -> rate window -> fan-out -> route.

Resolve, fan-out and route all key by ``user_id``, so they run in one agent over the user's own
partition: every extra topic hop would cost a full consume/produce cycle (see BROKER.md) and
buy nothing, since no partition key changes between them.

One hop is worth its cost: low-priority requests (campaigns, digests) are passed on untouched
to ``notification-requests.low``, keyed by ``user_id``, and resolved there by a second agent
that, like the low deliver lane, takes a record only while the worker has CPU to spare. A
campaign of 50,000 requests otherwise sat in front of every password reset on the intake's
partitions for as long as resolving it took (the README's Performance section has the figures).
Bulk producers may write to ``notification-requests.low`` themselves and skip that hop.

Normal-priority requests take the same kind of hop, to ``notification-requests.normal``: a
burst of 20,000 of them otherwise held high requests 13 s (p50) on the intake's partitions.
Urgent producers may write to ``notification-requests.high``, which no burst shares: passing a
burst on is cheap but not free, and a request behind it on one partition waits for all of it.
``streams/request_routes.py`` is the one rule for which topic resolves which record.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Collection
from dataclasses import dataclass, field, replace
from typing import Any

import faust

from agents import events, produce, safe
from agents.cpu_headroom import CpuHeadroom
from agents.fanout import fan_out
from agents.metrics import Metrics
from agents.resolve import NO_ADDRESS, Decision, Limits, UserState, decide
from agents.supervision import supervised_agent
from config.settings import Settings
from config.vocabulary import EventStatus
from streams import topics as topic_names
from streams.deliveries import DeliveryEvent
from streams.faust_types import Agent, AgentBody, Channel, Event, Stream
from streams.partitioning import is_on_home_partition
from streams.records import NotificationRequest, parse_request
from streams.request_routes import next_topic
from streams.topics import Topics
from tables import (
    Tables,
    dedup,
    fallbacks,
    preferences,
    rate_windows,
)

log = logging.getLogger(__name__)

# Set by ``scripts.replay`` on a copy of a request: the ``topic:partition:offset`` of the record
# it copies. The copy then stands for that record in the dedup check, so it is resolved as a
# replay of it (fanned out again, the ledger dropping what went out) and not refused as a
# duplicate; a copy of a record that never claimed its key is still one.
REPLAY_OF_HEADER = "x-replay-of"
# A request passed on (to its priority's topic, or re-keyed) names the record it came from, so
# the copy that resolves it claims the idempotency key as that record: a replay of either copy
# then re-sends as the same request (scripts/replay_read.py reads it).
REQUEST_OF_HEADER = "x-request-of"
_ORIGIN_HEADERS = (REPLAY_OF_HEADER, REQUEST_OF_HEADER)


@dataclass
class Intake:
    settings: Settings
    topics: Topics
    tables: Tables
    metrics: Metrics
    # Where a record is passed on to, by topic name (streams/request_routes.py picks the name).
    _channels: dict[str, Channel] = field(init=False)

    def __post_init__(self) -> None:
        t = self.topics
        self._channels = {
            topic_names.REQUESTS_BY_USER: t.requests_by_user,
            topic_names.REQUESTS_HIGH: t.requests_high,
            topic_names.REQUESTS_NORMAL: t.requests_normal,
            topic_names.REQUESTS_LOW: t.requests_low,
        }

    @property
    def limits(self) -> Limits:
        return Limits(per_user=self.settings.rate_limit_per_user)

    async def handle(self, event: Event, deferred: Collection[str] = ()) -> None:
        """Resolve one request record, or pass it on: a priority in ``deferred`` to its own
        request topic, a record off its user's partition to be re-keyed."""
        message = event.message
        # An InvalidRecord goes to the requests DLQ with its reason (agents/safe.py).
        request = parse_request(message.value, default_created_at=message.timestamp or 0.0)
        on_home = is_on_home_partition(request.user_id, message.partition, self.settings.partitions)
        passed = next_topic(message.topic, request.priority, on_home, deferred)
        if passed is not None:
            # Keyed by user_id, so it lands on the user's own partition: no re-keying needed.
            await self._pass_on(self._channels[passed], request, event)
            return
        await self.resolve(request, _source_of(message), time.time())

    async def _pass_on(self, channel: Channel, request: NotificationRequest, event: Event) -> None:
        """The record as it came, keyed by user_id, with its own timestamp (a request without
        ``created_at`` is timed from it)."""
        message = event.message
        headers = _header_items(message.headers)
        if not any(name in _ORIGIN_HEADERS for name, _ in headers):
            headers.append((REQUEST_OF_HEADER, _source_of(message).encode()))
        await produce.send(
            channel, request.user_id.encode(), message.value, headers, message.timestamp
        )

    async def resolve(self, request: NotificationRequest, source: str, now: float) -> None:
        t = self.tables
        window = self.settings.rate_window_seconds
        state = UserState(
            dedup_claim=dedup.claim_of(t.dedup, request.user_id, request.dedup_key, now),
            preferences=preferences.get(t.preferences, request.user_id),
            recent_accepted=rate_windows.recent(t.rate_windows, request.user_id, now, window),
        )
        decision = decide(request, state, source, self.limits)
        if decision.accepted:
            decision = await self._fan_out(request, decision)
        self.metrics.request_resolved(
            request.priority, decision.reason or "accepted", request.created_at, time.time()
        )
        if not decision.accepted:
            await self._publish(request, EventStatus.REJECTED, now, reason=decision.reason)
            return
        if not decision.replay:
            # A replay re-emits deliveries the ledger will drop; it must not reopen anything.
            dedup.claim(
                t.dedup,
                request.user_id,
                request.dedup_key,
                source,
                now,
                self.settings.dedup_ttl_seconds,
            )
            rate_windows.record(t.rate_windows, request.user_id, now, window)
            if request.fallback_channel and decision.fanned_out:
                fallbacks.open_entry(
                    t.fallbacks,
                    request.user_id,
                    request.notification_id,
                    decision.fanned_out,
                    request.fallback_channel,
                    now,
                    self.settings.dedup_ttl_seconds,
                )

    async def _fan_out(self, request: NotificationRequest, decision: Decision) -> Decision:
        deliveries = await fan_out(
            self.tables, self.topics, self.settings.inapp_url, request, decision.channels
        )
        if not deliveries:
            return Decision(reason=NO_ADDRESS)
        self.metrics.fanned_out(deliveries)
        await self._publish(request, EventStatus.ACCEPTED, time.time(), deliveries=len(deliveries))
        return replace(decision, fanned_out=len(deliveries))

    async def _publish(
        self,
        request: NotificationRequest,
        status: EventStatus,
        now: float,
        reason: str | None = None,
        deliveries: int = 0,
    ) -> None:
        await events.publish(
            self.topics.delivery_events,
            DeliveryEvent(
                notification_id=request.notification_id,
                user_id=request.user_id,
                status=status,
                at=now,
                reason=reason,
                requested_at=request.created_at,
                deliveries=deliveries,
            ),
        )


def _header_items(headers: Any) -> list[tuple[str, bytes]]:
    items = headers.items() if isinstance(headers, dict) else headers or ()
    return [
        (name, value if isinstance(value, bytes) else str(value).encode()) for name, value in items
    ]


def _source_of(message: Any) -> str:
    """The record this one is, for the dedup claim: itself, the one a replay copies, or the one
    it was passed on from."""
    found = dict(_header_items(message.headers))
    for name in _ORIGIN_HEADERS:
        if name in found:
            return found[name].decode(errors="replace")
    return f"{message.topic}:{message.partition}:{message.offset}"


def register(
    app: faust.App,
    settings: Settings,
    topics: Topics,
    tables: Tables,
    headroom: CpuHeadroom,
    metrics: Metrics,
) -> dict[str, Agent]:
    """``resolve_requests`` (the public topic and its re-keyed twin), ``resolve_high_requests``
    (the high topic), and ``resolve_normal_requests`` / ``resolve_low_requests`` (what they
    passed on, each behind its CPU ceiling)."""
    intake = Intake(settings, topics, tables, metrics)
    deferred = settings.passed_on_priorities()

    async def handle(event: Event) -> None:
        await intake.handle(event, deferred)

    def passing_on(name: str) -> AgentBody:
        async def agent(stream: Stream) -> None:
            async for event in stream.events():
                await safe.handle_safely(event, handle, topics.requests_dlq, name)

        return agent

    def behind_ceiling(name: str, ceiling: float) -> AgentBody:
        async def agent(stream: Stream) -> None:
            headroom.start()
            async for event in stream.events():
                if ceiling > 0:
                    await headroom.wait_below(ceiling)
                await safe.handle_safely(event, intake.handle, topics.requests_dlq, name)

        return agent

    # (key, topic, agent name, body): one agent, so one FIFO stream buffer, per topic group.
    specs = (
        ("resolve", topics.requests, "resolve_requests", passing_on("resolve_requests")),
        (
            "resolve_high",
            topics.requests_high,
            "resolve_high_requests",
            passing_on("resolve_high_requests"),
        ),
        (
            "resolve_normal",
            topics.requests_normal,
            "resolve_normal_requests",
            behind_ceiling("resolve_normal_requests", settings.normal_requests_cpu_ceiling),
        ),
        (
            "resolve_low",
            topics.requests_low,
            "resolve_low_requests",
            behind_ceiling("resolve_low_requests", settings.deliver_cpu_ceiling_low),
        ),
    )
    return {key: supervised_agent(app, topic, name)(body) for key, topic, name, body in specs}
