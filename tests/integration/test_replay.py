"""Replay after an outage (scripts/replay.py), end to end: a real broker, a worker with short
retry schedules, the webhook sandbox failing every request for a while."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import orjson
import pytest

from config.settings import get_settings
from providers.sandboxes.stack import SandboxStack
from scripts import replay
from scripts.worker_process import WorkerProcess
from scripts.workload import json_records, make_users, produce, setup_users, wait_for_users
from streams import topics
from tests.integration.pipeline_harness import delivery_events, sandbox_address

pytestmark = pytest.mark.integration

SCHEDULE = [0.2, 0.4]  # two retries, then the dead-letter topic


def requests(prefix: str, users: list[Any], **extra: Any) -> list[dict[str, Any]]:
    return [
        {
            "notification_id": f"{prefix}-{i}",
            "user_id": user.user_id,
            "channels": ["webhook", "email"],
            "title": "Order shipped",
            "body": f"order {i} is on its way",
            **extra,
        }
        for i, user in enumerate(users)
    ]


def run_replay(
    capsys: pytest.CaptureFixture[str], *args: str
) -> tuple[list[dict[str, Any]], list[str]]:
    """The command's JSON lines and its summary lines."""
    get_settings.cache_clear()
    assert replay.main([*args, "--json"]) == 0
    out = capsys.readouterr().out.splitlines()
    return [orjson.loads(line) for line in out if line.startswith("{")], [
        line for line in out if line.startswith("#")
    ]


def verdicts(rows: list[dict[str, Any]]) -> dict[str, str]:
    return {row["subject"]: row["verdict"] for row in rows}


def test_a_replay_after_an_outage_sends_each_failed_delivery_once(
    broker: str,
    sandboxes: SandboxStack,
    workers: Callable[..., WorkerProcess],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    worker = workers(retry_webhook=SCHEDULE, retry_email=SCHEDULE)
    users = make_users(8, sandboxes.webhook.url(""), opt_out_rate=0.0, first=70_000)
    asyncio.run(setup_users(broker, users))
    asyncio.run(wait_for_users(worker.web_url, users))
    since = time.time()

    # Before the outage: everything goes out.
    before = requests("before", users)
    asyncio.run(produce(broker, json_records(topics.REQUESTS, before)))
    sandboxes.wait_for(lambda rs: len(rs) == 2 * len(users), timeout=60)

    # The outage: every webhook answers 503; one address is dead for good (410), and one
    # request was already past its ttl when it was sent.
    sandboxes.inject("webhook", rate=1.0, fault=503, seed=1)
    dead = users[0]
    sandboxes.inject("webhook", address=sandbox_address(dead.webhook_url), fault=410)
    during = requests("during", users)
    stale = {**requests("stale", users[1:2])[0], "created_at": time.time() - 120, "ttl_seconds": 60}
    asyncio.run(produce(broker, json_records(topics.REQUESTS, [*during, stale])))

    def webhook_failures(events: list[dict[str, Any]]) -> int:
        return sum(e["status"] == "failed" and e.get("channel") == "webhook" for e in events)

    delivery_events(broker, lambda evs: webhook_failures(evs) == len(during) + 1, timeout=60)
    sandboxes.inject("webhook", clear=True)  # the provider is back
    monkeypatch.setenv("NOTIFY_KAFKA_BOOTSTRAP", broker)
    window = ["--topic", topics.REQUESTS, "--since", str(since)]

    planned, _ = run_replay(capsys, *window, "--dry-run")
    expected = {r["notification_id"]: "sent" for r in before}
    expected |= {r["notification_id"]: "would-send" for r in during}
    expected |= {"during-0": "suppressed", "stale-0": "expired"}
    assert verdicts(planned) == expected
    # Its e-mail went out: only the webhook of each would go again.
    assert {len(row["deliveries"]) for row in planned if row["verdict"] == "would-send"} == {1}

    _, summary = run_replay(capsys, *window, "--rate", "200")
    assert f"re-sent {len(during) - 1} of {len(during) - 1}" in summary[-1]

    # Wait until the replay's copies are resolved and delivered: each re-sent request's
    # webhook reports a send and its e-mail a suppressed duplicate (the ledger held it).
    replayed = {r["notification_id"] for r in during[1:]}

    def settled(events: list[dict[str, Any]]) -> bool:
        sent = {e["notification_id"] for e in events if e["status"] == "sent"}
        suppressed = {e["notification_id"] for e in events if e["status"] == "duplicate_suppressed"}
        webhook_sent = {
            e["notification_id"]
            for e in events
            if e["status"] == "sent" and e.get("channel") == "webhook"
        }
        return replayed <= webhook_sent and replayed <= suppressed and replayed <= sent

    delivery_events(broker, settled, timeout=60)
    arrived = Counter((r["notification_id"], r["address"]) for r in sandboxes.received())
    assert set(arrived.values()) == {1}, "something arrived twice"
    for request in during[1:]:
        user = next(u for u in users if u.user_id == request["user_id"])
        nid = request["notification_id"]
        assert arrived[(nid, sandbox_address(user.webhook_url))] == 1
        assert arrived[(nid, user.email)] == 1
    assert not [a for a in arrived if a[0] in ("during-0", "stale-0") and "/hooks/" in a[1]]

    # A second replay of the window has nothing left to send.
    again, summary = run_replay(capsys, *window, "--rate", "200")
    assert "would-send" not in {row["verdict"] for row in again}
    assert "re-sent 0 of 0" in summary[-1]
    # Nor has the dead-letter topic: the dead address was suppressed, not dead-lettered, and
    # the stale request's deliveries expired at send time (agents/staleness.py), never failed.
    letters, summary = run_replay(capsys, "--topic", topics.DELIVERIES_DLQ, "--since", str(since))
    assert Counter(row["verdict"] for row in letters) == {"sent": len(during) - 1}
    assert "re-sent 0 of 0" in summary[-1]
