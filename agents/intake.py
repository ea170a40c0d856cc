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

from agents import events, holds, produce
from agents.admission import Admission, Gate
from agents.fanout import fan_out, user_key
from agents.hot_keys import HotKeys
from agents.metrics import Metrics
from agents.request_origin import passed_on_headers, source_of
from agents.resolve import NO_ADDRESS, Decision, Limits, UserState, decide
from agents.templating import Templating, rejection
from agents.tracing import annotate
from config.clock import Clock
from config.settings import Settings
from config.vocabulary import EventStatus, RejectReason
from streams import topics as topic_names
from streams.deliveries import DeliveryEvent
from streams.faust_types import Channel, Event
from streams.holds import Release, release_of
from streams.partitioning import is_on_home_partition
from streams.records import NotificationRequest, parse_request
from streams.rendering import RenderError
from streams.request_routes import next_topic
from streams.topics import Topics
from tables import (
    Tables,
    dedup,
    erasures,
    fallbacks,
    preferences,
    rate_windows,
)

log = logging.getLogger(__name__)


@dataclass
class Intake:
    settings: Settings
    topics: Topics
    tables: Tables
    metrics: Metrics
    clock: Clock  # quiet hours and daily caps (NOTIFY_CLOCK_FILE in tests)
    # Counts each partition's deliveries and salts the lane keys of flagged users (None: off).
    hot_keys: HotKeys | None = None
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
        self.templating = Templating(self.tables)
        self.gate = Gate(self.settings, self.tables, self.clock)

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
            annotate(
                {"notify.notification_id": request.notification_id, "notify.passed_on": passed}
            )
            await self._pass_on(self._channels[passed], request, event)
            return
        await self.resolve(
            request,
            source_of(message),
            time.time(),
            release_of(message.headers),
            message.value,
            message.partition,
        )

    async def _pass_on(self, channel: Channel, request: NotificationRequest, event: Event) -> None:
        """The record as it came, keyed by user_id, with its own timestamp (a request without
        ``created_at`` is timed from it)."""
        message = event.message
        await produce.send(
            channel,
            request.user_id.encode(),
            message.value,
            passed_on_headers(message),
            message.timestamp,
        )

    async def resolve(
        self,
        request: NotificationRequest,
        source: str,
        now: float,
        release: Release | None = None,
        raw: bytes | None = None,
        partition: int = 0,
    ) -> None:
        """``release``: the request is back from its quiet-hours hold (agents/holds.py); it
        was admitted (dedup, rate window, cap) when it arrived. ``raw``: the record's bytes,
        which a hold keeps. ``partition``: the request's, which is its user's (the hot-key
        detector's count)."""
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
            erased=erasures.refuses(t.erased_users, request.user_id, request.created_at),
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
        self.metrics.request_resolved(
            request.priority, decision.reason or "accepted", request.created_at, time.time()
        )
        annotate(
            {
                "notify.notification_id": request.notification_id,
                "notify.outcome": decision.reason or "accepted",
                "notify.deliveries": decision.fanned_out,
            }
        )
        if not decision.accepted:
            await self._publish(
                request, EventStatus.REJECTED, now, reason=reason or decision.reason
            )
            return
        if self.hot_keys is not None:
            self.hot_keys.observe(partition, request.user_id, decision.fanned_out, now)
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
            self.tables,
            self.topics,
            self.settings.inapp_url,
            request,
            decision.channels,
            key_for=user_key if self.hot_keys is None else self.hot_keys.lane_key,
        )
        if not deliveries and status is None:
            return Decision(reason=NO_ADDRESS)
        self.metrics.fanned_out(deliveries)
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
                callback_url=request.callback_url,
            ),
        )


def _only(channels: tuple[str, ...], released: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(c for c in channels if c in released)
