"""What the patches work around, checked against the installed upstream code itself: each test
fails the day upstream fixes the bug or adds the missing option, which is the day to delete
the patch (patches/__init__.py)."""

from __future__ import annotations

import inspect
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.consumer.fetcher import Fetcher
from faust.transport.consumer import ThreadDelegateConsumer
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread
from faust.types import TP

from patches import skipped_records


class RecordingThread:
    def __init__(self) -> None:
        self.seen: list[Any] = []

    async def getmany(self, active: Any, timeout: float) -> dict[TP, list[Any]]:
        self.seen.append(active)
        return {}


async def test_faust_hands_the_consumer_thread_its_live_partition_set() -> None:
    # patches/skipped_records.py: a pause during the fetch changes (or empties) this very set.
    delegate: Any = type("Delegate", (), {"_thread": RecordingThread()})()
    active = {TP("t", 0)}
    await inspect.unwrap(ThreadDelegateConsumer._getmany)(delegate, active, 1.0)
    assert delegate._thread.seen[0] is active


async def test_the_patched_hand_over_gives_the_thread_a_copy_and_never_an_empty_set() -> None:
    delegate: Any = type("Delegate", (), {"_thread": RecordingThread()})()
    active = {TP("t", 0)}
    await skipped_records._getmany_with_a_copy(delegate, active, 1.0)
    assert delegate._thread.seen[0] == active and delegate._thread.seen[0] is not active
    assert await skipped_records._getmany_with_a_copy(delegate, set(), 1.0) == {}
    assert len(delegate._thread.seen) == 1  # an empty set fetches nothing at all


def test_aiokafka_has_no_consumer_option_for_the_prefetch_backoff() -> None:
    # patches/fetch_backoff.py
    assert "prefetch_backoff" not in inspect.signature(AIOKafkaConsumer.__init__).parameters
    assert inspect.signature(Fetcher.__init__).parameters["prefetch_backoff"].default == 0.1


def test_faust_fixes_the_fetch_wait_at_1500_ms() -> None:
    # patches/tansu/fetch_wait.py
    source = inspect.getsource(inspect.unwrap(AIOKafkaConsumerThread._create_worker_consumer))
    assert "fetch_max_wait_ms=1500," in source
