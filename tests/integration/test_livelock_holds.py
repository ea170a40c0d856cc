"""A lane held back by its CPU ceiling is not reported as a stalled stream, on a real worker.

The low webhook lane runs under a ceiling no process can stay below (a millionth of a core), so
it takes nothing, as the bulk lanes take nothing while a campaign storm saturates a worker. With
more low deliveries waiting than its buffer holds, upstream Faust's livelock check logged
"Stream has not started processing TP(topic='deliveries.webhook.low', ...)" at ERROR for each of
its partitions every 7 s (seen in the storm benchmark; this test without the patch logs the
same). With ``patches/livelock_holds.py`` the worker logs one INFO line for the topic instead.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable

import orjson
import pytest

from providers.sandboxes.stack import SandboxStack
from scripts.worker_process import WorkerProcess
from scripts.workload import make_users, produce, setup_users, wait_for_users
from streams import topics
from tests.integration.pipeline_harness import wait_until

pytestmark = pytest.mark.integration

LANE = topics.delivery_topic("webhook", "low")
STREAM_TIMEOUT = 3.0  # seconds; Faust's default is 300
LIVELOCK_INTERVAL = 7.0  # Faust checks every 2.5 commit intervals of 2.8 s
ROUNDS = 5  # of one low request per user: 2,500 a partition, far past the 1,024 the lane buffers


def low_request(user_id: str, n: int) -> dict[str, object]:
    nid = f"{user_id}-{n}"
    return {
        "notification_id": nid,
        "idempotency_key": nid,
        "user_id": user_id,
        "channels": ["webhook"],
        "priority": "low",
        "title": "t",
        "body": nid,
    }


def test_a_lane_its_ceiling_holds_back_is_reported_once_at_info_and_never_as_stalled(
    broker: str, sandboxes: SandboxStack, workers: Callable[..., WorkerProcess]
) -> None:
    users = make_users(1000, sandboxes.webhook.url("/"), opt_out_rate=0)
    worker = workers(
        partitions=2,
        deliver_cpu_ceiling_low=1e-6,
        low_requests_wait=False,  # resolved in line: the hold is the deliver lane's
        lane_buffer_size=1024,
        stream_processing_timeout_seconds=STREAM_TIMEOUT,
    )
    asyncio.run(setup_users(broker, users))
    asyncio.run(wait_for_users(worker.web_url, users))
    # In rounds, as a campaign keeps fanning out: once the lane's buffer is under pressure
    # Faust stops fetching its partitions, and the later rounds wait in Kafka, past the fetch
    # position (what the livelock check looks for).
    for n in range(ROUNDS):
        round_ = [
            (topics.REQUESTS, user.user_id.encode(), orjson.dumps(low_request(user.user_id, n)))
            for user in users
        ]
        asyncio.run(produce(broker, round_))
        time.sleep(2.0)

    held = f"Not reporting {LANE}'s partitions as stalled"
    wait_until(lambda: held in worker.log_text(), timeout=90)
    # Two more rounds of the check, each well past the stream timeout.
    time.sleep(2 * LIVELOCK_INTERVAL + 1)
    log = worker.log_text()
    assert log.count(held) == 1, log[-5000:]
    stalled = re.compile(r"Stream (has not started|stopped) processing.*" + re.escape(LANE))
    assert not stalled.search(log), log[-5000:]
    assert sandboxes.received() == []  # the ceiling did hold the lane: nothing was sent
