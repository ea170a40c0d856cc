"""Producing records from agents: straight to the app's producer.

``Topic.send()`` runs every record through Faust's send machinery (a FutureMessage, callbacks,
sensors, and ``maybe_start_producer()``, whose ``@stampede`` wrapper yields to the loop several
times per call). Handing the bytes to the producer directly did 74,000-81,000 sends/s here
against ~27,000 through ``Topic.send()`` (BROKER.md); every stage of the pipeline sends at least
one record per event, so this is on the hot path.

At-least-once is unchanged: Faust flushes the producer before it commits offsets
(``Consumer._commit_offsets``), so a record handed over before its event is acked is on the
broker before the committed offset passes that event.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping

import faust
from faust.topics import Topic

log = logging.getLogger(__name__)

Headers = Mapping[str, bytes] | list[tuple[str, bytes]]


async def send(
    channel: faust.ChannelT,
    key: bytes | None,
    value: bytes | None,
    headers: Headers | None = None,
    timestamp: float | None = None,
) -> None:
    """``timestamp`` (seconds) for a record passed on: it keeps its original time."""
    if not isinstance(channel, Topic):
        # In-memory channels (functional tests, agent-to-agent channels) have no producer.
        await channel.send(key=key, value=value, headers=headers, timestamp=timestamp)
        return
    producer = channel.app.producer
    topic = channel.get_topic_name()
    pending = await producer.send(topic, key, value, None, timestamp, headers or None)
    if isinstance(pending, asyncio.Future):
        pending.add_done_callback(_report_failure)


def _report_failure(pending: asyncio.Future) -> None:  # type: ignore[type-arg]
    if pending.cancelled():
        log.error("a produced record was cancelled before the broker acknowledged it")
        return
    error = pending.exception()
    if error is not None:
        # The producer already retried for its delivery timeout; nothing in this process can
        # resend it now. Loud, because the record's source offset may be committed.
        log.error("producing a record failed after the producer's retries: %r", error)
