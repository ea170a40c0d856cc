"""Staleness: a delivery older than its request's ``ttl_seconds``, or than its category's maximum
age (``NOTIFY_MAX_AGE_BY_CATEGORY``), is not sent when its turn comes: a one-time code found after
an outage, a retry tier or a backlog is worse than none. It gets a final ``expired`` event.

Age is counted from the request's ``created_at`` (the record's timestamp when the producer gave
none), as the delivery carries it in ``requested_at``; a delivery without one is never stale.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass

from agents.outcomes import OutcomeRouter
from config.vocabulary import EventStatus
from streams.deliveries import Delivery


def max_age(delivery: Delivery, by_category: Mapping[str, float]) -> float | None:
    """The shorter of the request's ttl and its category's limit; None: no limit."""
    limits = [
        limit
        for limit in (delivery.ttl_seconds, by_category.get(delivery.category))
        if limit is not None
    ]
    return min(limits) if limits else None


def age_past_limit(
    delivery: Delivery, now: float, by_category: Mapping[str, float]
) -> tuple[float, float] | None:
    """``(age, limit)`` when the delivery is too old to send at ``now``, else None. Pure."""
    limit = max_age(delivery, by_category)
    if limit is None or delivery.requested_at <= 0:
        return None
    age = now - delivery.requested_at
    return (age, limit) if age > limit else None


@dataclass
class Staleness:
    by_category: Mapping[str, float]
    outcomes: OutcomeRouter

    async def expired(self, delivery: Delivery) -> bool:
        """True when ``delivery`` must not be sent; its ``expired`` event is then out."""
        past = age_past_limit(delivery, time.time(), self.by_category)
        if past is None:
            return False
        age, limit = past
        await self.outcomes.publish(
            delivery, EventStatus.EXPIRED, reason=f"{age:.0f}s old, max age {limit:g}s"
        )
        return True
