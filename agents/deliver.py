"""Deliver: one agent per priority lane, each with its own concurrency, so a low-priority
backlog never queues in front of a password reset."""

from __future__ import annotations

import asyncio
import logging
import operator
import time
from dataclasses import dataclass, field

import faust

from agents import safe
from agents.circuit import CircuitHold
from agents.cpu_headroom import CpuHeadroom, livelock_hold
from agents.inbox_hub import InboxHub
from agents.lanes import ConcurrentLane, is_stale
from agents.metrics import Metrics, error_type
from agents.outcomes import OutcomeRouter
from agents.route import provider_for
from agents.staleness import Staleness
from agents.supervision import supervised_agent
from agents.tracing import Tracing, annotate
from config.settings import Settings
from config.vocabulary import DuplicateReason, EventStatus, Priority, RejectReason
from providers.base import OutboundMessage, ProviderError
from providers.breaker import CircuitOpenError
from providers.rate_limits import ProviderRateLimits
from providers.registry import ProviderRegistry
from streams.deliveries import Delivery, parse_delivery
from streams.faust_types import Agent, AgentBody, Channel, Event, Stream
from streams.topics import Topics
from tables import Tables, erasures, ledger

log = logging.getLogger(__name__)


# The provider message is the delivery's message fields, taken by name in the message's own
# field order: a field added to OutboundMessage is carried from the Delivery field of that
# name, and one the Delivery lacks stops the import here instead of sending without it.
_MESSAGE_FIELDS = OutboundMessage.__struct_fields__
if missing := set(_MESSAGE_FIELDS).difference(Delivery.__struct_fields__):
    raise TypeError(f"OutboundMessage fields no Delivery carries: {sorted(missing)}")
_message_values = operator.attrgetter(*_MESSAGE_FIELDS)


def outbound(delivery: Delivery) -> OutboundMessage:
    return OutboundMessage(*_message_values(delivery))


@dataclass
class Deliverer:
    settings: Settings
    topics: Topics
    tables: Tables
    providers: ProviderRegistry
    outcomes: OutcomeRouter
    metrics: Metrics
    limits: ProviderRateLimits  # every send takes its provider's token first (backpressure)
    # A delivery read twice (a rebalance hands its partition back while the first copy is being
    # sent) waits for the first copy's outcome instead of sending again or being acked early.
    in_flight: dict[str, asyncio.Future[None]] = field(default_factory=dict)
    staleness: Staleness = field(init=False)
    circuit_hold: CircuitHold = field(init=False)

    def __post_init__(self) -> None:
        self.staleness = Staleness(self.settings.max_age_by_category, self.outcomes)
        self.circuit_hold = CircuitHold(self.topics, self.outcomes)

    async def handle(self, event: Event, generation: int) -> None:
        if is_stale(event, generation):
            return  # its partition was revoked meanwhile: the next owner reads it again
        message = event.message
        self.metrics.taken(message.topic, message.timestamp, time.time())
        # An InvalidRecord is dead-lettered with its reason by the lane's wrapper (agents/safe.py).
        delivery = parse_delivery(event.message.value)
        await self.deliver(delivery, lane_owner(event.message.key, delivery))

    async def deliver(self, delivery: Delivery, owner: str | None = None) -> None:
        """``owner``: the key the lane record came under, which keys the lane's state (the
        ledger, retries): ``user_id``, or a hot user's ``user_id#n`` (agents/hot_keys.py), so
        every copy of a delivery finds its ledger entry on the partition it is read from."""
        owner = owner or delivery.user_id
        annotate(
            {
                "notify.delivery_id": delivery.delivery_id,
                "notify.channel": delivery.channel,
                "notify.attempt": delivery.attempt,
            }
        )
        if erasures.refuses(self.tables.erased_users, delivery.user_id, delivery.requested_at):
            # Its user was erased after the request (agents/erasure.py): never sent.
            await self.outcomes.publish(
                delivery, EventStatus.CANCELLED, reason=RejectReason.USER_ERASED
            )
            return
        first = self.in_flight.get(delivery.delivery_id)
        if first is not None:
            await asyncio.shield(first)
        provider = ledger.sent_by(self.tables.ledger, owner, delivery.delivery_id, time.time())
        if provider is not None:
            # Carries the provider: after a crash this may be the only report of the send that
            # reaches the status (the ledger write made it to the broker, the event did not).
            await self.outcomes.publish(
                delivery,
                EventStatus.DUPLICATE_SUPPRESSED,
                provider=provider,
                reason=DuplicateReason.ALREADY_SENT,
            )
            return
        if first is not None:
            # The first copy failed: its outcome (a retry record or a dead letter) is out.
            await self.outcomes.publish(
                delivery, EventStatus.DUPLICATE_SUPPRESSED, reason=DuplicateReason.READ_TWICE
            )
            return
        if await self.staleness.expired(delivery):
            return
        provider_name = provider_for(delivery)
        annotate({"notify.provider": provider_name})
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.in_flight[delivery.delivery_id] = done
        try:
            started = time.perf_counter()
            message = outbound(delivery)
            try:
                self.providers.check_admits(provider_name, message)  # before a token is spent
                async with self.limits.slot(provider_name):
                    started = time.perf_counter()  # the provider's time, not the token wait
                    result = await self.providers.send(provider_name, message)
            except CircuitOpenError as exc:  # not sent (or failed, and it opened): it waits
                if exc.__cause__ is not None:  # the provider was asked and answered
                    self._answered(delivery, provider_name, started)
                await self.circuit_hold.refused(delivery, exc, owner)
                return
            except ProviderError as exc:
                self._answered(delivery, provider_name, started)
                annotate({"notify.outcome": error_type(exc)})
                await self.outcomes.failed(delivery, provider_name, exc, owner)
                return
            self._answered(delivery, provider_name, started)
            annotate({"notify.outcome": "sent"})
            await self.outcomes.succeeded(delivery, result, owner)
        finally:
            del self.in_flight[delivery.delivery_id]
            done.set_result(None)

    def _answered(self, delivery: Delivery, provider: str, started: float) -> None:
        """A notification's provider call, measured. Not a status callback's: it is no
        notification (notify_callbacks_total counts it), and every caller's endpoint would
        pull down the webhook channel's delivery rate and trip the provider-error alerts."""
        if not delivery.kind:
            self.metrics.provider_answered(
                delivery.channel, provider, time.perf_counter() - started
            )


