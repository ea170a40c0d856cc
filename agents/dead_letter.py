"""Dead-lettering: the original bytes, untouched, plus why and where they came from."""

from __future__ import annotations

import logging
import time

import faust
from faust.types import EventT

from agents import produce

log = logging.getLogger(__name__)

REASON_HEADER = "x-dlq-reason"
SOURCE_HEADER = "x-dlq-source"  # topic:partition:offset
AT_HEADER = "x-dlq-at"


def dead_letter_headers(event: EventT, reason: str) -> dict[str, bytes]:
    message = event.message
    return {
        REASON_HEADER: reason.encode(),
        SOURCE_HEADER: f"{message.topic}:{message.partition}:{message.offset}".encode(),
        AT_HEADER: f"{time.time():.3f}".encode(),
    }


async def dead_letter(topic: faust.ChannelT, event: EventT, reason: str) -> None:
    """Keep the value byte for byte so a redrive republishes exactly what the producer sent."""
    message = event.message
    log.warning(
        "dead-lettered %s:%s:%s: %s", message.topic, message.partition, message.offset, reason
    )
    await produce.send(topic, message.key, message.value, dead_letter_headers(event, reason))
