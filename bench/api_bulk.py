"""Requests/s into one worker through ``POST /v1/notifications/bulk``, next to the same
requests produced straight to ``notification-requests``.

    .venv/bin/python -m bench.api_bulk [--requests 20000] [--batch 500] [--concurrency 4]

Each path gets a fresh broker and one worker with an API key configured (so the key check is
paid), the users loaded first. Ingest is until every request is acknowledged (the API's 207,
the producer's acks); end to end is until the sandboxes hold every delivery. The worker's CPU
is counted over the whole phase: on the API path it serves the HTTP calls and runs the
pipeline on the same two cores, which is the point of measuring it there.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiohttp

from api.keys import new_key
from bench import workload
from bench.common import fresh_broker, log, produce_json, wait_for_count
from bench.pipeline import received_count, running_pipeline
from bench.procstats import CpuMeter
from bench.stats import rate
from bench.workload import expected_deliveries
from providers.sandboxes.stack import SandboxStack
from scripts.workload import User, make_users
from streams import topics


async def post_bulk(
    url: str, token: str, requests: Sequence[dict[str, Any]], batch: int, concurrency: int
) -> tuple[float, float, int]:
    """(started, last answer, requests accepted)."""
    batches = [requests[i : i + batch] for i in range(0, len(requests), batch)]
    queue: asyncio.Queue[Sequence[dict[str, Any]]] = asyncio.Queue()
    for b in batches:
        queue.put_nowait(b)
    accepted = 0
    headers = {"Authorization": f"Bearer {token}"}

    async def poster(session: aiohttp.ClientSession) -> None:
        nonlocal accepted
        while not queue.empty():
            items = queue.get_nowait()
            now = time.time()
            body = [{**r, "created_at": now} for r in items]
            async with session.post(
                f"{url}/v1/notifications/bulk", json={"notifications": body}, headers=headers
            ) as answer:
                result = await answer.json()
                if answer.status != 207:
                    raise RuntimeError(f"bulk answered {answer.status}: {result}")
                accepted += result["accepted"]

    started = time.time()
    async with aiohttp.ClientSession() as session:
        await asyncio.gather(*(poster(session) for _ in range(concurrency)))
    return started, time.time(), accepted


def phase(
    path: str,
    args: argparse.Namespace,
    sandboxes: SandboxStack,
    users: Sequence[User],
    requests: list[dict[str, Any]],
    workdir: Path,
) -> dict[str, Any]:
    token, sha256 = new_key("bench")
    keys = json.dumps([{"id": "bench", "sha256": sha256, "scopes": ["send", "read"],
                        "rate_per_second": 1e6}])  # fmt: skip
    by_user = {u.user_id: u for u in users}
    expected = expected_deliveries(
        requests, by_user, str(sandboxes.settings_overrides()["inapp_url"])
    )
    with (
        fresh_broker(workdir, f"api-{path}") as broker,
        running_pipeline(
            broker,
            sandboxes,
            users,
            1,
            workdir,
            f"api-{path}",
            {"NOTIFY_API_KEYS": keys},
            {"Authorization": f"Bearer {token}"},
        ) as procs,
    ):
        meter = CpuMeter([p.pid for p in procs]).start()
        log(f"{path}: {len(requests):,} requests -> {expected:,} deliveries")
        if path == "bulk":
            started, acked, accepted = asyncio.run(
                post_bulk(procs[0].web_url, token, requests, args.batch, args.concurrency)
            )
        else:
            started, acked = asyncio.run(
                produce_json(broker.bootstrap, topics.REQUESTS, requests, stamp="created_at")
            )
            accepted = len(requests)
        complete = wait_for_count(lambda: received_count(sandboxes), expected, 60.0)
        finished = time.time()
        cpu = meter.stop()
    sandboxes.clear()
    return {
        "requests": len(requests),
        "accepted": accepted,
        "complete": complete,
        "ingest_seconds": acked - started,
        "ingest_requests_per_second": rate(accepted, acked - started),
        "end_to_end_requests_per_second": rate(accepted, finished - started),
        "worker_cpu_ms_per_request": cpu * 1000 / max(accepted, 1),
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.api_bulk", description=__doc__)
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--users", type=int, default=2_000)
    parser.add_argument("--batch", type=int, default=500, help="requests per bulk call")
    parser.add_argument("--concurrency", type=int, default=4, help="bulk calls in flight")
    parser.add_argument("--out", type=Path, default=Path("bench-api-bulk.json"))
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="notify-api-bench-") as tmp:
        workdir = Path(tmp)
        sandboxes = SandboxStack(workdir / "sandboxes").start()
        try:
            users = make_users(args.users, sandboxes.webhook.url("/"))
            requests = workload.mixed_requests(users, args.requests)
            results = {
                path: phase(path, args, sandboxes, users, [dict(r) for r in requests], workdir)
                for path in ("topic", "bulk")
            }
        finally:
            sandboxes.stop()
    args.out.write_text(json.dumps(results, indent=2))
    for path, result in results.items():
        print(
            f"{path:>5}: ingest {result['ingest_requests_per_second']:8,.0f} req/s, end to end "
            f"{result['end_to_end_requests_per_second']:7,.0f} req/s, worker CPU "
            f"{result['worker_cpu_ms_per_request']:.2f} ms/request, complete {result['complete']}"
        )


if __name__ == "__main__":
    main()
