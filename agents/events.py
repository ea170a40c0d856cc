"""Publishing delivery events (keyed by notification_id, so one notification's events stay
ordered on one partition of ``delivery-events``)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from agents import produce
from agents.route import lane
from streams.deliveries import Delivery, DeliveryEvent
from streams.faust_types import Channel


async def publish(topic: Channel, event: DeliveryEvent) -> None:
    await produce.send(topic, event.notification_id.encode(), event.to_json())


async def publish_deliveries(
    lanes: Mapping[tuple[str, str], Channel],
    deliveries: Iterable[Delivery],
    key_for: Callable[[Delivery], bytes],
) -> None:
    """Each delivery onto its ``deliveries.<channel>.<priority>`` lane, keyed by ``key_for``:
    user_id, or a hot user's salted sub-key (agents/hot_keys.py)."""
    for delivery in deliveries:
        await produce.send(lanes[lane(delivery)], key_for(delivery), delivery.to_json())
