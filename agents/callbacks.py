"""Status callbacks (seed 002 §5, simulation 1, step 6: "trigger webhook to client"): every
status change of a notification whose request named a ``callback_url`` is POSTed there,
signed like the webhook channel, retried through the same tiers, never in a user's way.

Where they come from: the status agent, right after it folds an event into the notification's
row (tables/status.py), since only the row knows the URL (the request's events carry it, the
lanes' do not) and the status after the event. A notification without a URL costs one dict
lookup here. Events that overtook the notification's ``accepted`` (folded before the URL was
known) are reported when it arrives (streams/callbacks.caught_up).

Where they go: ``deliveries.callbacks``, a lane of their own (agents/deliver.py) that gives way
to the users' lanes like the low one, and the ``callback`` provider, which has no circuit
breaker: one caller's slow or dead endpoint holds up nobody's delivery and nobody else's
callbacks. A failure retries through the webhook channel's tiers (deliveries.retry.*) and
dead-letters on ``deliveries.dlq`` when they are used up.

A callback's own outcome is never a delivery event: its sends, retries and dead letters are
counted (``notify_callbacks_total``) and ledgered, and nothing reaches ``delivery-events``, so
a callback can never call back about itself.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from agents import dead_letter, produce
from agents.counters import FAILURES
from agents.failure_plan import FailureAction, plan_failure
from agents.metrics import Metrics, error_type
from config.settings import Settings
from config.vocabulary import Channel
from providers.base import ProviderError, SendResult, TransientError
from streams.callbacks import StatusChange, callback_delivery, caught_up, lane_key
from streams.callbacks import worth_a_callback as worth_a_callback
from streams.deliveries import Delivery, DeliveryEvent
from streams.topics import CALLBACK_LANE, Topics
from tables import Tables, ledger

log = logging.getLogger(__name__)


class CallbackOutcome(StrEnum):
    """``notify_callbacks_total``'s outcomes."""

    QUEUED = "queued"  # produced to the callbacks' lane
    POSTED = "posted"  # the caller's endpoint answered 2xx
    RETRIED = "retried"  # failed, put on a retry tier
    DEAD_LETTERED = "dead_lettered"  # failed for good: on deliveries.dlq with the reason


@dataclass
class Callbacks:
    """The status agent's side: one folded event in, its callbacks out."""

    topics: Topics
    metrics: Metrics

    async def after_fold(
        self,
        event: DeliveryEvent,
        before: Mapping[str, object] | None,
        after: Mapping[str, object],
    ) -> None:
        url = after.get("callback_url")
        if not isinstance(url, str):
            return  # the hot path: no caller asked (None)
        user_id = str(after["user_id"])
        changes: list[StatusChange] = []
        if worth_a_callback(event.status, before, after):
            changes.append(
                StatusChange(
                    notification_id=event.notification_id,
                    user_id=user_id,
                    status=event.status,
                    notification_status=str(after["status"]),
                    at=event.at,
                    delivery_id=event.delivery_id,
                    channel=event.channel,
                    provider=event.provider,
                    reason=event.reason,
                )
            )
        if before is not None and "callback_url" not in before:
            changes.extend(caught_up(event.notification_id, after))
        lane = self.topics.deliveries[CALLBACK_LANE]
        for change in changes:
            delivery = callback_delivery(change, url)
            await produce.send(lane, lane_key(user_id), delivery.to_json())
            self.metrics.callback(CallbackOutcome.QUEUED)


@dataclass
class CallbackOutcomes:
    """The lane's side: what a callback's send turns into. Called by agents/outcomes.py for a
    delivery of kind ``callback``, in place of a notification's outcome handling: no event,
    no inbox, no fallback, and no suppression of the URL (a caller's endpoint answering 404
    is not a user's dead address: the callback is dead-lettered, the URL stays)."""

    settings: Settings
    topics: Topics
    tables: Tables
    metrics: Metrics

    def succeeded(self, delivery: Delivery, result: SendResult, owner: str) -> None:
        ledger.record_sent(
            self.tables.ledger,
            owner,
            delivery.delivery_id,
            result.provider,
            time.time(),
            self.settings.dedup_ttl_seconds,
        )
        self.metrics.callback(CallbackOutcome.POSTED)

    async def failed(self, delivery: Delivery, error: ProviderError, owner: str) -> None:
        schedule = self.settings.retry_schedule(Channel.WEBHOOK)
        plan = plan_failure(error, delivery.attempt, schedule)
        now = time.time()
        if plan.action is FailureAction.RETRY and plan.tier is not None:
            again = delivery.after_failure(plan.reason, now, not_before=now + plan.wait)
            # Under its lane key: the tier puts it back on the callbacks' lane (agents/route.py).
            await produce.send(self.topics.retries[plan.tier], owner.encode(), again.to_json())
            self.metrics.callback(CallbackOutcome.RETRIED)
            return
        final = delivery.after_failure(plan.reason, now, not_before=0.0)
        kind = "retries_exhausted" if isinstance(error, TransientError) else error_type(error)
        FAILURES.dead_letter_reasons[
            dead_letter.topic_name(self.topics.deliveries_dlq), f"callback_{kind}"
        ] += 1
        log.warning(
            "status callback %s for %s dead-lettered (%s)",
            delivery.delivery_id,
            delivery.notification_id,
            error_type(error),
        )
        await produce.send(
            self.topics.deliveries_dlq,
            owner.encode(),
            final.to_json(),
            {dead_letter.REASON_HEADER: f"callback: {plan.reason}".encode()},
        )
        self.metrics.callback(CallbackOutcome.DEAD_LETTERED)
