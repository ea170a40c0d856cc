"""What a deliver lane does with a delivery its provider's circuit breaker refused, and where the
breakers' state changes go (a log line, the ``provider-circuits`` topic, a web view).

A refused delivery waits in Kafka, not in the lane: it goes to the retry tier nearest its wait,
with its ``not_before`` at the moment the breaker lets trials through and its ``attempt`` as it
was, so an outage spends none of its retries. Holding it in the lane instead (its slot taken, its
partition unacked) would have been simpler, but a lane carries every provider of its priority:
eight held FCM pushes would fill the normal lane and stop its e-mails behind an outage they have
nothing to do with. In the tier it is acked only once back on its lane (agents/retry.py), so a
crash re-reads it there; a tier past ``retry_pending_cap`` stops reading, so a long outage waits
on the broker, not in a worker's memory. A send that failed and found the breaker open or
half-open (one in flight when it opened, a failed trial) comes here too (providers/breaker.py).

A delivery whose notification names a fallback channel is not held: it fails at once (no attempt
spent on the provider) and the fallback fans it out on that channel, once per notification
(agents/fallback.py, seed 000 §4: a push outage falls back to e-mail or SMS).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from dataclasses import dataclass, field

import faust
import msgspec
from faust.web import Request, Response, View

from agents import produce
from agents.outcomes import OutcomeRouter
from config.vocabulary import EventStatus
from providers.breaker import Breakers, CircuitOpenError, Transition
from streams.deliveries import Delivery
from streams.topics import Topics

log = logging.getLogger(__name__)

CIRCUIT_OPEN = "circuit_open"  # a held or fallen-back delivery's reason starts with it


def nearest_tier(tiers: list[float], wait: float) -> float:
    """The tier a held delivery waits in. Any tier holds a record until its own ``not_before``
    (agents/retry.py); the nearest one only keeps it on the tier whose records are as near."""
    return min(tiers, key=lambda tier: (abs(tier - wait), tier))


@dataclass
class CircuitHold:
    topics: Topics
    outcomes: OutcomeRouter
    tiers: list[float] = field(init=False)

    def __post_init__(self) -> None:
        self.tiers = sorted(self.topics.retries)

    async def refused(
        self, delivery: Delivery, error: CircuitOpenError, owner: str | None = None
    ) -> None:
        """``owner``: the lane record's key (a hot user's ``user_id#n``), kept on the retry tier."""
        provider = error.provider
        if delivery.fallback_channel and not delivery.is_fallback:
            await self.outcomes.publish(
                delivery,
                EventStatus.FAILED,
                provider=provider,
                reason=f"{CIRCUIT_OPEN}: {provider}, falling back to {delivery.fallback_channel}",
            )
            await self.outcomes.fallback.failed(delivery)
            return
        wait = error.retry_after or 0.0
        held = msgspec.structs.replace(delivery, not_before=time.time() + wait)
        tier = nearest_tier(self.tiers, wait)
        key = (owner or delivery.user_id).encode()
        await produce.send(self.topics.retries[tier], key, held.to_json())
        await self.outcomes.publish(
            delivery,
            EventStatus.DEFERRED,
            provider=provider,
            reason=f"{CIRCUIT_OPEN}: {provider}, next try in {wait:.1f}s (no attempt spent)",
        )


class CircuitEvent(msgspec.Struct, frozen=True):
    """A ``provider-circuits`` record: one breaker's state change on one worker."""

    breaker: str
    previous: str
    state: str
    at: float
    failure_rate: float
    calls: int
    retry_in: float
    worker: str


WORKER = f"{socket.gethostname()}:{os.getpid()}"
_ENCODER = msgspec.json.Encoder()


def publish_transitions(app: faust.App, topics: Topics, breakers: Breakers) -> None:
    """Every transition becomes a ``provider-circuits`` record (the breaker itself only logs:
    providers know nothing of Kafka). A transition happens inside a send, which must not wait
    for it, so the record is produced by a task of its own, kept until it is done."""
    pending: set[asyncio.Task[None]] = set()

    async def send(transition: Transition) -> None:
        record = CircuitEvent(
            breaker=transition.breaker,
            previous=transition.previous,
            state=transition.state,
            at=transition.at,
            failure_rate=round(transition.failure_rate, 3),
            calls=transition.calls,
            retry_in=round(transition.retry_in, 3),
            worker=WORKER,
        )
        try:
            await produce.send(
                topics.provider_circuits, transition.breaker.encode(), _ENCODER.encode(record)
            )
        except Exception:  # the log line and the view still have it
            log.exception("could not publish %s", transition)

    def heard(transition: Transition) -> None:
        task = asyncio.ensure_future(send(transition))
        pending.add(task)
        task.add_done_callback(pending.discard)

    breakers.subscribe(heard)

    @app.page("/providers/circuits/")
    class CircuitsView(View):
        """This worker's breakers (each worker has its own: ask each one)."""

        async def get(self, request: Request) -> Response:
            transitions = [
                {"breaker": name, "state": state, "count": count}
                for (name, state), count in sorted(breakers.transitions.items())
            ]
            return self.json(
                {"worker": WORKER, "breakers": breakers.snapshot(), "transitions": transitions}
            )
