"""What the operator page is told (agents/operator_state.py), from a real metrics registry."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from agents.counters import RecentLetter
from agents.metrics import Metrics
from agents.operator_state import state
from streams.deliveries import Delivery


class Lag(Collector):
    def collect(self) -> Iterator[Metric]:
        lag = GaugeMetricFamily(
            "notify_kafka_consumer_lag_messages", "", labels=["topic", "partition"]
        )
        lag.add_metric(["deliveries.push.high", "0"], 3)
        lag.add_metric(["deliveries.push.high", "1"], 4)
        lag.add_metric(["deliveries.retry.5s", "0"], 9)  # a retry tier, not a lane
        lag.add_metric(["notification-requests", "0"], 2)
        yield lag
        breaker = GaugeMetricFamily("notify_circuit_breaker_state", "", labels=["breaker", "state"])
        for name, state_name in (("fcm", "open"), ("apns", "closed")):
            for one in ("closed", "open", "half_open"):
                breaker.add_metric([name, one], 1.0 if one == state_name else 0.0)
        yield breaker


def test_the_page_state_sums_lanes_and_lists_what_is_open_and_failing() -> None:
    metrics = Metrics({"push": {"apns": 0.01}})
    metrics.registry.register(Lag())
    d = Delivery("n1:push:aa", "n1", "u1", "push", "tok", "t", "b", "high", platform="ios")
    for _ in range(5):
        metrics.provider_answered("push", "apns", 0.01)
        metrics.delivered_by(d, "apns", None, 100.0)
    metrics.watch_in_flight("high", lambda: 2)
    secret = RecentLetter(50.0, "deliveries.dlq", "deliveries.push.high:0:7", "bad a@example.com")

    shown = state(metrics.registry, [secret], 123.0)

    assert shown["lanes"] == [{"topic": "deliveries.push.high", "lag": 7, "partitions": 2}]
    assert shown["requests_lag"] == {"notification-requests": 2}
    assert shown["in_flight"] == {"high": 2}
    assert (shown["totals"]["sent"], shown["totals"]["delivered"]) == (5, 5)
    assert shown["delivered_by"] == {"push/apns": 5}
    assert shown["breakers"] == [
        {"breaker": "apns", "state": "closed"},
        {"breaker": "fcm", "state": "open"},
    ]
    [letter] = shown["recent_dead_letters"]
    assert letter["source"] == "deliveries.push.high:0:7"
    assert "a@example.com" not in letter["reason"]  # masked like a log line
