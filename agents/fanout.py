"""Fan-out: one resolved notification becomes one delivery per channel x device or address.

``expand`` is the pure part; ``fan_out`` reads the user's addresses from the tables and puts
the deliveries on their lanes. Both the intake (a request) and the fallback (a notification
whose every delivery failed, agents/fallback.py) fan out through it."""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator, Mapping

from msgspec import UNSET, UnsetType

from agents import events
from config.vocabulary import Channel, ContactField
from streams.deliveries import Delivery, delivery_id_for
from streams.records import NotificationRequest, RenderedPart
from streams.topics import Topics
from tables import Tables, contacts, devices, suppressions

# Which contact field addresses each non-push channel.
CONTACT_FIELD: Mapping[str, ContactField] = {
    Channel.EMAIL: ContactField.EMAIL,
    Channel.SMS: ContactField.PHONE,
    Channel.WEBHOOK: ContactField.WEBHOOK_URL,
}


def addresses(
    channel: str,
    device_tokens: Mapping[str, str],
    contacts: Mapping[str, str],
    inapp_url: str,
) -> Iterator[tuple[str, str | None]]:
    """(address, platform) pairs for one channel; nothing when the user has no address."""
    if channel == Channel.PUSH:
        yield from device_tokens.items()
    elif channel == Channel.IN_APP:
        if inapp_url:
            yield inapp_url, None
    elif address := contacts.get(CONTACT_FIELD[channel]):
        yield address, None


def expand(
    request: NotificationRequest,
    channels: tuple[str, ...],
    device_tokens: Mapping[str, str],
    contacts: Mapping[str, str],
    inapp_url: str,
    suppressed: Collection[str] = (),
    is_fallback: bool = False,
) -> list[Delivery]:
    """Suppressed addresses (hard bounces, complaints, dead endpoints) are skipped here, at
    resolve time, so they never reach a provider again."""
    content = request.content
    return [
        Delivery(
            delivery_id=delivery_id_for(request.notification_id, channel, address),
            notification_id=request.notification_id,
            user_id=request.user_id,
            channel=channel,
            address=address,
            platform=platform,
            # A template's part for the channel (agents/templating.py), else the inline text.
            title=content[channel].title if channel in content else request.title,
            body=content[channel].body if channel in content else request.body,
            html=_html_of(content, channel),
            priority=request.priority,
            category=request.category,
            data=request.data,
            collapse_key=request.collapse_key,
            ttl_seconds=request.ttl_seconds,
            requested_at=request.created_at,
            fallback_channel=request.fallback_channel,
            is_fallback=is_fallback,
            # On every channel, not only push: a fallback to push is rebuilt from a delivery of
            # another channel (request_of) and must keep the request's presentation.
            push=request.push,
        )
        for channel in channels
        for address, platform in addresses(channel, device_tokens, contacts, inapp_url)
        if address not in suppressed
    ]


def user_key(delivery: Delivery) -> bytes:
    """The lane key of a delivery: its user's (hot users are salted, agents/hot_keys.py)."""
    return delivery.user_id.encode()


def _html_of(content: Mapping[str, RenderedPart], channel: str) -> str | UnsetType:
    part = content.get(channel)
    return part.html if part is not None and part.html is not None else UNSET


def request_of(delivery: Delivery) -> NotificationRequest:
    """The notification a delivery came from, to fan it out again on a fallback channel: every
    field a delivery carries, so a fallback is presented like the original (push sound, badge,
    image, collapse key, expiry)."""
    return NotificationRequest(
        notification_id=delivery.notification_id,
        user_id=delivery.user_id,
        title=delivery.title,
        body=delivery.body,
        category=delivery.category,
        priority=delivery.priority,
        data=delivery.data,
        collapse_key=delivery.collapse_key,
        ttl_seconds=delivery.ttl_seconds,
        created_at=delivery.requested_at,
        fallback_channel=delivery.fallback_channel,
        push=delivery.push,
    )


async def fan_out(
    tables: Tables,
    topics: Topics,
    inapp_url: str,
    request: NotificationRequest,
    channels: tuple[str, ...],
    is_fallback: bool = False,
    key_for: Callable[[Delivery], bytes] = user_key,
) -> list[Delivery]:
    """The request's deliveries on ``channels`` to the user's current addresses, each put on
    its lane under ``key_for(delivery)``; call it on the user's partition (it reads the
    user's tables)."""
    deliveries = expand(
        request,
        channels,
        devices.tokens(tables.devices, request.user_id),
        contacts.get(tables.contacts, request.user_id),
        inapp_url,
        suppressions.suppressed(tables.suppressions, request.user_id),
        is_fallback=is_fallback,
    )
    await events.publish_deliveries(topics.deliveries, deliveries, key_for)
    return deliveries
