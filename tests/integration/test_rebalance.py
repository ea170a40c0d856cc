"""Rebalances while work is held: retries waiting in their tiers, sends in flight on the lanes.

Held work of a revoked partition is dropped by the worker that held it and read again by the
partition's next owner; nothing may be lost, raised, or sent twice because of it."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from providers.sandboxes.stack import SandboxStack
from scripts.worker_process import WorkerProcess
from scripts.workload import RequestMix, json_records, make_users, produce, setup_users
from scripts.workload import wait_for_users as users_loaded
from streams import topics
from tests.integration.pipeline_harness import (
    delivery_events,
    expected_deliveries,
    received_pairs,
    webhook_requests,
)

pytestmark = pytest.mark.integration

# Faults any worker log may show without anything being wrong: none of them is a traceback.
CRASH_MARKERS = ("Traceback", "KeyError", "crashed")


def assert_nothing_raised(log_file: Path) -> None:
    text = log_file.read_text(errors="replace")
    found = [marker for marker in CRASH_MARKERS if marker in text]
    assert not found, f"{found} in the worker log:\n{text[-4000:]}"


@pytest.mark.long
def test_retries_held_at_a_rebalance_are_read_again_by_the_next_owner(
    broker: str,
    sandboxes: SandboxStack,
    workers: Callable[..., WorkerProcess],
    tmp_path: Path,
) -> None:
    users = make_users(40, sandboxes.webhook.url("/"), opt_out_rate=0, first=3000)
    requests = webhook_requests(users, "held", 200)
    # Long enough waits that the retries are held in memory when the second worker joins. The
    # webhook breaker opens on this outage too and defers what it refuses to the same tiers;
    # 3 s open (not the seed's 30) keeps its trials within the test's time.
    schedule = {
        # The join (a worker start) takes a few seconds; the fault is cleared right after it,
        # so the fourth attempt (16 s in) is the first that can succeed: 10 s tiers hold the
        # retries through the rebalance as 20 s ones did, and the test ends 10 s sooner.
        "retry_webhook": [3.0, 3.0, 10.0, 10.0],
        "rate_limit_per_user": 1000,
        "breaker_open_seconds": 3.0,
    }
    first = workers(**schedule)
    asyncio.run(setup_users(broker, users))
    asyncio.run(users_loaded(first.web_url, users))
    sandboxes.inject("webhook", rate=1.0, fault=503)
    asyncio.run(produce(broker, json_records(topics.REQUESTS, requests)))
    delivery_events(broker, lambda evs: sum(e["status"] == "retrying" for e in evs) >= 200)

    workers(**schedule, data_dir=tmp_path / "second-data")  # the rebalance
    sandboxes.inject("webhook", clear=True)

    expected = expected_deliveries(requests, {u.user_id: u for u in users}, "")
    sandboxes.wait_for(lambda got: set(received_pairs(got)) >= set(expected), timeout=120)
    delivery_events(broker, lambda evs: sum(e["status"] == "sent" for e in evs) >= len(expected))
    assert received_pairs(sandboxes.received()) == expected  # each once
    assert_nothing_raised(tmp_path / "worker.log")


def test_a_worker_joining_during_a_backlog_loses_and_repeats_nothing(
    broker: str,
    sandboxes: SandboxStack,
    workers: Callable[..., WorkerProcess],
    tmp_path: Path,
) -> None:
    users = make_users(300, sandboxes.webhook.url("/"), first=4000)
    requests = RequestMix(users, prefix="join").make(3000)
    first = workers(rate_limit_per_user=1000)
    asyncio.run(setup_users(broker, users))
    asyncio.run(users_loaded(first.web_url, users))
    asyncio.run(produce(broker, json_records(topics.REQUESTS, requests)))
    expected = expected_deliveries(
        requests, {u.user_id: u for u in users}, sandboxes.webhook.url("/inbox")
    )
    total = sum(expected.values())
    sandboxes.wait_for(lambda got: len(got) >= total // 4, timeout=120)
    workers(rate_limit_per_user=1000, data_dir=tmp_path / "second-data")

    sandboxes.wait_for(lambda got: set(received_pairs(got)) >= set(expected), timeout=240)
    delivery_events(broker, lambda evs: sum(e["status"] == "sent" for e in evs) >= total)
    got: Counter[tuple[str, str]] = received_pairs(sandboxes.received())
    repeated: dict[Any, int] = {pair: n for pair, n in got.items() if n > 1}
    assert set(got) == set(expected)
    assert not repeated, f"{len(repeated)} deliveries sent twice: {sorted(repeated)[:5]}"
    assert_nothing_raised(tmp_path / "worker.log")
