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
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace
from typing import Any

import faust

from agents import events, produce, safe
from agents.cpu_headroom import CpuHeadroom
from agents.fanout import fan_out, user_key
from agents.hot_keys import HotKeys
from agents.resolve import NO_ADDRESS, Decision, Limits, UserState, decide
from agents.supervision import supervised_agent
from config.settings import Settings
from config.vocabulary import EventStatus, Priority
from streams import topics as topic_names
from streams.deliveries import DeliveryEvent
from streams.faust_types import Agent, Channel, Event, Stream
from streams.partitioning import is_on_home_partition
from streams.records import NotificationRequest, parse_request
from streams.topics import Topics
from tables import (
    Tables,
    dedup,
    fallbacks,
    preferences,
    rate_windows,
)

log = logging.getLogger(__name__)

# Topics producers write to: the public one, and the low one bulk producers may use directly.
_PUBLIC_TOPICS = (topic_names.REQUESTS, topic_names.REQUESTS_LOW)
# Set by ``scripts.replay`` on a copy of a request: the ``topic:partition:offset`` of the record
# it copies. The copy then stands for that record in the dedup check, so it is resolved as a
# replay of it (fanned out again, the ledger dropping what went out) and not refused as a
# duplicate; a copy of a record that never claimed its key is still one.
REPLAY_OF_HEADER = "x-replay-of"


@dataclass
class Intake:
    settings: Settings
    topics: Topics
    tables: Tables
    # Counts each partition's deliveries and salts the lane keys of flagged users (None: off).
    hot_keys: HotKeys | None = None

    @property
    def limits(self) -> Limits:
        return Limits(per_user=self.settings.rate_limit_per_user)

    async def handle(self, event: Event, *, defer_low: bool = False) -> None:
        """Resolve one request record; with ``defer_low`` a low-priority one is passed on to
        ``notification-requests.low`` instead."""
        message = event.message
        # An InvalidRecord goes to the requests DLQ with its reason (agents/safe.py).
        request = parse_request(message.value, default_created_at=message.timestamp or 0.0)
        if defer_low and request.priority == Priority.LOW:
            # Keyed by user_id, so it lands on the user's own partition: no re-keying needed.
            await self._pass_on(self.topics.requests_low, request, event)
            return
        if message.topic in _PUBLIC_TOPICS and not is_on_home_partition(
            request.user_id, message.partition, self.settings.partitions
        ):
            # Another partitioner than murmur2 (or no key): re-keyed once, on the same level.
            low = message.topic == topic_names.REQUESTS_LOW
            await self._pass_on(
                self.topics.requests_low if low else self.topics.requests_by_user, request, event
            )
            return
        await self.resolve(request, _source_of(message), time.time(), message.partition)

    async def _pass_on(self, channel: Channel, request: NotificationRequest, event: Event) -> None:
        """The record as it came, keyed by user_id, with its own timestamp (a request without
        ``created_at`` is timed from it)."""
        message = event.message
        await produce.send(
            channel, request.user_id.encode(), message.value, message.headers, message.timestamp
        )

    async def resolve(
        self, request: NotificationRequest, source: str, now: float, partition: int = 0
    ) -> None:
        """``partition``: the request's, which is its user's (the hot-key detector's count)."""
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
        if not decision.accepted:
            await self._publish(request, EventStatus.REJECTED, now, reason=decision.reason)
            return
        if self.hot_keys is not None:
            self.hot_keys.observe(partition, request.user_id, decision.fanned_out, now)
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
            self.tables,
            self.topics,
            self.settings.inapp_url,
            request,
            decision.channels,
            key_for=user_key if self.hot_keys is None else self.hot_keys.lane_key,
        )
        if not deliveries:
            return Decision(reason=NO_ADDRESS)
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


def _source_of(message: Any) -> str:
    """The record this one is, for the dedup claim: itself, or the one a replay copies."""
    headers = message.headers
    for name, value in headers.items() if isinstance(headers, dict) else headers or ():
        if name == REPLAY_OF_HEADER:
            return value.decode(errors="replace") if isinstance(value, bytes) else str(value)
    return f"{message.topic}:{message.partition}:{message.offset}"


def register(
    app: faust.App,
    settings: Settings,
    topics: Topics,
    tables: Tables,
    headroom: CpuHeadroom,
    hot_keys: HotKeys | None = None,
) -> dict[str, Agent]:
    """``resolve_requests`` (the public topic and its re-keyed twin) and
    ``resolve_low_requests`` (the low-priority requests it passed on)."""
    intake = Intake(settings, topics, tables, hot_keys)
    defer_low = settings.low_requests_wait

    async def handle(event: Event) -> None:
        await intake.handle(event, defer_low=defer_low)

    async def resolve_requests(stream: Stream) -> None:
        async for event in stream.events():
            await safe.handle_safely(event, handle, topics.requests_dlq, "resolve_requests")

    ceiling = settings.deliver_cpu_ceiling_low

    async def resolve_low_requests(stream: Stream) -> None:
        headroom.start()
        async for event in stream.events():
            if ceiling > 0:
                await headroom.wait_below(ceiling)
            await safe.handle_safely(
                event, intake.handle, topics.requests_dlq, "resolve_low_requests"
            )

    return {
        "resolve": supervised_agent(app, topics.requests, "resolve_requests")(resolve_requests),
        "resolve_low": supervised_agent(app, topics.requests_low, "resolve_low_requests")(
            resolve_low_requests
        ),
    }
