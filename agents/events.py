"""Publishing delivery events (keyed by notification_id, so one notification's events stay
ordered on one partition of ``delivery-events``)."""

from __future__ import annotations

import faust

from streams.deliveries import DeliveryEvent


async def publish(topic: faust.ChannelT, event: DeliveryEvent) -> None:
    await topic.send(key=event.notification_id.encode(), value=event.to_json())
