"""Publishing delivery events (keyed by notification_id, so one notification's events stay
ordered on one partition of ``delivery-events``)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import faust

from agents.route import lane
from streams.deliveries import Delivery, DeliveryEvent


async def publish(topic: faust.ChannelT, event: DeliveryEvent) -> None:
    await topic.send(key=event.notification_id.encode(), value=event.to_json())


async def publish_deliveries(
    lanes: Mapping[tuple[str, str], faust.ChannelT], deliveries: Iterable[Delivery]
) -> None:
    """Each delivery onto its ``deliveries.<channel>.<priority>`` lane, keyed by user_id."""
    for delivery in deliveries:
        await lanes[lane(delivery)].send(key=delivery.user_id.encode(), value=delivery.to_json())
