"""What one provider send costs the worker in CPU, per provider client, with nothing else.

The sandboxes run in their own process (``python -m providers.sandboxes.stack``), so this
process's CPU time is the client side only: payload building, the protocol (HTTP/2 + TLS for
APNs, HTTP v1 for FCM (firebase-admin's encoding, aiohttp), SMTP, HTTP/1.1 for SMS and webhooks) and
response parsing. It bounds the deliver stage from below: no pipeline shape can deliver faster
per core than its provider client sends.

    .venv/bin/python -m bench.provider_cost [--sends N] [--concurrency C]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import subprocess
import sys
import time
from typing import Any

from config.settings import Settings
from providers.base import OutboundMessage
from providers.registry import ProviderRegistry, configured_providers
from scripts.workload import device_token

EXPORT = re.compile(r"^export (NOTIFY_\w+)='(.*)'$")


def start_sandboxes() -> tuple[subprocess.Popen[str], dict[str, str]]:
    process = subprocess.Popen(
        [sys.executable, "-m", "providers.sandboxes.stack"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    env: dict[str, str] = {}
    for line in process.stdout:
        match = EXPORT.match(line.strip())
        if match:
            env[match.group(1)] = match.group(2)
        if line.startswith("# received messages"):
            return process, env
    raise RuntimeError("the sandbox stack exited before printing its settings")


def message(provider: str, i: int, settings: Settings, rng: random.Random) -> OutboundMessage:
    channel, platform, address = {
        "apns": ("push", "ios", device_token("ios", rng)),
        "fcm": ("push", "android", device_token("android", rng)),
        "smtp": ("email", None, f"user-{i}@example.com"),
        "sms": ("sms", None, f"+1555{1_000_000 + i:07d}"),
        "webhook": ("webhook", None, settings.inapp_url),
    }[provider]
    return OutboundMessage(
        delivery_id=f"cost-{provider}-{i}",
        notification_id=f"cost-{i}",
        user_id=f"user-{i}",
        channel=channel,
        address=address,
        title="Your order shipped",
        body="Order 1234 is on its way and arrives on Tuesday.",
        platform=platform,
        data={"order": "1234"},
    )


async def measure(settings: Settings, sends: int, concurrency: int) -> dict[str, Any]:
    registry = ProviderRegistry(configured_providers(settings))
    await registry.start()
    rng = random.Random(7)
    results: dict[str, Any] = {}
    try:
        for name in sorted(registry.providers):
            slots = asyncio.Semaphore(concurrency)

            async def one(i: int, provider: str = name, slots: asyncio.Semaphore = slots) -> None:
                async with slots:
                    await registry.send(provider, message(provider, i, settings, rng))

            await one(-1)  # connect, handshake, token: not part of the steady state
            cpu, wall = time.process_time(), time.perf_counter()
            await asyncio.gather(*(one(i) for i in range(sends)))
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            results[name] = {
                "sends": sends,
                "client_cpu_us_per_send": 1e6 * cpu / sends,
                "sends_per_second": sends / wall,
            }
    finally:
        await registry.stop()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sends", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    process, env = start_sandboxes()
    try:
        os.environ.update(env)
        settings = Settings()
        results = asyncio.run(measure(settings, args.sends, args.concurrency))
    finally:
        process.terminate()
        process.wait(10)
    print(f"{'provider':<10}{'client CPU per send':>22}{'sends/s':>12}")
    for name, row in results.items():
        print(
            f"{name:<10}{row['client_cpu_us_per_send']:>19,.0f} µs{row['sends_per_second']:>12,.0f}"
        )


if __name__ == "__main__":
    main()
