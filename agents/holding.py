"""Records an agent holds in memory until they are due, then passes on: the retry tiers
(agents/retry.py) and the quiet-hours holds (agents/holds.py).

What both need, once: a due-time heap per stream (agents/scheduler.py), a record acked only
once it has been passed on (so the committed offset never passes one still waiting, and a
crash reads it again), the records of revoked partitions dropped at a rebalance (their next
owner reads them again; passing this copy on too would send it twice), a pass-on that fails
tried again after a pause, still unacked, one the producer refuses outright dead-lettered
(trying again would refuse it again, forever), and a dispatcher task that never stays dead.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

import faust
from faust.exceptions import ProducerSendError
from faust.types import TP

from agents import safe
from agents.counters import FAILURES
from agents.lanes import is_stale
from agents.scheduler import DueScheduler
from streams.faust_types import Channel, Event, Stream

log = logging.getLogger(__name__)

T = TypeVar("T")
# A pass-on that failed (a producer error) is tried again after this long, still unacked.
RETRY_PASS_ON_SECONDS = 1.0


@dataclass(frozen=True)
class HoldPolicy(Generic[T]):
    """What one holding agent does with its records."""

    name: str  # the agent's, in logs and failure counters
    verb: str  # "re-route", "release": the dead-letter reason's first word
    due: Callable[[Event], tuple[float, T]]  # parse a record: (due time, what to keep)
    pass_on: Callable[[Event, T], Awaitable[None]]  # send it on once due
    dead_letters: Channel


class Holding(Generic[T]):
    """One per kind of holding agent; ``run`` is the body of each of its streams."""

    def __init__(
        self,
        app: faust.App,
        what: str,  # "held retries", "held requests": the rebalance log's words
        capacity: int,
        clock: Callable[[], float] = time.time,
        max_wait: float | None = None,
    ) -> None:
        self.app = app
        self.what = what
        self.capacity = capacity
        self.clock = clock
        self.max_wait = max_wait
        self.schedulers: list[DueScheduler[tuple[Event, T]]] = []
        app.on_partitions_revoked.connect(self._drop_revoked)  # type: ignore[arg-type]

    async def _drop_revoked(self, sender: object, revoked: set[TP], **kwargs: object) -> None:
        for scheduler in self.schedulers:
            dropped = scheduler.discard(lambda item: item[0].message.tp in revoked)
            if dropped:
                log.info("rebalance: %d %s left to the next owner", dropped, self.what)

    async def run(self, stream: Stream, policy: HoldPolicy[T]) -> None:
        scheduler: DueScheduler[tuple[Event, T]] = DueScheduler(
            self.capacity, clock=self.clock, max_wait=self.max_wait
        )
        self.schedulers.append(scheduler)

        async def dispatch(item: tuple[Event, T]) -> None:
            event, kept = item
            if is_stale(event, self.app.consumer_generation_id):
                return  # revoked meanwhile: read again by the partition's next owner
            try:
                await policy.pass_on(event, kept)
            except ProducerSendError as exc:
                await safe.dead_letter_or_log(
                    policy.dead_letters,
                    event,
                    f"{policy.verb} refused: {exc}",
                    policy.name,
                    f"{policy.verb.replace('-', '')}_refused",
                )
            except Exception:
                log.exception("%s: passing on a record failed; trying again", policy.name)
                scheduler.put_back(scheduler.now() + RETRY_PASS_ON_SECONDS, item)
                return
            event.ack()

        async def take(event: Event) -> None:
            due, kept = policy.due(event)
            await scheduler.put(due, (event, kept))

        async def run_forever() -> None:
            # A task beside the agent's loop: were it dead, the agent would go on reading and
            # holding records without ever passing one on. It never stays dead.
            while True:
                try:
                    await scheduler.run(dispatch)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    FAILURES.agent_restarts[f"{policy.name}.dispatch"] += 1
                    log.exception("%s: the dispatcher failed; restarting it", policy.name)
                    await asyncio.sleep(RETRY_PASS_ON_SECONDS)

        runner = asyncio.ensure_future(run_forever())
        try:
            async for event in stream.noack().events():  # type: ignore[attr-defined]
                if not await safe.handle_safely(event, take, policy.dead_letters, policy.name):
                    event.ack()  # dead-lettered (or, failing that, logged): nothing holds it
        finally:
            runner.cancel()
            self.schedulers.remove(scheduler)
