"""What one offset commit costs the consumer thread, upstream's against the patched one:
``python -m bench.commit_cost`` times ``AIOKafkaConsumerThread._commit`` (faust-streaming
0.15.3) and ``patches.commit_assignment``'s, for workers that read 100, 380 (one worker of this
app, every topic at 8 partitions) and 1,000 partitions with half of them committed.

Faust commits every ``broker_commit_interval`` (2.8 s) in the consumer thread, where both fetch
loops run; the time printed is how long they stand still at each commit.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiokafka.structs import OffsetAndMetadata, TopicPartition
from faust.transport.consumer import ensure_TPset
from faust.transport.drivers.aiokafka import logger
from faust.types import TP

from patches import commit_assignment

Commit = Callable[[Any, Mapping[TP, int]], Coroutine[Any, Any, bool]]


class CommitsNothing:
    """aiokafka's consumer as ``_commit`` sees it, answering at once."""

    async def commit(self, offsets: Mapping[TopicPartition, OffsetAndMetadata]) -> None:
        return None


@dataclass
class ConsumerThread:
    """What ``_commit`` touches of Faust's consumer thread; ``assignment()`` as upstream's
    (``ensure_TPset`` over aiokafka's assignment): a new set at every call."""

    assigned: frozenset[TopicPartition]
    tp_last_committed_at: dict[TP, float] = field(default_factory=dict)
    log: Any = logger

    def _ensure_consumer(self) -> CommitsNothing:
        return CommitsNothing()

    def assignment(self) -> set[TP]:
        return ensure_TPset(self.assigned)

    async def crash(self, exc: BaseException) -> None:
        raise exc


def _millis_per_commit(commit: Commit, assigned: int, rounds: int) -> float:
    partitions = frozenset(TopicPartition(f"topic-{i // 8}", i % 8) for i in range(assigned))
    thread = ConsumerThread(partitions)
    offsets = {TP(tp.topic, tp.partition): 10 for tp in sorted(partitions)[: assigned // 2]}

    async def commit_rounds() -> None:
        for _ in range(rounds):
            await commit(thread, offsets)

    started = time.process_time()
    asyncio.run(commit_rounds())
    return (time.process_time() - started) / rounds * 1000


def main() -> None:
    upstream = commit_assignment.upstream_commit()
    for assigned in (100, 380, 1000):
        rounds = max(3, 20_000 // assigned)
        before = _millis_per_commit(upstream, assigned, max(3, rounds // 20))
        after = _millis_per_commit(commit_assignment.patched_commit, assigned, rounds)
        print(
            f"{assigned:>5} partitions, {assigned // 2} committed: "
            f"upstream {before:8.2f} ms per commit, patched {after:6.2f} ms"
        )


if __name__ == "__main__":
    main()
