"""CPU per send of the circuit breaker and of the staleness check, apart from everything else:
``python -m bench.breaker_cost`` sends 200,000 messages to a provider that answers at once,
directly and through its ``GuardedProvider``, and times ``age_past_limit`` as often.

The pipeline benchmark's CPU per delivery moves by more than this between two runs on a shared
machine, so the breaker's share is measured here, where nothing else moves.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from agents.staleness import age_past_limit
from providers.base import OutboundMessage, Provider, SendResult
from providers.breaker import BreakerPolicy, Breakers, GuardedProvider
from streams.deliveries import Delivery

SENDS = 200_000
MESSAGE = OutboundMessage("d", "n", "u", "push", "token", "t", "b", platform="android")


class AnswersAtOnce:
    name = "fcm"

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def send(self, message: OutboundMessage) -> SendResult:
        return SendResult(provider=self.name)


async def _send_all(provider: Provider) -> None:
    for _ in range(SENDS):
        await provider.send(MESSAGE)


def _micros_per_send(work: Callable[[], object]) -> float:
    started = time.process_time()
    work()
    return (time.process_time() - started) / SENDS * 1e6


def _send_cost(provider: Provider) -> float:
    return _micros_per_send(lambda: asyncio.run(_send_all(provider)))


def _staleness_cost(delivery: Delivery) -> float:
    return _micros_per_send(
        lambda: [age_past_limit(delivery, time.time(), {}) for _ in range(SENDS)]
    )


def main() -> None:
    delivery = Delivery(
        delivery_id="d",
        notification_id="n",
        user_id="u",
        channel="push",
        address="token",
        title="t",
        body="b",
        priority="normal",
        platform="android",
        requested_at=time.time(),
        ttl_seconds=600,
    )
    for run in range(3):
        plain = _send_cost(AnswersAtOnce())
        guarded = _send_cost(GuardedProvider(AnswersAtOnce(), Breakers(BreakerPolicy()).get("fcm")))
        stale = _staleness_cost(delivery)
        print(
            f"run {run + 1}: send {plain:.2f} us, through the breaker {guarded:.2f} us "
            f"(breaker {guarded - plain:.2f} us), staleness check {stale:.2f} us"
        )


if __name__ == "__main__":
    main()
