"""Quiet hours: holding a request in Kafka until the user's quiet window ends, then sending it
back through the intake.

Why a hold topic, and not a table scanned by a timer or the retry tiers: a held record is
durable the moment it is produced, and its partition's committed offset stays before it until
it is released (the record is acked only then, ``patches/commit_guard.py`` commits only runs
of finished offsets), so a crash or a rebalance makes its next owner read it again: nothing
is lost, and nothing is held in a table a timer would have to write outside any event (Faust
writes a table only from the event of its partition). The retry tiers would do the same, but
they carry deliveries (one per address, fanned out at arrival with the preferences of that
moment) on fixed delays; a hold carries the request, so at the release it is resolved again
under the user's preferences and addresses of the morning (an unsubscribe in the night stops
it), and its delay is wherever the window ends.

The agent keeps what it has read in a due-time heap (agents/scheduler.py) on the quiet-hours
clock (``NOTIFY_CLOCK_FILE`` in tests), bounded like a retry tier (past
``NOTIFY_RETRY_PENDING_CAP`` it stops reading and the rest waits in Kafka). A release is the
request produced again to ``notification-requests.by-user`` (the user's own partition) with
the ``x-held-from`` / ``x-release-channels`` headers (streams/holds.py). A hold read again
after a crash releases its request a second time: the intake resolves it again and the
delivery ledger drops the deliveries that went out (stable delivery ids).
"""

from __future__ import annotations

import asyncio
import logging

import faust
from faust.exceptions import ProducerSendError
from faust.types import TP

from agents import events, produce, safe
from agents.admission import Admission
from agents.counters import FAILURES
from agents.lanes import is_stale
from agents.scheduler import DueScheduler
from agents.supervision import supervised_agent
from config.clock import Clock
from config.settings import Settings
from config.vocabulary import EventStatus
from streams.deliveries import DeliveryEvent
from streams.faust_types import Agent, Event, Stream
from streams.holds import HoldFields, hold_record, parse_hold, release_headers
from streams.records import NotificationRequest
from streams.topics import Topics

log = logging.getLogger(__name__)

NAME = "release_held"
RELEASE_BACKOFF_SECONDS = 1.0
# Longest sleep between looks at the clock: a held record waits hours, and the wall clock
# (NTP, a stepped test clock) may move meanwhile.
CLOCK_CHECK_SECONDS = 30.0
STEPPED_CLOCK_CHECK_SECONDS = 0.2


async def hold(
    topics: Topics,
    request: NotificationRequest,
    admission: Admission,
    source: str,
    raw: bytes | None,
    now: float,
) -> None:
    """Put the admission's held channels of ``request`` on hold until its ``release_at``
    (epoch seconds on the quiet-hours clock), and report it: ``held``, the release time in
    ``reason``. ``source`` is the record that claimed the request's idempotency key."""
    if raw is None:
        raise ValueError("a request is held as the record it arrived as")
    record = hold_record(admission.release_at, source, admission.held, raw)
    await produce.send(topics.requests_held, request.user_id.encode(), record)
    await events.publish(
        topics.delivery_events,
        DeliveryEvent(
            notification_id=request.notification_id,
            user_id=request.user_id,
            status=EventStatus.HELD,
            at=now,
            reason=f"{admission.release_at:.3f}",
            requested_at=request.created_at,
            callback_url=request.callback_url,
        ),
    )


def register(app: faust.App, settings: Settings, topics: Topics, clock: Clock) -> Agent:
    check_every = (
        STEPPED_CLOCK_CHECK_SECONDS if settings.clock_file is not None else CLOCK_CHECK_SECONDS
    )
    schedulers: list[DueScheduler[tuple[Event, HoldFields]]] = []

    @app.on_partitions_revoked.connect  # type: ignore[arg-type]  # faust types it loosely
    async def drop_held(sender: object, revoked: set[TP], **kwargs: object) -> None:
        for scheduler in schedulers:
            dropped = scheduler.discard(lambda item: item[0].message.tp in revoked)
            if dropped:
                log.info("rebalance: %d held requests left to the next owner", dropped)

    async def release_held(stream: Stream) -> None:
        scheduler: DueScheduler[tuple[Event, HoldFields]] = DueScheduler(
            settings.retry_pending_cap, clock=clock, max_wait=check_every
        )
        schedulers.append(scheduler)

        async def release(item: tuple[Event, HoldFields]) -> None:
            event, held = item
            if is_stale(event, app.consumer_generation_id):
                return  # revoked meanwhile: read again by the partition's next owner
            try:
                await produce.send(
                    topics.requests_by_user,
                    event.message.key,
                    bytes(held.request),
                    release_headers(held),
                )
            except ProducerSendError as exc:
                await safe.dead_letter_or_log(
                    topics.requests_dlq, event, f"release refused: {exc}", NAME, "release_refused"
                )
            except Exception:
                log.exception("releasing a held request failed; trying again")
                scheduler.put_back(scheduler.now() + RELEASE_BACKOFF_SECONDS, item)
                return
            event.ack()

        async def take(event: Event) -> None:
            held = parse_hold(event.message.value)
            await scheduler.put(held.release_at, (event, held))

        async def run_forever() -> None:
            while True:
                try:
                    await scheduler.run(release)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    FAILURES.agent_restarts[f"{NAME}.dispatch"] += 1
                    log.exception("%s: the release dispatcher failed; restarting it", NAME)
                    await asyncio.sleep(RELEASE_BACKOFF_SECONDS)

        runner = asyncio.ensure_future(run_forever())
        try:
            async for event in stream.noack().events():  # type: ignore[attr-defined]
                if not await safe.handle_safely(event, take, topics.requests_dlq, NAME):
                    event.ack()  # dead-lettered (or, failing that, logged): nothing holds it
        finally:
            runner.cancel()
            schedulers.remove(scheduler)

    return supervised_agent(app, topics.requests_held, NAME)(release_held)
