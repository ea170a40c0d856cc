"""What the operator page shows, built from the worker's own metrics registry.

The page reads the same series Prometheus scrapes (agents/metrics.py and the scrape-time
collectors), so it can never disagree with a dashboard: lanes (lag per topic from committed
offsets and high watermarks, sends in flight per priority, sent/delivered/failed totals the page
turns into rates between two refreshes), circuit breakers, hot keys, dead letters (totals and
the newest few with their reasons) and campaigns. Pure apart from ``registry.collect()``; a
reason is masked like a log line (config/logging.py), since an exception's text may quote data.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

from prometheus_client.registry import CollectorRegistry

from agents.counters import RecentLetter
from config.logging import mask
from config.vocabulary import Priority

LANE_PREFIX = "deliveries."
# deliveries.<channel>.<priority> are the lanes; deliveries.retry.<wait> and the DLQ are not.
PRIORITIES = frozenset(Priority)


def samples(registry: CollectorRegistry) -> dict[str, list[tuple[dict[str, str], float]]]:
    """Every sample by name (``_total`` kept on counters), labels and value."""
    found: dict[str, list[tuple[dict[str, str], float]]] = defaultdict(list)
    for family in registry.collect():
        for sample in family.samples:
            found[sample.name].append((dict(sample.labels), float(sample.value)))
    return found


def _sum_by(rows: Iterable[tuple[dict[str, str], float]], *labels: str) -> dict[str, float]:
    out: dict[str, float] = defaultdict(float)
    for found, value in rows:
        out["/".join(found.get(label, "") for label in labels)] += value
    return dict(out)


def lanes(found: Mapping[str, list[tuple[dict[str, str], float]]]) -> list[dict[str, Any]]:
    """One row per delivery lane topic this worker consumes: lag and partitions owned."""
    lag: dict[str, float] = defaultdict(float)
    partitions: dict[str, int] = defaultdict(int)
    for found_labels, value in found.get("notify_kafka_consumer_lag_messages", []):
        topic = found_labels.get("topic", "")
        if topic.startswith(LANE_PREFIX) and topic.rsplit(".", 1)[-1] in PRIORITIES:
            lag[topic] += value
            partitions[topic] += 1
    return [
        {"topic": topic, "lag": int(lag[topic]), "partitions": partitions[topic]}
        for topic in sorted(lag)
    ]


def state(
    registry: CollectorRegistry, recent: Iterable[RecentLetter], now: float
) -> dict[str, Any]:
    found = samples(registry)
    in_flight = _sum_by(found.get("notify_lane_sends_in_flight", []), "priority")
    breakers = [
        {"breaker": labels.get("breaker", ""), "state": labels.get("state", "")}
        for labels, value in found.get("notify_circuit_breaker_state", [])
        if value == 1
    ]
    request_lag = _sum_by(
        (
            (labels, value)
            for labels, value in found.get("notify_kafka_consumer_lag_messages", [])
            if labels.get("topic", "").startswith("notification-requests")
        ),
        "topic",
    )
    return {
        "at": now,
        "lanes": lanes(found),
        "in_flight": {k: int(v) for k, v in sorted(in_flight.items())},
        "requests_lag": {k: int(v) for k, v in sorted(request_lag.items())},
        "totals": {
            "requests": _total(found, "notify_requests_total"),
            "sent": _total(found, "notify_notifications_sent_total"),
            "delivered": _total(found, "notify_notifications_delivered_total"),
            "failed": _total(found, "notify_notifications_failed_total"),
            "retried": _total(found, "notify_retries_total"),
        },
        "delivered_by": {
            k: int(v)
            for k, v in sorted(
                _sum_by(
                    found.get("notify_notifications_delivered_total", []), "channel", "provider"
                ).items()
            )
        },
        "breakers": sorted(breakers, key=lambda b: b["breaker"]),
        "hot_keys": {
            k: int(v)
            for k, v in _sum_by(found.get("notify_hot_keys_flagged_total", []), "topic").items()
        },
        "dead_letters": {
            k: int(v)
            for k, v in sorted(
                _sum_by(found.get("notify_dead_letters_total", []), "topic", "reason").items()
            )
        },
        "recent_dead_letters": [
            {"at": r.at, "topic": r.topic, "source": r.source, "reason": mask(r.reason)}
            for r in reversed(list(recent))
        ],
        "campaigns": _campaigns(found),
    }


def _total(found: Mapping[str, list[tuple[dict[str, str], float]]], name: str) -> int:
    return int(sum(value for _, value in found.get(name, [])))


def _campaigns(found: Mapping[str, list[tuple[dict[str, str], float]]]) -> list[dict[str, Any]]:
    by_campaign: dict[str, dict[str, int]] = defaultdict(dict)
    for labels, value in found.get("notify_campaign_users", []):
        by_campaign[labels.get("campaign", "")][labels.get("stage", "")] = int(value)
    for labels, value in found.get("notify_campaign_notifications", []):
        by_campaign[labels.get("campaign", "")][labels.get("outcome", "")] = int(value)
    return [{"campaign": c, **counts} for c, counts in sorted(by_campaign.items())]
