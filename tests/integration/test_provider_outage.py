"""A provider outage through the circuit breaker, and staleness: a real broker, one worker, the
FCM sandbox told to answer 503 to everything for 20 s (15 s with a fallback) over its own
HTTP API while pushes and webhook deliveries flow (bench/outage.py runs the scenario;
``python -m bench.outage`` prints the same figures for the README).

The breaker keeps the seed's window (100 calls, 50 %) and trials (10); its open time is 10 s
instead of 30 s so that the outage spans several open periods and the test ends sooner: the
bound on the calls is per open period either way.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from bench.outage import Figures, Scenario, run_outage
from config.settings import Settings
from providers.sandboxes.stack import SandboxStack
from scripts.worker_process import WorkerProcess
from scripts.workload import User, device_token, produce, setup_users, wait_for_users
from streams import topics
from tests.integration.pipeline_harness import delivery_events

pytestmark = pytest.mark.integration

SEED = Settings()
OPEN_SECONDS = 10.0
# Sends already in flight when the breaker opens were admitted while it was closed: at most one
# lane's worth (the pushes ride the normal lane).
IN_FLIGHT = SEED.deliver_concurrency_normal
RECOVERY_BOUND = 60.0  # the issue's: everything delivered within 60 s of the recovery


def opens(figures: Figures) -> int:
    return sum(t.endswith("->open") for t in figures.circuit_transitions)


def assert_calls_bounded(figures: Figures) -> None:
    """The first open period costs the window (and the sends in flight when it filled), every
    later one the trials that found the provider still failing; nothing more reaches it."""
    assert opens(figures) >= 2  # the outage outlasts an open period
    bound = SEED.breaker_window + IN_FLIGHT + SEED.breaker_half_open_calls * (opens(figures) - 1)
    assert figures.fcm_failed_calls <= bound


def test_an_outage_opens_the_breaker_and_loses_nothing(
    broker: str, sandboxes: SandboxStack, tmp_path: Path
) -> None:
    figures = run_outage(
        broker,
        sandboxes,
        tmp_path,
        Scenario(pushes=2000, others=200, outage_seconds=20.0),
        settle_timeout=RECOVERY_BOUND,
        breaker_open_seconds=OPEN_SECONDS,
    )
    print(figures)  # the figures, for the README's comparison with the run without a breaker
    assert (figures.lost, figures.duplicates, figures.dead_lettered) == (0, 0, 0)
    assert figures.pushes_delivered == 2000 and figures.fell_back == 0
    assert_calls_bounded(figures)
    assert figures.circuit_transitions[-1] == "fcm:half_open->closed"  # trials passed: closed
    view = figures.circuits_view  # the worker's web view of its breakers
    assert view["breakers"]["fcm"]["state"] == "closed" and view["breakers"]["fcm"]["refused"] > 0
    opened = [t for t in view["transitions"] if (t["breaker"], t["state"]) == ("fcm", "open")]
    assert opened == [{"breaker": "fcm", "state": "open", "count": opens(figures)}]
    # Held deliveries spent no attempt: only failures while the breaker was still closed did.
    assert figures.by_status["deferred"] > 0
    assert figures.by_status.get("retrying", 0) <= SEED.breaker_window
    # The other provider was not held up: every webhook delivery arrived during the outage.
    assert figures.others == figures.others_before_recovery == 200


@pytest.mark.long
def test_an_outage_with_a_fallback_channel_falls_back_once_each(
    broker: str, sandboxes: SandboxStack, tmp_path: Path
) -> None:
    figures = run_outage(
        broker,
        sandboxes,
        tmp_path,
        # Half the outage and of the open time of the test above: still two open periods or
        # more, and what this test is about (each push falls back once) takes 15 s less.
        Scenario(pushes=600, others=60, outage_seconds=15.0, fallback=True),
        settle_timeout=RECOVERY_BOUND,
        breaker_open_seconds=OPEN_SECONDS / 2,
    )
    print(figures)
    # Every notification arrived exactly once: by push once FCM was back, or by e-mail.
    assert (figures.lost, figures.duplicates, figures.dead_lettered) == (0, 0, 0)
    assert figures.fell_back > 0 and figures.fell_back + figures.pushes_delivered == 600
    assert figures.by_status["fell_back"] == figures.fell_back
    assert "deferred" not in figures.by_status  # a delivery that can fall back never waits
    assert_calls_bounded(figures)


def request(nid: str, user: User, created_at: float, **extra: Any) -> dict[str, Any]:
    return {
        "notification_id": nid,
        "user_id": user.user_id,
        "channels": ["push"],
        "title": "Your code",
        "body": "123456",
        "created_at": created_at,
        **extra,
    }


def final_status(worker: WorkerProcess, nid: str, timeout: float = 30.0) -> str | None:
    """The notification's status once the status table has folded a final one."""

    async def poll() -> str | None:
        deadline = time.monotonic() + timeout
        status: str | None = None
        async with aiohttp.ClientSession() as session:
            while time.monotonic() < deadline:
                async with session.get(f"{worker.web_url}/notifications/{nid}/") as response:
                    found = await response.json() if response.status == 200 else {}
                value = found.get("status")
                status = value if isinstance(value, str) else None
                if status not in (None, "pending", "accepted"):
                    return status
                await asyncio.sleep(0.2)
        return status

    return asyncio.run(poll())


def test_a_delivery_past_its_ttl_or_its_category_age_is_expired_not_sent(
    broker: str,
    sandboxes: SandboxStack,
    workers: Callable[..., WorkerProcess],
) -> None:
    worker = workers(max_age_by_category={"otp": 30})
    user = User(
        user_id="stale-1",
        devices={device_token("ios", random.Random(3)): "ios"},
        email="stale-1@example.com",
        phone="+15557000001",
        webhook_url=sandboxes.webhook.url("/hooks/stale-1"),
    )
    asyncio.run(setup_users(broker, [user]))
    asyncio.run(wait_for_users(worker.web_url, [user]))
    now = time.time()
    requests = [
        request("ttl-past", user, now - 120, ttl_seconds=60),
        request("otp-past", user, now - 60, category="otp", ttl_seconds=600),
        request("ttl-fresh", user, now, ttl_seconds=60),
    ]
    records = [(topics.REQUESTS, user.user_id.encode(), orjson.dumps(r)) for r in requests]
    asyncio.run(produce(broker, records))

    def settled(events: list[dict[str, Any]]) -> bool:
        final = {(e["notification_id"], e["status"]) for e in events}
        return {("ttl-past", "expired"), ("otp-past", "expired"), ("ttl-fresh", "sent")} <= final

    events = delivery_events(broker, settled, timeout=30)
    by_nid = {
        nid: [e["status"] for e in events if e["notification_id"] == nid and e.get("delivery_id")]
        for nid in ("ttl-past", "otp-past", "ttl-fresh")
    }
    assert by_nid == {"ttl-past": ["expired"], "otp-past": ["expired"], "ttl-fresh": ["sent"]}
    [expired] = [
        e for e in events if e["notification_id"] == "otp-past" and e["status"] == "expired"
    ]
    assert expired["reason"].endswith("max age 30s")  # the category's limit, shorter than ttl
    arrived = {r["notification_id"] for r in sandboxes.received()}
    assert "ttl-fresh" in arrived and not {"ttl-past", "otp-past"} & arrived
    assert final_status(worker, "ttl-past") == "expired"
