"""What taking one provider token costs, in CPU, with nothing else: the per-worker bucket, the
shared Redis bucket with leases (``NOTIFY_RATE_LEASE_SECONDS``), and one Redis call per send.

This process's CPU is the worker's side (the client, the lease bookkeeping); the
redis-server's CPU is read from /proc. The rate is set far above what one process takes, so
nothing waits: the figures are the cost a send pays on its way, not a limit.

    .venv/bin/python -m bench.bucket_cost [--takes N] [--concurrency C]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from bench.procstats import cpu_seconds
from config.settings import Settings
from providers.rate_limits import ProviderRateLimits
from scripts.redis_server import RedisServer


async def take(limits: ProviderRateLimits, takes: int, concurrency: int) -> float:
    """CPU seconds of this process for ``takes`` tokens, ``concurrency`` sends at a time."""

    async def sender(count: int) -> None:
        for _ in range(count):
            async with limits.slot("webhook"):
                pass

    await sender(10)  # warm: the connection, the script's SHA
    started = time.process_time()
    await asyncio.gather(*(sender(takes // concurrency) for _ in range(concurrency)))
    spent = time.process_time() - started
    await limits.stop()
    return spent


def measure(settings: Settings, takes: int, concurrency: int) -> float:
    return asyncio.run(take(ProviderRateLimits(settings), takes, concurrency))


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.bucket_cost", description=__doc__)
    parser.add_argument("--takes", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    rate = 10_000_000.0  # webhooks per second: far above what this process takes
    rows: list[tuple[str, float, float]] = []
    local = measure(Settings(rate_webhook_per_second=rate), args.takes, args.concurrency)
    rows.append(("per-worker bucket", local, 0.0))
    with RedisServer(Path(tempfile.mkdtemp()) / "redis.log") as redis:
        assert redis.process is not None
        for name, lease in (("Redis, leased (0.05 s)", 0.05), ("Redis, a call per send", 0.0)):
            settings = Settings(
                redis_url=redis.url, rate_lease_seconds=lease, rate_webhook_per_second=rate
            )
            before = cpu_seconds(redis.process.pid)
            client = measure(settings, args.takes, args.concurrency)
            rows.append((name, client, cpu_seconds(redis.process.pid) - before))
    print(f"{args.takes:,} tokens, {args.concurrency} sends at a time")
    print(f"{'bucket':<28}{'client µs/token':>18}{'redis-server µs/token':>24}")
    for name, client, server in rows:
        print(f"{name:<28}{client * 1e6 / args.takes:>18.1f}{server * 1e6 / args.takes:>24.1f}")


if __name__ == "__main__":
    main()
