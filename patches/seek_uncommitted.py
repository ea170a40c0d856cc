"""Seeking back to committed offsets must also rewind partitions that have no commit yet.

During a rebalance Faust drops records it already fetched (stream queues are cleared; a fetch
that lands while flow is stopped is thrown away) and then "seeks stream partitions to committed
offsets" to read them again. The seek is aiokafka's ``seek_to_committed()``, which moves only
partitions with a committed offset above 0. A partition nobody has committed yet keeps its
fetch position, past the dropped records, and they are never read: a worker SIGKILLed before
its first commit (every ~2.8 s) and restarted lost up to half of its pending deliveries this
way in the restart test (1 run in 10 under load; the failure report showed the records on the
lanes, no event for them, and no committed offset on their partitions).

Here partitions without a committed offset are rewound as ``consumer_auto_offset_reset`` says
a fresh partition starts ("earliest": the beginning), which is what the consumer would have
done had it not fetched anything yet. Re-reading is safe: the dedup table and delivery ledger
turn replays into no-ops. Kafka and the embedded broker alike; pinned to the faust-streaming
version whose behaviour it corrects.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP

from patches.pin import wrap_method

log = logging.getLogger(__name__)

WORKS_AROUND = "aiokafka: seek_to_committed() leaves never-committed partitions where they are"

# sha256 (first 8 hex digits) of the upstream method this wraps, in faust-streaming 0.15.3.
EXPECTED_SOURCE = {"AIOKafkaConsumerThread.seek_to_committed": "775ab0ad"}


def never_committed(committed: Mapping[TP, int | None]) -> list[TP]:
    """Partitions aiokafka's ``seek_to_committed`` leaves where they are (no offset, or 0)."""
    return sorted(tp for tp, offset in committed.items() if not offset or offset < 0)


def install() -> None:
    """Idempotent; raises UpstreamChanged on upstream code this was not written against."""

    def wrap(original: Callable[..., Any]) -> Callable[..., Any]:
        async def seek_to_committed(self: Any) -> Mapping[TP, int]:
            committed: Mapping[TP, int] = await original(self)
            if self.app.conf.consumer_auto_offset_reset == "earliest":
                rewind = never_committed(committed)
                if rewind:
                    log.info("rewinding %d partitions without a committed offset", len(rewind))
                    await self.seek_to_beginning(*rewind)
            return committed

        return seek_to_committed

    name = "AIOKafkaConsumerThread.seek_to_committed"
    wrap_method(
        faust_aiokafka.AIOKafkaConsumerThread,
        "seek_to_committed",
        "__rewinds_uncommitted__",
        "patches/seek_uncommitted.py",
        EXPECTED_SOURCE[name],
        wrap,
    )
