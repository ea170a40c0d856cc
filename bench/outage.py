"""A provider outage, end to end: the FCM sandbox answers 503 to every push for ``outage``
seconds while Android pushes (and webhook deliveries, another provider) keep arriving, then
recovers. What did the failing provider receive, how long after recovery did the last push
arrive, what was lost or dead-lettered, were the other provider's deliveries held up?

``python -m bench.outage [--no-breaker] [--open-seconds 30] [--fallback]`` runs it on a fresh
broker and prints the figures as JSON; tests/integration/test_provider_outage.py runs the same
scenario (shorter open time) and asserts the bounds. Settings a worker does not know are
ignored, so the same module measures a build without the breaker too.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson

from bench.common import BENCH_RATE_LIMIT, log
from providers.sandboxes.stack import SandboxStack
from scripts.create_topics import create_topics
from scripts.embedded_broker import EmbeddedBroker, free_port
from scripts.worker_process import WorkerProcess, settings_env
from scripts.workload import User, device_token, produce, read_topic, setup_users, wait_for_users
from streams import topics

UNAVAILABLE = (503, "UNAVAILABLE")


@dataclass(frozen=True)
class Scenario:
    pushes: int = 2000  # Android pushes produced during the outage, evenly
    others: int = 200  # webhook deliveries produced alongside (another provider)
    users: int = 200
    outage_seconds: float = 30.0
    fallback: bool = False  # the pushes name e-mail as their fallback channel
    ttl_seconds: int | None = None


@dataclass
class Figures:
    pushes: int
    fcm_failed_calls: int  # 503s the FCM sandbox answered
    fcm_calls: int  # every request it received, the failed ones included
    pushes_delivered: int  # distinct notifications FCM accepted
    fell_back: int  # distinct notifications delivered by e-mail instead
    lost: int  # notifications delivered neither way
    duplicates: int  # deliveries beyond one per notification
    dead_lettered: int
    recovered_after_seconds: float  # recovery -> the last push (or fallback e-mail) arrived
    others_before_recovery: int  # webhook deliveries that arrived while FCM was failing
    others: int
    others_max_latency_seconds: float  # request -> webhook sandbox, worst one
    circuit_transitions: list[str] = field(default_factory=list)
    by_status: dict[str, int] = field(default_factory=dict)
    circuits_view: dict[str, Any] = field(default_factory=dict)  # the worker's /providers/circuits/


def outage_users(count: int, webhook_base: str, seed: int = 12) -> list[User]:
    rng = random.Random(seed)
    return [
        User(
            user_id=f"outage-{i:04d}",
            devices={device_token("android", rng): "android"},
            email=f"outage-{i:04d}@example.com",
            phone=f"+1556{i:07d}",
            webhook_url=f"{webhook_base.rstrip('/')}/hooks/outage-{i:04d}",
        )
        for i in range(count)
    ]


def worker_values(
    bootstrap: str, sandboxes: SandboxStack, data_dir: Path, **overrides: Any
) -> dict[str, Any]:
    return {
        "kafka_bootstrap": bootstrap,
        "broker_flavor": "tansu",
        "session_timeout_seconds": 2.0,
        "heartbeat_interval_seconds": 0.5,
        "data_dir": data_dir,
        "web_port": free_port(),
        "partitions": 4,
        "rate_limit_per_user": BENCH_RATE_LIMIT,
        **sandboxes.settings_overrides(),
        **overrides,
    }


def _request(nid: str, user: User, channel: str, scenario: Scenario) -> dict[str, Any]:
    request: dict[str, Any] = {
        "notification_id": nid,
        "user_id": user.user_id,
        "channels": [channel],
        "title": "Order shipped",
        "body": f"{nid} is on its way",
        "created_at": time.time(),
    }
    if scenario.fallback and channel == "push":
        request["fallback_channel"] = "email"
    if scenario.ttl_seconds is not None:
        request["ttl_seconds"] = scenario.ttl_seconds
    return request


async def _feed(
    bootstrap: str, users: Sequence[User], scenario: Scenario
) -> dict[str, dict[str, Any]]:
    """Produce the pushes in one batch per second of the outage, and the webhook deliveries
    alongside over its first 80 % (so that each has time to arrive before the recovery)."""
    steps = max(1, int(scenario.outage_seconds))
    other_steps = max(1, steps * 4 // 5)
    sent: dict[str, dict[str, Any]] = {}
    started = time.monotonic()
    for step in range(steps):
        batch = []
        shares = (("push", scenario.pushes, steps), ("webhook", scenario.others, other_steps))
        for kind, total, over in shares:
            for i in range(total * step // over, total * min(step + 1, over) // over):
                request = _request(f"{kind}-{i:05d}", users[i % len(users)], kind, scenario)
                sent[request["notification_id"]] = request
                batch.append(request)
        await produce(
            bootstrap,
            [(topics.REQUESTS, r["user_id"].encode(), orjson.dumps(r)) for r in batch],
        )
        await asyncio.sleep(max(0.0, started + step + 1 - time.monotonic()))
    return sent


def _read(bootstrap: str, topic: str) -> list[dict[str, Any]]:
    messages = asyncio.run(read_topic(bootstrap, topic, lambda ms: False, timeout=2.0))
    return [orjson.loads(m.value) for m in messages]


def run_outage(
    bootstrap: str,
    sandboxes: SandboxStack,
    workdir: Path,
    scenario: Scenario,
    settle_timeout: float = 120.0,
    **settings: Any,
) -> Figures:
    """One worker, its users loaded, then the outage with traffic, then recovery; returns
    once every push arrived (or ``settle_timeout`` after recovery) with the figures."""
    values = worker_values(bootstrap, sandboxes, workdir / "data", **settings)
    asyncio.run(create_topics_for(values))
    worker = WorkerProcess(settings_env(values), workdir / "worker.log").start()
    try:
        users = outage_users(scenario.users, sandboxes.webhook.url("/"))
        asyncio.run(setup_users(bootstrap, users))
        asyncio.run(wait_for_users(worker.web_url, users))
        sandboxes.clear()
        sandboxes.inject("fcm", rate=1.0, fault=UNAVAILABLE)
        log(f"fcm failing; feeding {scenario.pushes} pushes over {scenario.outage_seconds:g}s")
        sent = asyncio.run(_feed(bootstrap, users, scenario))
        sandboxes.inject("fcm", clear=True)
        recovered_at = time.time()
        log("fcm recovered")
        push_ids = {n for n in sent if n.startswith("push-")}

        def settled(records: list[dict[str, Any]]) -> bool:
            reached = {r["notification_id"] for r in records if r["sandbox"] in ("fcm", "smtp")}
            return push_ids <= reached

        try:
            sandboxes.wait_for(settled, timeout=settle_timeout)
        except TimeoutError:
            log("not every push arrived")
        time.sleep(1.0)  # late duplicates, dead letters and events
        figures = _figures(bootstrap, sandboxes, sent, push_ids, recovered_at)
        figures.circuits_view = asyncio.run(_circuits_view(worker.web_url))
        return figures
    finally:
        worker.stop()


async def _circuits_view(web_url: str) -> dict[str, Any]:
    import aiohttp

    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{web_url}/providers/circuits/") as response,
    ):
        found = await response.json() if response.status == 200 else {}
    return found if isinstance(found, dict) else {}


async def create_topics_for(values: dict[str, Any]) -> None:
    from config.settings import Settings

    await create_topics(Settings(**values))


def _figures(
    bootstrap: str,
    sandboxes: SandboxStack,
    sent: dict[str, dict[str, Any]],
    push_ids: set[str],
    recovered_at: float,
) -> Figures:
    received = [r for r in sandboxes.received() if r.get("notification_id") in sent]
    fcm_failed = [r for r in sandboxes.rejected() if r["sandbox"] == "fcm"]
    fcm_ok = [r for r in received if r["sandbox"] == "fcm"]
    mails = [r for r in received if r["sandbox"] == "smtp"]
    hooks = [r for r in received if r["sandbox"] == "webhook"]
    per_push = Counter(r["notification_id"] for r in [*fcm_ok, *mails])
    last = max((r["received_at"] for r in [*fcm_ok, *mails]), default=recovered_at)
    events = _read(bootstrap, topics.DELIVERY_EVENTS)
    circuit_topic = getattr(topics, "PROVIDER_CIRCUITS", None)  # absent from a build without
    circuits = _read(bootstrap, circuit_topic) if circuit_topic else []
    return Figures(
        pushes=len(push_ids),
        fcm_failed_calls=len(fcm_failed),
        fcm_calls=len(fcm_failed) + len(fcm_ok),
        pushes_delivered=len({r["notification_id"] for r in fcm_ok}),
        fell_back=len({r["notification_id"] for r in mails}),
        lost=len(push_ids - set(per_push)),
        duplicates=sum(per_push.values()) - len(per_push),
        dead_lettered=len(_read(bootstrap, topics.DELIVERIES_DLQ)),
        recovered_after_seconds=round(max(0.0, last - recovered_at), 2),
        others_before_recovery=sum(r["received_at"] < recovered_at for r in hooks),
        others=len({r["notification_id"] for r in hooks}),
        others_max_latency_seconds=round(
            max(
                (r["received_at"] - sent[r["notification_id"]]["created_at"] for r in hooks),
                default=0,
            ),
            2,
        ),
        circuit_transitions=[f"{c['breaker']}:{c['previous']}->{c['state']}" for c in circuits],
        by_status=dict(Counter(e["status"] for e in events if e["notification_id"] in push_ids)),
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.outage", description=__doc__)
    parser.add_argument("--no-breaker", action="store_true")
    parser.add_argument("--open-seconds", type=float, default=30.0)
    parser.add_argument("--outage", type=float, default=30.0)
    parser.add_argument("--pushes", type=int, default=2000)
    parser.add_argument("--fallback", action="store_true")
    args = parser.parse_args(argv)
    scenario = Scenario(pushes=args.pushes, outage_seconds=args.outage, fallback=args.fallback)
    with tempfile.TemporaryDirectory(prefix="bench-outage-") as tmp:
        workdir = Path(tmp)
        sandboxes = SandboxStack(workdir / "sandboxes").start()
        try:
            with EmbeddedBroker(log_path=workdir / "broker.log") as bootstrap:
                figures = run_outage(
                    bootstrap,
                    sandboxes,
                    workdir,
                    scenario,
                    breaker_enabled=not args.no_breaker,
                    breaker_open_seconds=args.open_seconds,
                )
        finally:
            sandboxes.stop()
    print(json.dumps({"scenario": asdict(scenario), "figures": asdict(figures)}, indent=2))


if __name__ == "__main__":
    main()
