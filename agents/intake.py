"""The intake agent: validate -> dedup -> preferences -> rate window -> template render ->
content dedup, daily cap, quiet hours -> fan-out -> route.

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

from agents import events, holds, produce, safe
from agents.admission import Admission, Gate
from agents.cpu_headroom import CpuHeadroom
from agents.fanout import fan_out
from agents.resolve import NO_ADDRESS, Decision, Limits, UserState, decide
from agents.supervision import supervised_agent
from agents.templating import Templating, rejection
from config.clock import Clock, clock_from
from config.settings import Settings
from config.vocabulary import EventStatus, Priority, RejectReason
from streams import topics as topic_names
from streams.deliveries import DeliveryEvent
from streams.faust_types import Agent, Channel, Event, Stream
from streams.holds import Release, release_of
from streams.partitioning import is_on_home_partition
from streams.records import NotificationRequest, parse_request
from streams.rendering import RenderError
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
    clock: Clock  # quiet hours and daily caps (NOTIFY_CLOCK_FILE in tests)

    def __post_init__(self) -> None:
        self.templating = Templating(self.tables)
        self.gate = Gate(self.settings, self.tables, self.clock)

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
        await self.resolve(
            request, _source_of(message), time.time(), release_of(message.headers), message.value
        )

    async def _pass_on(self, channel: Channel, request: NotificationRequest, event: Event) -> None:
        """The record as it came, keyed by user_id, with its own timestamp (a request without
        ``created_at`` is timed from it)."""
        message = event.message
        await produce.send(
            channel, request.user_id.encode(), message.value, message.headers, message.timestamp
        )

    async def resolve(
        self,
        request: NotificationRequest,
        source: str,
        now: float,
        release: Release | None = None,
        raw: bytes | None = None,
    ) -> None:
        """``release``: the request is back from its quiet-hours hold (agents/holds.py); it
        was admitted (dedup, rate window, cap) when it arrived. ``raw``: the record's bytes,
        which a hold keeps."""
        t = self.tables
        window = self.settings.rate_window_seconds
        claim = dedup.claim_of(t.dedup, request.user_id, request.dedup_key, now)
        if release is not None and claim == release.source:
            claim = None  # its own claim, from when it arrived
        state = UserState(
            dedup_claim=claim,
            preferences=preferences.get(t.preferences, request.user_id),
            recent_accepted=()
            if release is not None
            else rate_windows.recent(t.rate_windows, request.user_id, now, window),
        )
        decision = decide(request, state, source, self.limits)
        if release is not None:
            decision = replace(decision, channels=_only(decision.channels, release.channels))
        reason: str | None = decision.reason
        if decision.accepted and request.template_id is not None:
            try:
                request, channels = self.templating.render(request, decision.channels)
                decision = replace(decision, channels=channels)
            except RenderError as exc:
                decision, reason = Decision(reason=RejectReason.TEMPLATE_ERROR), rejection(exc)
        admission = None
        if decision.accepted and not decision.replay:
            admission = self.gate.check(
                request, decision.channels, state.preferences, source, release, now
            )
            if admission.refused is not None:
                await self._publish(request, admission.refused, now, reason=admission.reason)
                return
            decision = replace(decision, channels=admission.send_now)
        if release is not None:
            await self._release(request, decision, release, admission, raw, now)
            return
        held = admission.held if admission is not None else ()
        if decision.accepted and (decision.channels or not held):
            decision = await self._fan_out(request, decision)
        if not decision.accepted:
            await self._publish(
                request, EventStatus.REJECTED, now, reason=reason or decision.reason
            )
            return
        if admission is not None and held:
            await holds.hold(self.topics, request, admission, source, raw, now)
        if not decision.replay:
            if admission is not None:
                self.gate.record(request, admission, source, now)
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

    async def _fan_out(
        self, request: NotificationRequest, decision: Decision, status: EventStatus | None = None
    ) -> Decision:
        deliveries = await fan_out(
            self.tables, self.topics, self.settings.inapp_url, request, decision.channels
        )
        if not deliveries and status is None:
            return Decision(reason=NO_ADDRESS)
        reason = None
        if status is not None:  # a release: keyed by its channels (tables/status.py)
            reason = ",".join(decision.channels) + ("" if deliveries else f": {NO_ADDRESS}")
        await self._publish(
            request,
            EventStatus.ACCEPTED if status is None else status,
            time.time(),
            deliveries=len(deliveries),
            reason=reason,
        )
        return replace(decision, fanned_out=len(deliveries))

    async def _release(
        self,
        request: NotificationRequest,
        decision: Decision,
        release: Release,
        admission: Admission | None,
        raw: bytes | None,
        now: float,
    ) -> None:
        """A request back from its hold: ``released`` with what it fanned out (nothing when the
        user has turned those channels off meanwhile: the reason says why), and held again for
        channels still in a quiet window."""
        if decision.accepted and decision.channels:
            decision = await self._fan_out(request, decision, EventStatus.RELEASED)
        else:
            why = decision.reason or (NO_ADDRESS if not (admission and admission.held) else None)
            if why is not None:
                key = ",".join(release.channels)
                await self._publish(request, EventStatus.RELEASED, now, reason=f"{key}: {why}")
        if admission is not None and admission.held:
            await holds.hold(self.topics, request, admission, release.source, raw, now)
        if request.fallback_channel and decision.fanned_out:
            if not fallbacks.is_open(
                self.tables.fallbacks, request.user_id, request.notification_id
            ):
                fallbacks.open_entry(
                    self.tables.fallbacks,
                    request.user_id,
                    request.notification_id,
                    decision.fanned_out,
                    request.fallback_channel,
                    now,
                    self.settings.dedup_ttl_seconds,
                )

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


def _only(channels: tuple[str, ...], released: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(c for c in channels if c in released)


def _source_of(message: Any) -> str:
    """The record this one is, for the dedup claim: itself, or the one a replay copies."""
    headers = message.headers
    for name, value in headers.items() if isinstance(headers, dict) else headers or ():
        if name == REPLAY_OF_HEADER:
            return value.decode(errors="replace") if isinstance(value, bytes) else str(value)
    return f"{message.topic}:{message.partition}:{message.offset}"


def register(
    app: faust.App, settings: Settings, topics: Topics, tables: Tables, headroom: CpuHeadroom
) -> dict[str, Agent]:
    """``resolve_requests`` (the public topic and its re-keyed twin) and
    ``resolve_low_requests`` (the low-priority requests it passed on)."""
    intake = Intake(settings, topics, tables, clock_from(settings.clock_file))
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
