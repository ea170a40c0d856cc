"""Route: the delivery topic for a delivery, and the provider that serves it. Pure."""

from __future__ import annotations

from collections.abc import Mapping

from config.vocabulary import Channel, Platform
from providers.base import ProviderName
from streams.deliveries import Delivery
from streams.topics import CALLBACK_LANE

PUSH_PROVIDER_BY_PLATFORM: Mapping[str, ProviderName] = {
    Platform.IOS: ProviderName.APNS,
    Platform.ANDROID: ProviderName.FCM,
}
PROVIDER_BY_CHANNEL: Mapping[str, ProviderName] = {
    Channel.EMAIL: ProviderName.SMTP,
    Channel.SMS: ProviderName.SMS,
    Channel.WEBHOOK: ProviderName.WEBHOOK,
    Channel.IN_APP: ProviderName.WEBHOOK,
}


def lane(delivery: Delivery) -> tuple[str, str]:
    """(channel, priority): the key of the ``deliveries.<channel>.<priority>`` topic; a status
    callback's own lane (``deliveries.callbacks``) whatever its channel and priority."""
    if delivery.kind:  # UNSET is falsy: one test for every notification
        return CALLBACK_LANE
    return delivery.channel, delivery.priority


def provider_for(delivery: Delivery) -> ProviderName:
    if delivery.kind:
        return ProviderName.CALLBACK
    if delivery.channel == Channel.PUSH:
        return PUSH_PROVIDER_BY_PLATFORM[delivery.platform or ""]
    return PROVIDER_BY_CHANNEL[delivery.channel]
