"""Route: the delivery topic for a delivery, and the provider that serves it. Pure."""

from __future__ import annotations

from streams.deliveries import Delivery

PUSH_PROVIDER_BY_PLATFORM = {"ios": "apns", "android": "fcm"}
PROVIDER_BY_CHANNEL = {"email": "smtp", "sms": "sms", "webhook": "webhook", "in_app": "webhook"}


def lane(delivery: Delivery) -> tuple[str, str]:
    """(channel, priority): the key of the ``deliveries.<channel>.<priority>`` topic."""
    return delivery.channel, delivery.priority


def provider_for(delivery: Delivery) -> str:
    if delivery.channel == "push":
        return PUSH_PROVIDER_BY_PLATFORM[delivery.platform or ""]
    return PROVIDER_BY_CHANNEL[delivery.channel]
