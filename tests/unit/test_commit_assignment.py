"""An offset commit reads the assignment once and still commits only assigned partitions."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aiokafka.errors import CommitFailedError
from aiokafka.structs import OffsetAndMetadata, TopicPartition
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP

from patches import commit_assignment

ASSIGNED = {TP("lane", p) for p in range(4)}
REVOKED = TP("lane", 9)


@dataclass
class FakeAiokafkaConsumer:
    commits: list[dict[TopicPartition, OffsetAndMetadata]] = field(default_factory=list)
    refuse: Exception | None = None

    async def commit(self, offsets: dict[TopicPartition, OffsetAndMetadata]) -> None:
        if self.refuse is not None:
            raise self.refuse
        self.commits.append(offsets)


@dataclass
class FakeConsumerThread:
    """Just what upstream's ``_commit`` touches."""

    consumer: FakeAiokafkaConsumer
    assignment_reads: int = 0
    tp_last_committed_at: dict[TP, float] = field(default_factory=dict)
    crashed: list[BaseException] = field(default_factory=list)
    log: Any = field(default_factory=lambda: faust_aiokafka.logger)

    def _ensure_consumer(self) -> FakeAiokafkaConsumer:
        return self.consumer

    def assignment(self) -> set[TP]:
        self.assignment_reads += 1
        return set(ASSIGNED)

    async def crash(self, exc: BaseException) -> None:
        self.crashed.append(exc)


OFFSETS = {**{tp: 10 + tp.partition for tp in ASSIGNED}, REVOKED: 99}


async def commit(thread: FakeConsumerThread) -> bool:
    committed: bool = await faust_aiokafka.AIOKafkaConsumerThread._commit(
        thread,  # type: ignore[arg-type]
        OFFSETS,
    )
    return committed


async def test_upstream_reads_the_assignment_once_per_offset() -> None:
    # The reason for the patch, pinned: the cost is offsets x assigned partitions.
    upstream = commit_assignment.upstream_commit()
    thread = FakeConsumerThread(FakeAiokafkaConsumer())
    assert await upstream(thread, OFFSETS)
    assert thread.assignment_reads == len(OFFSETS)


async def test_a_commit_reads_the_assignment_once_and_skips_revoked_partitions() -> None:
    commit_assignment.install()
    thread = FakeConsumerThread(FakeAiokafkaConsumer())
    assert await commit(thread)
    assert thread.assignment_reads == 1
    (sent,) = thread.consumer.commits
    assert sent == {
        TopicPartition(tp.topic, tp.partition): OffsetAndMetadata(10 + tp.partition, "")
        for tp in ASSIGNED
    }
    assert set(thread.tp_last_committed_at) == ASSIGNED


async def test_a_commit_after_a_rebalance_is_refused_quietly_and_others_crash() -> None:
    commit_assignment.install()
    rebalanced = FakeConsumerThread(
        FakeAiokafkaConsumer(refuse=CommitFailedError("group already rebalanced"))
    )
    assert not await commit(rebalanced)
    assert rebalanced.crashed == []
    broken = FakeConsumerThread(FakeAiokafkaConsumer(refuse=RuntimeError("broker gone")))
    assert not await commit(broken)
    assert [type(exc) for exc in broken.crashed] == [RuntimeError]
