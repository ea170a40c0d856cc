"""The benchmark: ``python -m bench.run [all|raw|minimal|pipeline|floor|priority|storm|idle]
[options]``.

Each measured phase gets a fresh embedded broker; the provider sandboxes (no added latency)
run in this process for the whole run. Writes one JSON file and prints a table. See
bench/README.md for what each number means.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from importlib.metadata import version
from pathlib import Path
from typing import Any

import orjson

from bench import floor, idle, minimal, pipeline, priority, raw, storm, workload
from bench.common import BENCH_RATE_LIMIT, fresh_broker, log, parse_worker_env
from bench.procstats import cpu_seconds
from bench.report import ratios, table_rows
from bench.stats import format_table
from providers.sandboxes.stack import SandboxStack
from scripts.redis_server import RedisServer
from scripts.workload import make_users

SCENARIOS = ("all", "raw", "minimal", "pipeline", "floor", "priority", "storm", "idle")
# The storm drains ~240,000 deliveries (5 minutes here): its own sub-command, not part of "all".
IN_ALL = ("raw", "minimal", "pipeline", "priority")
# The full-size isolation scenario is its own sub-command: 100,000 deliveries take a while.
FULL_BACKLOG = 100_000
DEFAULT_BACKLOG = 10_000


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    parser.add_argument("scenario", nargs="?", default="all", choices=SCENARIOS)
    parser.add_argument("--requests", type=int, default=20_000, help="single-user requests")
    parser.add_argument("--users", type=int, default=2_000)
    parser.add_argument("--workers", type=int, default=1, help="worker processes per phase")
    parser.add_argument(
        "--pace",
        type=float,
        default=0.0,
        help="pipeline: requests per second offered (0: all at once); below the workers' "
        "capacity, one and two workers do the same work on a machine that is not saturated",
    )
    parser.add_argument("--bulk", type=int, default=5_000, help="campaign burst requests")
    parser.add_argument(
        "--backlog",
        type=int,
        default=None,
        help=f"low deliveries queued in the priority phase ({DEFAULT_BACKLOG:,} with 'all', "
        f"{FULL_BACKLOG:,} with 'priority')",
    )
    parser.add_argument("--trickle", type=int, default=200, help="high requests during drain")
    parser.add_argument(
        "--backlog-via",
        choices=("deliveries", "requests", "low-topic", "both"),
        default="deliveries",
    )
    parser.add_argument("--stall-timeout", type=float, default=60.0)
    parser.add_argument("--storm-via", choices=storm.VIAS, default="public")
    parser.add_argument(
        "--storm-backlog", type=int, default=100_000, help="storm: low deliveries on the lanes"
    )
    parser.add_argument(
        "--storm-low", type=int, default=50_000, help="storm: low requests in one burst"
    )
    parser.add_argument(
        "--storm-normal", type=int, default=20_000, help="storm: normal requests in one burst"
    )
    parser.add_argument(
        "--idle-seconds", type=float, default=30.0, help="idle: how long to measure"
    )
    parser.add_argument(
        "--worker-env",
        action="append",
        default=[],
        metavar="NOTIFY_NAME=VALUE",
        help="pipeline, storm and idle: a setting for their workers (repeatable), for A/B runs",
    )
    parser.add_argument(
        "--minimal-eager-handoff",
        action="store_true",
        help="the minimal agent with the app's hand-off patch (patches/eager_handoff.py)",
    )
    parser.add_argument(
        "--floor-batched",
        action="store_true",
        help="the floor agents take batches (take_events) with one status write per "
        "notification per batch, instead of one record at a time",
    )
    parser.add_argument(
        "--minimal-post",
        action="store_true",
        help="the minimal agent also POSTs every event to the webhook sandbox (aiohttp)",
    )
    parser.add_argument(
        "--redis",
        action="store_true",
        help="start a redis-server for the run and point the workers at it (NOTIFY_REDIS_URL): "
        "their provider token buckets are then shared through it; without it each worker "
        "keeps its own",
    )
    parser.add_argument("--out", type=Path, default=None, help="bench/results/<time>.json")
    args = parser.parse_args(argv)
    if args.backlog is None:
        args.backlog = FULL_BACKLOG if args.scenario == "priority" else DEFAULT_BACKLOG
    if args.out is None:
        args.out = Path("bench/results") / f"{time.strftime('%Y%m%d-%H%M%S')}.json"
    return args


def worker_env(args: argparse.Namespace) -> dict[str, str]:
    return parse_worker_env(args.worker_env)


def machine_info() -> dict[str, Any]:
    """Enough to tell runs apart; loadavg because the machine may be shared."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
        ).stdout.strip()
    except OSError:
        commit = ""
    return {
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "faust_streaming": version("faust-streaming"),
        "mode_streaming": version("mode-streaming"),
        "aiokafka": version("aiokafka"),
        "commit": commit,
        "loadavg_at_start": os.getloadavg(),
    }


