"""The records a replay re-produces, and the pace it produces them at."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import msgspec

from agents.request_origin import REPLAY_OF_HEADER, REQUEST_OF_HEADER
from scripts import dlq
from scripts.replay_read import REPLAY_ID_HEADER, REQUEST_TOPICS
from streams import topics
from streams.deliveries import parse_delivery
from streams.records import InvalidRecord

_REPLAY_HEADERS = (REPLAY_OF_HEADER, REPLAY_ID_HEADER)


@dataclass(frozen=True)
class Copy:
    topic: str
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]
    timestamp_ms: int | None  # None: the producer's clock


def copy_of(topic: str, message: Any, replay_id: str) -> Copy:
    """Pure: what to produce for ``message`` (read from ``topic``). ValueError if nothing can
    be (a truncated dead letter holds only a prefix of its record)."""
    ref = f"{topic}:{message.partition}:{message.offset}"
    if topic in REQUEST_TOPICS:
        # A request passed on is re-sent as the record it was passed on from: that is the
        # record its idempotency key was claimed as (agents/intake.py).
        ref = dict(message.headers or ()).get(REQUEST_OF_HEADER, ref.encode()).decode()
    marks = [(REPLAY_OF_HEADER, ref.encode()), (REPLAY_ID_HEADER, replay_id.encode())]
    if topic in REQUEST_TOPICS:
        # Byte for byte, on the topic it came from, keeping its timestamp (a request without
        # ``created_at`` is timed from it, and so is its ttl).
        own = [(k, bytes(v)) for k, v in (message.headers or ()) if k not in _REPLAY_HEADERS]
        return Copy(topic, message.key, message.value, own + marks, message.timestamp)
    if topic == topics.DELIVERIES_DLQ:
        [letter] = dlq.dead_letters(topic, [message])
        try:
            target, key, value = dlq.redrive_target(letter)
        except InvalidRecord as exc:
            raise ValueError(str(exc)) from None
        return Copy(target, key, value, marks, None)
    delivery = parse_delivery(message.value)
    # A lane record may be a retry's copy: the replay is a fresh first attempt (its history kept).
    fresh = msgspec.structs.replace(delivery, attempt=0, not_before=0.0)
    return Copy(
        topics.delivery_topic(delivery.channel, delivery.priority),
        delivery.user_id.encode(),
        fresh.to_json(),
        marks,
        None,
    )


class Pace:
    """At most ``per_second`` records a second. A replay after an outage lands on a provider
    that has just come back and on lanes that carry live traffic: the lanes' concurrency
    bounds the sends in flight, not how far a replay's backlog pushes live records back."""

    def __init__(
        self,
        per_second: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.interval = 1.0 / per_second
        self.clock = clock
        self.sleep = sleep
        self.next_at = clock()

    async def wait(self) -> None:
        now = self.clock()
        if self.next_at > now:
            await self.sleep(self.next_at - now)
        self.next_at = max(self.next_at, now) + self.interval
