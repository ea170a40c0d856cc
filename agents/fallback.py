"""The fallback channel: once every delivery of a notification has finally failed, the request
is fanned out once more on the channel it named (seed 000 §4: a push outage falls back to
e-mail or SMS). ``tables/fallbacks.py`` counts the outcomes per notification."""

from __future__ import annotations

import time
from dataclasses import dataclass

from agents import events
from agents.fanout import fan_out, request_of
from config.vocabulary import EventStatus
from streams.deliveries import Delivery, DeliveryEvent
from streams.topics import Topics
from tables import Tables, fallbacks


@dataclass
class Fallback:
    tables: Tables
    topics: Topics
    inapp_url: str

    def succeeded(self, delivery: Delivery) -> None:
        fallbacks.record_outcome(
            self.tables.fallbacks, delivery.user_id, delivery.notification_id, succeeded=True
        )

    async def failed(self, delivery: Delivery) -> None:
        """A final failure; the last one of a notification that asked for a fallback fans it
        out on that channel (a fallback's own deliveries never fall back again)."""
        channel = fallbacks.record_outcome(
            self.tables.fallbacks, delivery.user_id, delivery.notification_id, succeeded=False
        )
        if channel is None or delivery.is_fallback:
            return
        deliveries = await fan_out(
            self.tables,
            self.topics,
            self.inapp_url,
            request_of(delivery),
            (channel,),
            is_fallback=True,
        )
        reason = (
            f"to {channel}: {len(deliveries)} deliveries" if deliveries else f"no {channel} address"
        )
        await events.publish(
            self.topics.delivery_events,
            DeliveryEvent(
                notification_id=delivery.notification_id,
                user_id=delivery.user_id,
                status=EventStatus.FELL_BACK,
                at=time.time(),
                channel=channel,
                reason=reason,
                requested_at=delivery.requested_at,
                deliveries=len(deliveries),
            ),
        )
