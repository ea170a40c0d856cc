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

import faust

from agents import events, produce
from agents.admission import Admission
from agents.holding import Holding, HoldPolicy
from agents.supervision import supervised_agent
from config.clock import Clock
from config.settings import Settings
from config.vocabulary import EventStatus
from streams.deliveries import DeliveryEvent
from streams.faust_types import Agent, Event, Stream
from streams.holds import HoldFields, hold_record, parse_hold, release_headers
from streams.records import NotificationRequest
from streams.topics import Topics

NAME = "release_held"
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
        ),
    )


def register(app: faust.App, settings: Settings, topics: Topics, clock: Clock) -> Agent:
    check_every = (
        STEPPED_CLOCK_CHECK_SECONDS if settings.clock_file is not None else CLOCK_CHECK_SECONDS
    )
    holding: Holding[HoldFields] = Holding(
        app, "held requests", settings.retry_pending_cap, clock=clock, max_wait=check_every
    )

    def due(event: Event) -> tuple[float, HoldFields]:
        held = parse_hold(event.message.value)
        return held.release_at, held

    async def release(event: Event, held: HoldFields) -> None:
        await produce.send(
            topics.requests_by_user, event.message.key, bytes(held.request), release_headers(held)
        )

    policy = HoldPolicy(NAME, "release", due, release, topics.requests_dlq)

    async def release_held(stream: Stream) -> None:
        await holding.run(stream, policy)

    return supervised_agent(app, topics.requests_held, NAME)(release_held)