def run_phases(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    if not args.redis:
        return _run_phases(args, workdir, None)
    # The workers inherit this process's environment (scripts/worker_process.py).
    with RedisServer(workdir / "redis.log") as redis:
        os.environ["NOTIFY_REDIS_URL"] = redis.url
        log(f"redis-server at {redis.url}")
        try:
            return _run_phases(args, workdir, redis)
        finally:
            del os.environ["NOTIFY_REDIS_URL"]


def _run_phases(
    args: argparse.Namespace, workdir: Path, redis: RedisServer | None
) -> dict[str, Any]:
    sandboxes = SandboxStack(workdir / "sandboxes").start()
    try:
        users = make_users(args.users, sandboxes.webhook.url("/"))
        requests = workload.workload(users, args.requests, args.bulk)
        # The raw and minimal phases move the same bytes the pipeline receives (created_at
        # stamped now: the same size it will have when the pipeline phase stamps it).
        stamped = [{**r, "created_at": time.time()} for r in requests]
        records = [(r["user_id"].encode(), orjson.dumps(r)) for r in stamped]
        results: dict[str, Any] = {}
        wanted = {args.scenario} if args.scenario != "all" else set(IN_ALL)
        if "raw" in wanted:
            with fresh_broker(workdir, "raw") as broker:
                log(f"raw aiokafka: {len(records):,} records")
                results["raw"] = asyncio.run(
                    raw.produce_consume(broker.bootstrap, records, 8, broker.pid)
                )
        if "minimal" in wanted:
            with fresh_broker(workdir, "minimal") as broker:
                results["minimal"] = minimal.run(
                    broker,
                    records,
                    args.workers,
                    workdir,
                    args.stall_timeout,
                    eager_handoff=args.minimal_eager_handoff,
                    post_url=sandboxes.webhook.url("/bench-minimal") if args.minimal_post else "",
                )
        if "pipeline" in wanted:
            with fresh_broker(workdir, "pipeline") as broker:
                redis_cpu = redis_cpu_seconds(redis)
                results["pipeline"] = pipeline.run(
                    broker,
                    sandboxes,
                    users,
                    requests,
                    args.workers,
                    workdir,
                    args.stall_timeout,
                    worker_env(args),
                    args.pace,
                )
                if redis is not None:
                    # The buckets' other half of the cost: the server running the Lua script.
                    results["pipeline"]["redis_cpu_seconds"] = redis_cpu_seconds(redis) - redis_cpu
        if "floor" in wanted:
            with fresh_broker(workdir, "floor") as broker:
                results["floor"] = floor.run(
                    broker,
                    sandboxes,
                    users,
                    requests,
                    args.workers,
                    workdir,
                    args.stall_timeout,
                    worker_env(args),
                    batched=args.floor_batched,
                )
        if "priority" in wanted:
            expected_rate = results.get("pipeline", {}).get("deliveries_per_second") or 500.0
            vias = ("deliveries", "requests") if args.backlog_via == "both" else (args.backlog_via,)
            for via in vias:
                with fresh_broker(workdir, f"priority-{via}") as broker:
                    results[f"priority_{via}"] = priority.run(
                        broker,
                        sandboxes,
                        users,
                        args.backlog,
                        args.trickle,
                        args.workers,
                        workdir,
                        via=via,
                        expected_rate=expected_rate,
                        stall_timeout=args.stall_timeout,
                    )
                sandboxes.clear()
        if "idle" in wanted:
            with fresh_broker(workdir, "idle") as broker:
                results["idle"] = idle.run(
                    broker, sandboxes, users, workdir, args.idle_seconds, worker_env(args)
                )
        if "storm" in wanted:
            with fresh_broker(workdir, "storm") as broker:
                results["storm"] = storm.run(
                    broker,
                    sandboxes,
                    users,
                    {
                        "backlog": args.storm_backlog,
                        "low_requests": args.storm_low,
                        "normal_requests": args.storm_normal,
                    },
                    args.trickle,
                    args.workers,
                    workdir,
                    via=args.storm_via,
                    stall_timeout=args.stall_timeout,
                    worker_env=worker_env(args),
                )
        return results
    finally:
        sandboxes.stop()


def redis_cpu_seconds(redis: RedisServer | None) -> float:
    if redis is None or redis.process is None:
        return 0.0
    return cpu_seconds(redis.process.pid)


def _json_default(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _clean(value: Any) -> Any:
    """NaN is not JSON: an unmeasurable number is written as null."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="notify-bench-"))
    log(f"work directory (logs, tables): {workdir}")
    info = machine_info()
    started = time.time()
    results = run_phases(args, workdir)
    info["loadavg_at_end"] = os.getloadavg()
    r = ratios(results)
    document = {
        "machine": info,
        "parameters": {
            **{k: v for k, v in vars(args).items() if k != "out"},
            "partitions": 8,
            "rate_limit_per_user": BENCH_RATE_LIMIT,
            "sandbox_latency": "none (zero-latency sandboxes)",
            "provider_buckets": "shared in Redis" if args.redis else "per worker",
            "rate_lease_seconds": os.environ.get("NOTIFY_RATE_LEASE_SECONDS", "default"),
            "workdir": str(workdir),
        },
        "duration_seconds": time.time() - started,
        "results": results,
        "ratios": r,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(_clean(document), indent=2, default=_json_default) + "\n")
    print(format_table(table_rows(results, r), title=f"notify-streams benchmark ({args.scenario})"))
    print(
        f"\nNOTIFY_RATE_LIMIT_PER_USER={BENCH_RATE_LIMIT:,} so that nothing is rate-limited "
        f"(the 'rate_limited rejections' rows count it); sandboxes without added latency; "
        f"{args.workers} worker(s); {info['cpu_count']} CPUs, load average "
        f"{info['loadavg_at_start'][0]:.2f} at start / {info['loadavg_at_end'][0]:.2f} at end"
    )
    print(f"results: {args.out}")


if __name__ == "__main__":
    main()
