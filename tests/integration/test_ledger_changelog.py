"""The delivery ledger's changelog, written on its own producer (tables/prompt_changelog.py),
is what a partition's next owner knows: a worker that never saw the sends, given only the
changelog, must refuse to send any of them again."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest

from providers.sandboxes.stack import SandboxStack
from scripts.worker_process import WorkerProcess
from scripts.workload import json_records, make_users, produce, read_topic, setup_users
from scripts.workload import wait_for_users as users_loaded
from streams import topics
from streams.deliveries import ALREADY_SENT, DUPLICATE_SUPPRESSED
from tests.integration.pipeline_harness import (
    delivery_events,
    expected_deliveries,
    received_pairs,
    webhook_requests,
)

pytestmark = pytest.mark.integration

LANE = topics.delivery_topic("webhook", "normal")


def test_a_lane_replayed_to_a_worker_with_no_local_state_sends_nothing_twice(
    broker: str,
    sandboxes: SandboxStack,
    workers: Callable[..., WorkerProcess],
    tmp_path: Path,
) -> None:
    users = make_users(50, sandboxes.webhook.url("/"), opt_out_rate=0, first=5000)
    requests = webhook_requests(users, "ledger", 300)
    first = workers(rate_limit_per_user=1000, data_dir=tmp_path / "first-data")
    asyncio.run(setup_users(broker, users))
    asyncio.run(users_loaded(first.web_url, users))
    asyncio.run(produce(broker, json_records(topics.REQUESTS, requests)))
    expected = expected_deliveries(requests, {u.user_id: u for u in users}, "")
    sandboxes.wait_for(lambda got: set(received_pairs(got)) >= set(expected), timeout=120)
    delivery_events(broker, lambda evs: sum(e["status"] == "sent" for e in evs) >= len(expected))
    first.stop()  # a clean stop: its ledger writes are all at the broker

    # The second worker starts from an empty data directory: all it knows is the changelog.
    workers(rate_limit_per_user=1000, data_dir=tmp_path / "second-data")
    lane_records = asyncio.run(
        read_topic(broker, LANE, lambda ms: len(ms) >= len(expected), timeout=60)
    )
    assert len(lane_records) == len(expected)
    # Copies of every lane record, as a replay from old offsets would give them.
    asyncio.run(produce(broker, [(LANE, m.key, m.value) for m in lane_records]))

    def suppressed(events: list[dict[str, object]]) -> int:
        return sum(
            e["status"] == DUPLICATE_SUPPRESSED and e.get("reason") == ALREADY_SENT for e in events
        )

    events = delivery_events(broker, lambda evs: suppressed(evs) >= len(expected), timeout=120)
    assert suppressed(events) == len(expected)
    assert received_pairs(sandboxes.received()) == expected  # each exactly once
