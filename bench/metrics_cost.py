"""What counting costs per delivery, with nothing else: the metrics calls (agents/metrics.py)
that one delivery and its share of a request make on the hot path, timed in a loop, and one
scrape of the registry they fill. The pipeline benchmark's CPU per delivery is too noisy on a
shared machine to show a few microseconds; this isolates them.

    .venv/bin/python -m bench.metrics_cost [--deliveries N]
"""

from __future__ import annotations

import argparse
import time

from prometheus_client import generate_latest

from agents.metrics import Metrics
from config.settings import Settings
from providers.base import TransientError
from streams.deliveries import Delivery

# The bench's mix: 1-3 channels per request, so about two deliveries per request.
DELIVERIES_PER_REQUEST = 2


def deliveries() -> list[Delivery]:
    channels = [("push", "ios"), ("push", "android"), ("email", None), ("sms", None)]
    channels += [("webhook", None), ("in_app", None)]
    return [
        Delivery(
            delivery_id=f"n{i}:{channel}:{i}",
            notification_id=f"n{i}",
            user_id=f"user-{i}",
            channel=channel,
            address="a",
            title="t",
            body="b",
            priority=("high", "normal", "low")[i % 3],
            platform=platform,
            requested_at=time.time() - 0.5,
        )
        for i, (channel, platform) in enumerate(channels)
    ]


def one_delivery(metrics: Metrics, delivery: Delivery, provider: str, request_share: bool) -> None:
    """Every call the path of one delivery makes, with the clock reads agents/deliver.py adds."""
    now = time.time()
    metrics.taken(f"deliveries.{delivery.channel}.{delivery.priority}", now - 0.01, now)
    started = time.perf_counter()
    metrics.provider_answered(delivery.channel, provider, time.perf_counter() - started)
    metrics.delivered_by(delivery, provider, None, now)
    metrics.event_folded(delivery.channel, "sent")  # the status agent, for its sent event
    if request_share:  # once per request: the intake's decision, fan-out, accepted event
        metrics.request_resolved(delivery.priority, "accepted", now - 0.1, now)
        metrics.fanned_out([delivery] * DELIVERIES_PER_REQUEST)
        metrics.event_folded(None, "accepted")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deliveries", type=int, default=200_000)
    args = parser.parse_args()
    metrics = Metrics(Settings().prices_usd)
    sample = deliveries()
    providers = {"push": "apns", "email": "smtp", "sms": "sms", "webhook": "webhook"}
    providers["in_app"] = "webhook"
    plan = [(d, "fcm" if d.platform == "android" else providers[d.channel]) for d in sample]
    error = TransientError("webhook", "http_503")
    for delivery, provider in plan:  # every label set made once, as in a running worker
        one_delivery(metrics, delivery, provider, True)
        metrics.failed_by(delivery.channel, provider, error)
    n = args.deliveries
    start = time.process_time()
    for i in range(n):
        delivery, provider = plan[i % len(plan)]
        one_delivery(metrics, delivery, provider, i % DELIVERIES_PER_REQUEST == 0)
    per_delivery = (time.process_time() - start) / n
    start = time.process_time()
    scrapes = 200
    for _ in range(scrapes):
        body = generate_latest(metrics.registry)
    per_scrape = (time.process_time() - start) / scrapes
    print(f"metrics calls per delivery: {per_delivery * 1e6:.2f} us CPU ({n:,} deliveries)")
    lines = len(body.splitlines())
    print(
        f"one scrape of the declared metrics: {per_scrape * 1e3:.2f} ms CPU, "
        f"{len(body):,} bytes, {lines:,} lines"
    )


if __name__ == "__main__":
    main()
