"""Where a delivery's outcome goes: the ledger, the inbox, retry tiers, the dead-letter topic,
the control topics (dead tokens, suppressed addresses), and the fallback (agents/fallback.py)."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from agents import dead_letter, events, produce
from agents.callbacks import CallbackOutcomes
from agents.counters import FAILURES
from agents.failure_plan import FailureAction, FailurePlan, plan_failure
from agents.fallback import Fallback
from agents.inbox_hub import InboxHub
from agents.metrics import Metrics, error_type
from config.settings import Settings
from config.vocabulary import Channel, DeviceAction, EventStatus
from providers.base import ProviderError, SendResult, TransientError
from streams.deliveries import Delivery, DeliveryEvent
from streams.records import DeviceFields, SuppressionFields, to_json
from streams.topics import Topics
from tables import Tables, erasures, inbox, ledger

log = logging.getLogger(__name__)


@dataclass
class OutcomeRouter:
    settings: Settings
    topics: Topics
    tables: Tables
    metrics: Metrics
    # This worker's live inbox streams (agents/inbox_hub.py); None: no streams to feed.
    inbox_hub: InboxHub | None = None
    fallback: Fallback = field(init=False)
    # A status callback's outcome (a delivery of kind ``callback``) is handled there instead.
    callbacks: CallbackOutcomes = field(init=False)

    def __post_init__(self) -> None:
        self.fallback = Fallback(self.tables, self.topics, self.settings.inapp_url)
        self.callbacks = CallbackOutcomes(self.settings, self.topics, self.tables, self.metrics)

    async def succeeded(
        self, delivery: Delivery, result: SendResult, owner: str | None = None
    ) -> None:
        """``owner``: the lane record's key (``user_id`` or a hot user's ``user_id#n``), which
        keys the ledger; the inbox and the fallback count stay the user's (such deliveries
        are never salted, agents/hot_keys.py)."""
        if delivery.kind:
            self.callbacks.succeeded(delivery, result, owner or delivery.user_id)
            return
        now = time.time()
        self.metrics.delivered_by(delivery, result.provider, result.segments, now)
        ledger.record_sent(
            self.tables.ledger,
            owner or delivery.user_id,
            delivery.delivery_id,
            result.provider,
            now,
            self.settings.dedup_ttl_seconds,
        )
        if delivery.channel == Channel.IN_APP and not self._erased_since(delivery):
            self._add_to_inbox(delivery, now)
        await self.publish(
            delivery,
            EventStatus.SENT,
            provider=result.provider,
            message_id=result.provider_message_id,
            segments=result.segments,
        )
        self.fallback.succeeded(delivery)

    def _add_to_inbox(self, delivery: Delivery, now: float) -> None:
        message = inbox.InboxMessage(
            notification_id=delivery.notification_id,
            title=delivery.title,
            body=delivery.body,
            data=dict(delivery.data),
            at=now,
        )
        position = inbox.add(self.tables.inbox, delivery.user_id, message, self.settings.inbox_size)
        if self.inbox_hub is not None:
            self.inbox_hub.publish(delivery.user_id, position, message)

    async def failed(
        self, delivery: Delivery, provider: str, error: ProviderError, owner: str | None = None
    ) -> None:
        if delivery.kind:
            await self.callbacks.failed(delivery, error, owner or delivery.user_id)
            return
        plan = plan_failure(error, delivery.attempt, self.settings.retry_schedule(delivery.channel))
        now = time.time()
        self.metrics.failed_by(delivery.channel, provider, error)
        if plan.action is FailureAction.RETRY:
            await self._retry(delivery, provider, plan, now, owner or delivery.user_id)
            return
        if plan.action is FailureAction.INVALID_RECIPIENT:
            await self._forget_address(delivery, plan.reason)
        elif plan.action is FailureAction.DEAD_LETTER:
            final = delivery.after_failure(plan.reason, now, not_before=0.0)
            # A transient error dead-letters only once the schedule is used up.
            kind = "retries_exhausted" if isinstance(error, TransientError) else error_type(error)
            FAILURES.dead_letter_reasons[
                dead_letter.topic_name(self.topics.deliveries_dlq), kind
            ] += 1
            await produce.send(
                self.topics.deliveries_dlq,
                delivery.user_id.encode(),
                final.to_json(),
                {dead_letter.REASON_HEADER: plan.reason.encode()},
            )
        await self.publish(
            delivery, EventStatus.FAILED, provider=provider, reason=f"{plan.action}: {plan.reason}"
        )
        await self.fallback.failed(delivery)

    async def _retry(
        self, delivery: Delivery, provider: str, plan: FailurePlan, now: float, owner: str
    ) -> None:
        if plan.tier is None:  # plan_failure gives every RETRY plan a tier
            raise ValueError(f"a retry plan without a tier: {plan}")
        again = delivery.after_failure(plan.reason, now, not_before=now + plan.wait)
        self.metrics.retried(delivery.channel, plan.tier)
        # Under the lane key it came with: the tier puts it back on the same lane partition.
        await produce.send(self.topics.retries[plan.tier], owner.encode(), again.to_json())
        await self.publish(
            delivery,
            EventStatus.RETRYING,
            provider=provider,
            reason=f"attempt {again.attempt} failed, next in {plan.wait:g}s: {plan.reason}",
        )

    async def _forget_address(self, delivery: Delivery, reason: str) -> None:
        """Dead token: unregister it. Dead e-mail/number/URL: suppress it. Both go through the
        control topics, so the change is applied on the user's partition like any other."""
        if self._erased_since(delivery):
            return  # the erasure deleted every address the user had: none to write again
        key = delivery.user_id.encode()
        if delivery.channel == Channel.PUSH:
            self.metrics.invalid_token(delivery.platform or "")
            record = DeviceFields(
                user_id=delivery.user_id,
                token=delivery.address,
                # Never None on a push that reached a provider; "" is refused like null was.
                platform=delivery.platform or "",
                action=DeviceAction.UNREGISTER,
                reason=reason,
            )
            await produce.send(self.topics.devices, key, to_json(record))
        else:
            suppression = SuppressionFields(
                user_id=delivery.user_id, address=delivery.address, reason=reason
            )
            await produce.send(self.topics.suppressions, key, to_json(suppression))

    def _erased_since(self, delivery: Delivery) -> bool:
        """The user was erased while this delivery's send was in flight (the lane checked
        before sending): what the send would store of the user is not stored."""
        return erasures.refuses(self.tables.erased_users, delivery.user_id, delivery.requested_at)

    async def publish(
        self,
        delivery: Delivery,
        status: EventStatus,
        provider: str | None = None,
        reason: str | None = None,
        message_id: str | None = None,
        segments: int | None = None,
    ) -> None:
        if delivery.kind:
            return  # a callback's own outcome is no status change (agents/callbacks.py)
        await events.publish(
            self.topics.delivery_events,
            DeliveryEvent(
                notification_id=delivery.notification_id,
                user_id=delivery.user_id,
                status=status,
                at=time.time(),
                delivery_id=delivery.delivery_id,
                channel=delivery.channel,
                provider=provider,
                provider_message_id=message_id,
                segments=segments,
                reason=reason,
                requested_at=delivery.requested_at,
            ),
        )