def lane_owner(key: bytes | None, delivery: Delivery) -> str:
    """The lane record's key as text; the user's when it has none (or not one to trust)."""
    if not key:
        return delivery.user_id
    try:
        return key.decode()
    except UnicodeDecodeError:
        return delivery.user_id


def register(
    app: faust.App,
    settings: Settings,
    topics: Topics,
    tables: Tables,
    providers: ProviderRegistry,
    headroom: CpuHeadroom,
    metrics: Metrics,
    tracing: Tracing,
    limits: ProviderRateLimits,
    inbox_hub: InboxHub | None = None,
) -> dict[str, Agent]:
    deliverer = Deliverer(
        settings,
        topics,
        tables,
        providers,
        OutcomeRouter(settings, topics, tables, metrics, inbox_hub),
        metrics,
        limits,
    )
    concurrency = {
        Priority.HIGH: settings.deliver_concurrency_high,
        Priority.NORMAL: settings.deliver_concurrency_normal,
        Priority.LOW: settings.deliver_concurrency_low,
    }

    async def handle(event: Event) -> None:
        with tracing.span("notify.send", event.message.headers):
            await deliverer.handle(event, app.consumer_generation_id)

    async def handle_urgent(event: Event) -> None:
        with headroom.urgent():  # the lanes behind a ceiling give way meanwhile
            await handle(event)

    def lane_agent(
        channel: Channel, limit: int, cpu_ceiling: float, name: str, gauge: str
    ) -> AgentBody:
        # Nothing a record holds escapes: a dead letter with its reason instead (agents/safe.py).
        handler = handle_urgent if gauge == Priority.HIGH else handle
        handle_safely = safe.guarded(handler, topics.deliveries_dlq, name)
        hold = livelock_hold(channel)

        async def give_way() -> None:
            await headroom.wait_below(cpu_ceiling, hold)

        async def deliver_lane(stream: Stream) -> None:
            # One actor per lane running ``limit`` sends at once, acked in offset order
            # (agents/acks.py explains why not Faust's ``concurrency=``).
            headroom.start()
            # The high lane never waits; the others give way to it even without a ceiling.
            holds_back = gauge != Priority.HIGH and headroom.holds_back(cpu_ceiling)
            lane: ConcurrentLane[Event] = ConcurrentLane(limit, give_way if holds_back else None)
            lanes.add(lane)
            metrics.watch_in_flight(gauge, lambda: lane.in_flight)
            try:
                async for event in stream.noack().events():  # type: ignore[attr-defined]
                    await lane.submit(event, handle_safely)
            finally:
                lanes.discard(lane)
                lane.cancel()

        return deliver_lane

    lanes: set[ConcurrentLane[Event]] = set()

    @app.on_partitions_revoked.connect  # type: ignore[arg-type]  # faust types it loosely
    async def finish_sends_in_flight(sender: object, revoked: object, **kwargs: object) -> None:
        """A send in flight when its partition is revoked finishes here, and its outcome records
        reach the broker, before the partition goes to its next owner: the next owner's ledger
        then knows it was sent (no second send) and nothing waits on a lost in-memory task."""
        for lane in list(lanes):
            if not await lane.drain(settings.revoke_drain_seconds):
                log.warning("%d sends still in flight at a rebalance", lane.in_flight)
        await app.producer.flush()
        await ledger.flush(tables.ledger)

    cpu_ceiling = {
        Priority.HIGH: 0.0,
        Priority.NORMAL: settings.deliver_cpu_ceiling_normal,
        Priority.LOW: settings.deliver_cpu_ceiling_low,
    }
    agents: dict[str, Agent] = {}
    for priority in Priority:
        name = f"deliver_{priority}"
        lane = topics.delivery_lanes[priority]
        agents[priority] = supervised_agent(app, lane, name)(
            lane_agent(lane, concurrency[priority], cpu_ceiling[priority], name, priority)
        )
    # Status callbacks to callers (agents/callbacks.py): a lane of their own, so a slow client
    # endpoint takes only its slots, and giving way like the low lane, since a user's
    # notification comes before the news of it.
    if settings.callbacks_enabled:
        agents[CALLBACKS_LANE] = supervised_agent(app, topics.callback_lane, "deliver_callbacks")(
            lane_agent(
                topics.callback_lane,
                settings.callback_concurrency,
                settings.deliver_cpu_ceiling_low,
                "deliver_callbacks",
                CALLBACKS_LANE,
            )
        )
    return agents


CALLBACKS_LANE = "callbacks"  # its key among the lanes (and its in-flight gauge's label)
