"""Synthetic users and requests, produced the way a real producer would: plain aiokafka, JSON
values keyed by user_id, onto the public topics. Shared by the demo, the tests and the bench."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from streams import topics
from streams.records import CHANNELS, PRIORITIES


@dataclass(frozen=True)
class User:
    user_id: str
    devices: dict[str, str]  # token -> platform
    email: str
    phone: str
    webhook_url: str
    disabled_channels: frozenset[str] = frozenset()

    def control_records(self) -> list[tuple[str, dict[str, Any]]]:
        records: list[tuple[str, dict[str, Any]]] = [
            (
                topics.PREFERENCES,
                {
                    "user_id": self.user_id,
                    "channels": {c: c not in self.disabled_channels for c in CHANNELS},
                },
            ),
            (
                topics.CONTACTS,
                {
                    "user_id": self.user_id,
                    "email": self.email,
                    "phone": self.phone,
                    "webhook_url": self.webhook_url,
                },
            ),
        ]
        records += [
            (topics.DEVICES, {"user_id": self.user_id, "token": token, "platform": platform})
            for token, platform in self.devices.items()
        ]
        return records

    def addresses(self, channel: str, inapp_url: str) -> list[str]:
        """Where a delivery on ``channel`` should arrive, as a sandbox records it."""
        if channel in self.disabled_channels:
            return []
        return {
            "push": list(self.devices),
            "email": [self.email],
            "sms": [self.phone],
            "webhook": [self.webhook_url],
            "in_app": [inapp_url],
        }[channel]


def device_token(platform: str, rng: random.Random) -> str:
    """Tokens shaped like the real ones: APNs 32 bytes of hex, FCM ``<id>:APA91b<...>``."""
    if platform == "ios":
        return f"{rng.getrandbits(256):064x}"
    alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_"
    return "".join(rng.choices(alphabet, k=22)) + ":APA91b" + "".join(rng.choices(alphabet, k=134))


def make_users(
    count: int, webhook_base: str, seed: int = 7, opt_out_rate: float = 0.3, first: int = 0
) -> list[User]:
    """Users with one or two devices (iOS and/or Android) and a few channels switched off."""
    rng = random.Random(seed)
    users = []
    for i in range(first, first + count):
        uid = f"user-{i:05d}"
        platforms = rng.choice([("ios",), ("android",), ("ios", "android")])
        devices = {device_token(p, rng): p for p in platforms}
        disabled = frozenset(c for c in ("sms", "webhook", "email") if rng.random() < opt_out_rate)
        users.append(
            User(
                user_id=uid,
                devices=devices,
                email=f"{uid}@example.com",
                phone=f"+1555{i:07d}",
                webhook_url=f"{webhook_base.rstrip('/')}/hooks/{uid}",
                disabled_channels=disabled,
            )
        )
    return users


@dataclass
class RequestMix:
    """Requests spread evenly over users, with channels and priorities mixed."""

    users: Sequence[User]
    seed: int = 11
    prefix: str = "n"
    rng: random.Random = field(init=False)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)

    def make(self, count: int) -> list[dict[str, Any]]:
        out = []
        for i in range(count):
            user = self.users[i % len(self.users)]
            channels = self.rng.sample(CHANNELS, self.rng.randint(1, 3))
            out.append(
                {
                    "notification_id": f"{self.prefix}-{i:06d}",
                    "user_id": user.user_id,
                    "category": self.rng.choice(["orders", "security", "social"]),
                    "priority": self.rng.choice(PRIORITIES),
                    "channels": channels,
                    "title": "Order {order_id}",
                    "body": "Your order {order_id} has shipped",
                    "data": {"order_id": str(100000 + i)},
                    "created_at": time.time(),
                }
            )
        return out


async def produce(bootstrap: str, records: Iterable[tuple[str, bytes | None, bytes]]) -> int:
    """Send (topic, key, value) records with a plain aiokafka producer; returns the count."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    await producer.start()
    count = 0
    try:
        futures = []
        for topic, key, value in records:
            futures.append(await producer.send(topic, key=key, value=value))
            count += 1
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return count


def json_records(
    topic: str, values: Iterable[dict[str, Any]]
) -> list[tuple[str, bytes | None, bytes]]:
    return [(topic, v["user_id"].encode(), orjson.dumps(v)) for v in values]


async def setup_users(bootstrap: str, users: Iterable[User]) -> int:
    return await produce(
        bootstrap,
        [
            (topic, user.user_id.encode(), orjson.dumps(value))
            for user in users
            for topic, value in user.control_records()
        ],
    )


async def read_topic(bootstrap: str, topic: str, until: Any, timeout: float = 60.0) -> list[Any]:
    """Read ``topic`` from the start until ``until(messages)`` is true (or time runs out)."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    messages: list[Any] = []
    deadline = time.monotonic() + timeout
    try:
        while not until(messages) and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=200)
            for records in batch.values():
                messages.extend(records)
    finally:
        await consumer.stop()
    return messages


async def wait_for_users(
    web_url: str,
    users: Sequence[User],
    timeout: float = 60.0,
    headers: Mapping[str, str] | None = None,
) -> None:
    """Poll the worker's ``/users/<id>/`` view until every user's devices and contacts are in.
    ``headers``: an ``Authorization`` for a worker with API keys (a 401 or 403 raises at once).

    Control topics and requests are consumed independently, so a request produced right after
    its user's set-up may otherwise be resolved before the set-up is applied."""
    import aiohttp

    deadline = time.monotonic() + timeout
    pending = list(users)
    async with aiohttp.ClientSession(headers=headers) as session:
        while pending:
            user = pending[-1]
            try:
                async with session.get(f"{web_url}/users/{user.user_id}/") as response:
                    if response.status in (401, 403):
                        raise PermissionError(f"{web_url}: {await response.text()}")
                    snapshot = await response.json() if response.status == 200 else {}
            except aiohttp.ClientError:
                snapshot = {}
            if (
                len(snapshot.get("devices", ())) == len(user.devices)
                and "email" in snapshot.get("contacts", {})
                and snapshot.get("preferences") is not None
            ):
                pending.pop()
            elif time.monotonic() > deadline:
                raise TimeoutError(f"{len(pending)} users not loaded after {timeout}s")
            else:
                await asyncio.sleep(0.1)


async def topic_names(bootstrap: str) -> list[str]:
    """Every topic on the broker, sorted (diagnostics of the tests and the crash runner)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        return sorted(await consumer.topics())
    finally:
        await consumer.stop()
