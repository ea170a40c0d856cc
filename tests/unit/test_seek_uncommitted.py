"""Seeking back after a rebalance rewinds partitions that were never committed."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP

from patches import seek_uncommitted
from patches.pin import UpstreamChanged

NEW, DONE, AT_ZERO = TP("lane", 0), TP("lane", 1), TP("lane", 2)


@dataclass
class FakeAiokafkaConsumer:
    committed: dict[TP, int | None]

    async def seek_to_committed(self) -> dict[TP, int | None]:
        return self.committed


@dataclass
class FakeConsumerThread:
    """Just what the upstream method and the wrapper touch."""

    consumer: FakeAiokafkaConsumer
    reset: str = "earliest"
    rewound: list[TP] = field(default_factory=list)

    @property
    def app(self) -> Any:
        return SimpleNamespace(conf=SimpleNamespace(consumer_auto_offset_reset=self.reset))

    def _ensure_consumer(self) -> FakeAiokafkaConsumer:
        return self.consumer

    async def call_thread(self, method: Any) -> Any:
        return await method()

    async def seek_to_beginning(self, *partitions: TP) -> None:
        self.rewound.extend(partitions)


def test_upstream_leaves_partitions_without_a_commit_where_they_are() -> None:
    # The reason for the patch, pinned: aiokafka seeks only offsets above 0.
    assert seek_uncommitted.never_committed({NEW: None, DONE: 7, AT_ZERO: 0}) == [NEW, AT_ZERO]


async def test_partitions_without_a_commit_are_rewound_to_the_beginning() -> None:
    seek_uncommitted.install()
    thread = FakeConsumerThread(FakeAiokafkaConsumer({NEW: None, DONE: 7, AT_ZERO: 0}))
    seek = faust_aiokafka.AIOKafkaConsumerThread.seek_to_committed
    assert await seek(thread) == {NEW: None, DONE: 7, AT_ZERO: 0}  # type: ignore[arg-type]
    assert thread.rewound == [NEW, AT_ZERO]


async def test_latest_reset_is_left_to_upstream() -> None:
    seek_uncommitted.install()
    thread = FakeConsumerThread(FakeAiokafkaConsumer({NEW: None}), reset="latest")
    await faust_aiokafka.AIOKafkaConsumerThread.seek_to_committed(thread)  # type: ignore[arg-type]
    assert thread.rewound == []


def test_install_refuses_a_changed_upstream(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(
        seek_uncommitted.EXPECTED_SOURCE, "AIOKafkaConsumerThread.seek_to_committed", "00000000"
    )
    original = getattr(faust_aiokafka.AIOKafkaConsumerThread.seek_to_committed, "__wrapped__", None)
    if original is not None:  # already installed by another test: check the upstream itself
        monkeypatch.setattr(faust_aiokafka.AIOKafkaConsumerThread, "seek_to_committed", original)
    with pytest.raises(UpstreamChanged, match="changed upstream"):
        seek_uncommitted.install()
