"""Global provider rate limits on a real redis-server: the Lua bucket against its Python twin,
two workers sharing one provider's rate, a 429 with Retry-After, and Redis killed mid-run.

Rates are measured where the sends arrive: the sandboxes stamp each request on arrival
(``received_at``, refusals included). The 429 is Twilio's (the SMS sandbox): a provider-wide
throttle, where a webhook's 429 is one subscriber's and cuts no shared rate."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from bisect import bisect_left
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from providers.sandboxes.stack import SandboxStack
from providers.token_bucket import LocalBucket, SharedBucket
from scripts.redis_server import RedisServer
from scripts.worker_process import WorkerProcess
from scripts.workload import User, json_records, make_users, produce, setup_users
from scripts.workload import wait_for_users as users_loaded
from streams import topics
from tests.integration.pipeline_harness import expected_deliveries, received_pairs, webhook_requests
from tests.unit.test_token_bucket import CASES, SHAPE

pytestmark = pytest.mark.integration

RATE = 20.0  # webhook sends per second, all workers together
LIMITS = {
    "rate_webhook_per_second": RATE,
    "rate_sms_per_second": RATE,
    "rate_burst_seconds": 1.0,  # capacity: RATE tokens
    "rate_limit_per_user": 1000,
}


async def test_the_lua_bucket_and_its_python_twin_agree(redis_server: RedisServer) -> None:
    client = Redis.from_url(redis_server.url)
    try:
        shared, local = SharedBucket(client), LocalBucket(SHAPE, 1000.0)
        for op, arg, now, expected in CASES:
            if op == "take":
                got = await shared.take("bucket:twin", SHAPE, int(arg), now)
                twin = local.take(int(arg), now)
            else:
                got = await shared.throttle("bucket:twin", SHAPE, arg, now)
                twin = local.throttle(arg, now)
            assert (got.granted, got.wait, got.rate) == pytest.approx(expected, abs=1e-3)
            assert (got.granted, got.wait, got.rate) == pytest.approx(
                (twin.granted, twin.wait, twin.rate), abs=1e-6
            )
    finally:
        await client.aclose()


def arrivals(sandboxes: SandboxStack, sandbox: str = "webhook") -> list[float]:
    """Every request one sandbox saw (accepted or refused), by arrival time."""
    seen = [r for r in sandboxes.received() + sandboxes.rejected() if r["sandbox"] == sandbox]
    return sorted(r["received_at"] for r in seen)


def busiest_second(times: Sequence[float]) -> int:
    """The most arrivals in any one-second window [t, t + 1) starting at an arrival."""
    return max((bisect_left(times, t + 1.0) - i for i, t in enumerate(times)), default=0)


def rate_view(worker: WorkerProcess) -> dict[str, Any]:
    with urllib.request.urlopen(f"{worker.web_url}/rate-limits/", timeout=5) as response:
        return json.loads(response.read())  # type: ignore[no-any-return]


def wait_for_view(
    worker: WorkerProcess, holds: Callable[[dict[str, Any]], bool], timeout: float = 60.0
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        view = rate_view(worker)
        if holds(view):
            return view
        if time.monotonic() > deadline:
            raise TimeoutError(f"rate view never matched: {view}")
        time.sleep(0.1)


def load(bootstrap: str, worker: WorkerProcess, users: list[User], requests: list[Any]) -> None:
    asyncio.run(setup_users(bootstrap, users))
    asyncio.run(users_loaded(worker.web_url, users))
    asyncio.run(produce(bootstrap, json_records(topics.REQUESTS, requests)))


def sms_requests(users: Sequence[User], prefix: str, count: int) -> list[dict[str, Any]]:
    return [{**request, "channels": ["sms"]} for request in webhook_requests(users, prefix, count)]


def assert_each_once(sandboxes: SandboxStack, users: list[User], requests: list[Any]) -> None:
    expected = expected_deliveries(requests, {u.user_id: u for u in users}, "")
    sandboxes.wait_for(lambda got: set(received_pairs(got)) >= set(expected), timeout=120)
    assert received_pairs(sandboxes.received()) == expected  # nothing dropped, nothing twice


def test_two_workers_together_keep_to_the_provider_rate(
    broker: str,
    sandboxes: SandboxStack,
    workers: Callable[..., WorkerProcess],
    redis_server: RedisServer,
    tmp_path: Path,
) -> None:
    users = make_users(40, sandboxes.webhook.url("/"), opt_out_rate=0, first=6000)
    requests = webhook_requests(users, "shared", 300)
    first = workers(redis_url=redis_server.url, **LIMITS)
    second = workers(redis_url=redis_server.url, **LIMITS, data_dir=tmp_path / "second-data")
    load(broker, first, users, requests)

    assert_each_once(sandboxes, users, requests)
    times = arrivals(sandboxes)
    errors = [rate_view(worker)["redis_errors"] for worker in (first, second)]
    print(f"\nshared: busiest second {busiest_second(times)}, {len(times)} sends, "
          f"Redis errors {errors}")  # fmt: skip
    # At most the rate plus the burst (a full bucket at the start) in any second, and one
    # lease per worker (RATE * 0.05 s rounds to a single token here).
    assert busiest_second(times) <= RATE + RATE * 1.0 + 2
    # Both took their tokens from the one shared bucket.
    for worker in (first, second):
        view = rate_view(worker)
        assert view["mode"] == "shared"
        assert view["providers"]["webhook"]["tokens_taken"] > 0


def test_a_429_shuts_the_provider_for_its_retry_after_and_lowers_its_rate(
    broker: str,
    sandboxes: SandboxStack,
    workers: Callable[..., WorkerProcess],
    redis_server: RedisServer,
) -> None:
    users = make_users(40, sandboxes.webhook.url("/"), opt_out_rate=0, first=7000)
    requests = sms_requests(users, "throttled", 300)
    # Recovery at a fifth of the rate per second: from half back to full in 2.5 s of sending.
    worker = workers(redis_url=redis_server.url, rate_recovery_per_second=0.2, **LIMITS)
    retry_after = 2
    sandboxes.inject("sms", retry_after=retry_after)
    try:
        check_a_429(broker, sandboxes, worker, users, requests, retry_after)
    finally:
        sandboxes.inject("sms", retry_after=1)  # the sandbox's default, for later tests


def check_a_429(
    broker: str,
    sandboxes: SandboxStack,
    worker: WorkerProcess,
    users: list[User],
    requests: list[Any],
    retry_after: int,
) -> None:
    load(broker, worker, users, requests)
    sandboxes.wait_for(lambda got: len(got) >= 60)
    # The next SMS to this user gets one Twilio 429 (with Retry-After: 2).
    sandboxes.inject("sms", address=users[5].phone, fault=(429, 20429), times=1)

    view = wait_for_view(worker, lambda v: v["providers"]["sms"]["throttles"] >= 1)
    assert view["providers"]["sms"]["current_per_second"] <= RATE / 2  # cut in half
    assert_each_once(sandboxes, users, requests)  # the throttled one too, on its retry

    refused = [r for r in sandboxes.rejected() if r["status"] == 429]
    assert len(refused) == 1
    throttled_at = refused[0]["received_at"]
    after = [t for t in arrivals(sandboxes, "sms") if t > throttled_at]
    # Sends already on their way when the 429 was answered (one round trip on loopback) may
    # still arrive; nothing sent after it arrives before the Retry-After has passed.
    early = [t for t in after if t < throttled_at + retry_after]
    assert all(t - throttled_at < 0.1 for t in early), early
    assert len(early) <= 1
    # The bucket reopens empty at the lowered rate: the first second after it sees about
    # half the rate (climbing by 4/s), one delivery's retry among them, not a burst at the full one.
    reopened = [t for t in after if t >= throttled_at + retry_after]
    in_first_second = sum(t < reopened[0] + 1.0 for t in reopened)
    print(f"\n429: {len(early)} in flight, next after {reopened[0] - throttled_at:.3f}s, "
          f"{in_first_second} in the first second after it")  # fmt: skip
    assert in_first_second <= RATE / 2 + 6  # a full-rate bucket would let 2 * RATE through
    # And climbs back while sends succeed.
    wait_for_view(worker, lambda v: v["providers"]["sms"]["current_per_second"] == RATE)


@pytest.mark.long
def test_redis_killed_mid_run_and_restarted(
    broker: str,
    sandboxes: SandboxStack,
    workers: Callable[..., WorkerProcess],
    redis_server: RedisServer,
    tmp_path: Path,
) -> None:
    users = make_users(40, sandboxes.webhook.url("/"), opt_out_rate=0, first=8000)
    requests = webhook_requests(users, "outage", 400)
    first = workers(redis_url=redis_server.url, **LIMITS)
    second = workers(redis_url=redis_server.url, **LIMITS, data_dir=tmp_path / "second-data")
    load(broker, first, users, requests)
    sandboxes.wait_for(lambda got: len(got) >= 100)

    redis_server.kill()
    killed_at = time.time()
    sandboxes.wait_for(lambda got: len(got) >= 200)  # sent on the per-worker shares
    redis_server.start()  # the same port, empty
    restarted_at = time.time()

    assert_each_once(sandboxes, users, requests)
    times = arrivals(sandboxes)
    outage = [t for t in times if killed_at <= t < restarted_at]
    print(f"\noutage: {len(outage)} sends in {restarted_at - killed_at:.2f}s, busiest second "
          f"{busiest_second(times)}")  # fmt: skip
    # Each worker keeps to half the rate meanwhile: the pair's pace holds (plus the burst of
    # the two local buckets, which start full; one second's slack at each end).
    assert len(outage) <= RATE * (restarted_at - killed_at + 2) + RATE
    # A switch meets two full buckets at most (the one left and the one taken up).
    assert busiest_second(times) <= RATE + 2 * RATE + 2
    for worker in (first, second):
        assert worker.process is not None and worker.process.poll() is None  # alive
        view = wait_for_view(worker, lambda v: v["mode"] == "shared")
        assert view["providers"]["webhook"]["workers"] == 2  # its share was half the rate
    text = (tmp_path / "worker.log").read_text(errors="replace")
    assert text.count("Redis unreachable") == 2  # once per worker
    assert text.count("shared provider buckets resumed") == 2
    assert "Traceback" not in text
