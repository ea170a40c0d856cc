"""The one safe-handling wrapper every agent runs its records through.

Faust acks an event whose agent raised, so the record would be lost, and the agent's actor
would crash. So nothing escapes here: a record a parser refuses (``InvalidRecord``) is
dead-lettered with its reason; any other exception (a bug, a producer refusing an outcome
record) is dead-lettered as ``internal error: <type>: <message>`` and logged with the record's
coordinates and traceback. If even the dead letter (with its truncated fallback,
agents/dead_letter.py) cannot be written, the record's coordinates and reason are logged at
CRITICAL and counted: the event is acked anyway (``stream.events()`` acks on the next
iteration whatever happens, and a lane's event is acked once its handler returns), so the log
line is then the last trace of it. Leaving it unacked would not keep it either: the commit
guard would hold the partition's commit behind it until the next rebalance re-reads it, and
then fail the same way.

``asyncio.CancelledError`` is not caught: it is a rebalance or a shutdown, not a record.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from agents import dead_letter
from agents.counters import FAILURES
from streams.faust_types import Channel, Event
from streams.records import InvalidRecord

log = logging.getLogger(__name__)

Handler = Callable[[Event], Awaitable[None]]


async def handle_safely(event: Event, handler: Handler, dead_letters: Channel, stage: str) -> bool:
    """True if ``handler`` finished with the event; False if it was dead-lettered instead
    (or, failing that, logged). Never raises an ``Exception``."""
    try:
        await handler(event)
        return True
    except InvalidRecord as exc:
        FAILURES.invalid_records[stage] += 1
        reason, kind = str(exc), "invalid_record"
    except Exception as exc:
        FAILURES.internal_errors[stage] += 1
        log.exception("%s failed on %s", stage, dead_letter.source_of(event))
        reason, kind = f"internal error: {type(exc).__name__}: {exc}", "internal_error"
    await dead_letter_or_log(dead_letters, event, reason, stage, kind)
    return False


async def dead_letter_or_log(
    dead_letters: Channel, event: Event, reason: str, stage: str, kind: str
) -> None:
    """Dead-letter ``event``; if even that fails, log it as lost. Never raises an Exception.
    ``kind`` is the reason's bounded class, the ``reason`` label of the dead-letter metric."""
    FAILURES.dead_letter_reasons[dead_letter.topic_name(dead_letters), kind] += 1
    try:
        await dead_letter.dead_letter(dead_letters, event, reason)
    except Exception as exc:
        if not isinstance(exc, dead_letter.DeadLetterFailed):  # that one is counted already
            FAILURES.dead_letter_failures[dead_letter.topic_name(dead_letters)] += 1
        log.critical(
            "%s: LOST %s, it could not be dead-lettered (reason it was refused: %s)",
            stage,
            dead_letter.source_of(event),
            dead_letter.bounded_reason(reason),
            exc_info=True,
        )


def guarded(handler: Handler, dead_letters: Channel, stage: str) -> Handler:
    """``handler`` wrapped by ``handle_safely``, for callers that take a handler (a lane)."""

    async def handle(event: Event) -> None:
        await handle_safely(event, handler, dead_letters, stage)

    return handle
