"""The benchmark's workload: who gets what, and how many deliveries that must produce.

Built on scripts.workload (the users and the mixed requests the demo and the tests use);
``created_at`` / ``requested_at`` are left at 0 here and stamped as each record is sent.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from scripts.workload import RequestMix, User
from streams import topics
from streams.deliveries import Delivery, delivery_id_for

# Share of the users a campaign targets: a slice, so those users' per-user state (dedup keys,
# delivery ledger) grows as it does for a real campaign's audience.
CAMPAIGN_SLICE = 0.25


def mixed_requests(users: Sequence[User], count: int) -> list[dict[str, Any]]:
    """Single-user requests, channels and priorities mixed (scripts.workload.RequestMix)."""
    return RequestMix(users, prefix="mix").make(count)


def campaign_requests(users: Sequence[User], count: int, seed: int = 5) -> list[dict[str, Any]]:
    """A campaign burst: low priority, push + in-app, over a slice of the users."""
    audience = users[: max(1, int(len(users) * CAMPAIGN_SLICE))]
    rng = random.Random(seed)
    return [
        {
            "notification_id": f"campaign-{i:06d}",
            "user_id": audience[i % len(audience)].user_id,
            "category": "marketing",
            "priority": "low",
            "channels": ["push", "in_app"],
            "title": "Spring sale",
            "body": "Up to {discount}% off this week",
            "data": {"discount": str(rng.choice([10, 20, 30]))},
            "created_at": 0.0,  # stamped at send time
        }
        for i in range(count)
    ]


def workload(users: Sequence[User], requests: int, bulk: int) -> list[dict[str, Any]]:
    """The produce order: half the mix, the campaign burst, the other half. Requests behind
    the burst queue behind it in the intake agent, as they would in production."""
    mix = mixed_requests(users, requests)
    half = len(mix) // 2
    return [*mix[:half], *campaign_requests(users, bulk), *mix[half:]]


def expected_deliveries(
    requests: Sequence[Mapping[str, Any]], users: Mapping[str, User], inapp_url: str
) -> int:
    """Deliveries the users' preferences and addresses allow (the rate limit is out of play)."""
    return sum(deliveries_of(r, users[r["user_id"]], inapp_url) for r in requests)


def deliveries_of(request: Mapping[str, Any], user: User, inapp_url: str) -> int:
    """The deliveries one request makes: one per address of each channel its user allows."""
    return sum(len(user.addresses(channel, inapp_url)) for channel in request["channels"])


BACKLOG_CHANNELS = ("in_app", "webhook")
# Rotated over the high-priority requests: in_app shares the webhook provider with the backlog,
# push and email do not, so the latency shows whether the shared client is the choke point.
HIGH_CHANNELS = (("push",), ("in_app",), ("email",))


def backlog_deliveries(users: Sequence[User], count: int, inapp_url: str) -> list[dict[str, Any]]:
    """``count`` low-priority delivery records in the shape ``streams.deliveries`` parses."""
    webhook_users = [u for u in users if "webhook" not in u.disabled_channels] or list(users)
    out = []
    for i in range(count):
        channel = BACKLOG_CHANNELS[i % 2]
        pool = users if channel == "in_app" else webhook_users
        user = pool[i % len(pool)]
        address = inapp_url if channel == "in_app" else user.webhook_url
        notification_id = f"backlog-{i:06d}"
        delivery = Delivery(
            delivery_id=delivery_id_for(notification_id, channel, address),
            notification_id=notification_id,
            user_id=user.user_id,
            channel=channel,
            address=address,
            title="Weekly digest",
            body="Here is what you missed",
            priority="low",
            category="digest",
            requested_at=0.0,  # stamped at send time
        )
        # Through to_json: exactly the wire shape the intake agent would have produced.
        record = orjson.loads(delivery.to_json())
        out.append({**record, "_topic": topics.delivery_topic(channel, "low")})
    return out


def _digest(notification_id: str, user: User) -> dict[str, Any]:
    return {
        "notification_id": notification_id,
        "user_id": user.user_id,
        "category": "digest",
        "priority": "low",
        "channels": list(BACKLOG_CHANNELS),
        "title": "Weekly digest",
        "body": "Here is what you missed",
        "created_at": 0.0,
    }


def backlog_requests(
    users: Sequence[User], deliveries: int, inapp_url: str
) -> tuple[list[dict[str, Any]], int]:
    """Low-priority in_app + webhook requests, as many as it takes to reach ``deliveries``."""
    by_user = {u.user_id: u for u in users}
    out: list[dict[str, Any]] = []
    total = 0
    while total < deliveries:
        request = _digest(f"backlog-{len(out):06d}", users[len(out) % len(users)])
        total += expected_deliveries([request], by_user, inapp_url)
        out.append(request)
    return out, total


def low_request_burst(users: Sequence[User], count: int, prefix: str) -> list[dict[str, Any]]:
    """``count`` low-priority in_app + webhook requests (a campaign arriving as requests)."""
    return [_digest(f"{prefix}-{i:06d}", users[i % len(users)]) for i in range(count)]


def normal_request_burst(users: Sequence[User], count: int, prefix: str) -> list[dict[str, Any]]:
    """``count`` normal-priority requests, channels mixed as in the pipeline phase."""
    return [{**r, "priority": "normal"} for r in RequestMix(users, prefix=prefix).make(count)]


def high_requests(users: Sequence[User], count: int, prefix: str) -> list[dict[str, Any]]:
    """Password-reset-like requests: high priority, one channel each, from the end of the
    user list (the backlog starts at its beginning)."""
    return [
        {
            "notification_id": f"{prefix}-{i:05d}",
            "user_id": users[-1 - (i % len(users))].user_id,
            "category": "security",
            "priority": "high",
            "channels": list(HIGH_CHANNELS[i % len(HIGH_CHANNELS)]),
            "title": "Your sign-in code",
            "body": "Code {code}",
            "data": {"code": f"{i:06d}"},
            "created_at": 0.0,
        }
        for i in range(count)
    ]
