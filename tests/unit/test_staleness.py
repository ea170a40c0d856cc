"""Which deliveries are too old to send (agents/staleness.py)."""

from __future__ import annotations

from agents.staleness import age_past_limit, max_age
from streams.deliveries import Delivery


def delivery(**fields: object) -> Delivery:
    values: dict[str, object] = {
        "delivery_id": "n:push:x",
        "notification_id": "n",
        "user_id": "u",
        "channel": "push",
        "address": "tok",
        "title": "t",
        "body": "b",
        "priority": "high",
        "platform": "ios",
        "requested_at": 1000.0,
        **fields,
    }
    return Delivery(**values)  # type: ignore[arg-type]


def test_the_shorter_of_ttl_and_category_limit_wins() -> None:
    limits = {"otp": 300.0}
    assert max_age(delivery(), limits) is None
    assert max_age(delivery(ttl_seconds=600, category="otp"), limits) == 300
    assert max_age(delivery(ttl_seconds=60, category="otp"), limits) == 60
    assert max_age(delivery(category="otp"), limits) == 300


def test_a_delivery_past_its_limit_is_stale() -> None:
    d = delivery(ttl_seconds=60)
    assert age_past_limit(d, 1060.0, {}) is None  # exactly its ttl: still sent
    assert age_past_limit(d, 1061.0, {}) == (61.0, 60)


def test_without_a_request_time_nothing_is_stale() -> None:
    assert age_past_limit(delivery(ttl_seconds=1, requested_at=0.0), 1e9, {}) is None
