"""Failure planning, the retry scheduler, tier names and provider feedback mapping."""

from __future__ import annotations

import asyncio

import pytest

from agents.failure_plan import DEAD_LETTER, INVALID_RECIPIENT, RETRY, plan_failure
from agents.feedback import map_event
from agents.scheduler import DueScheduler
from providers.base import (
    ConfigurationError,
    InvalidRecipientError,
    PermanentError,
    ThrottledError,
    TransientError,
)
from streams.deliveries import Delivery
from streams.topics import tier_label

PUSH = (1.0, 5.0, 30.0)


def test_transient_failures_walk_the_schedule_then_dead_letter() -> None:
    error = TransientError("apns", "http_503")
    assert [(p.action, p.tier) for p in (plan_failure(error, n, PUSH) for n in range(3))] == [
        (RETRY, 1.0),
        (RETRY, 5.0),
        (RETRY, 30.0),
    ]
    final = plan_failure(error, 3, PUSH)
    assert final.action == DEAD_LETTER and final.reason.startswith("retries exhausted after 4")


def test_retry_after_longer_than_the_tier_wins() -> None:
    plan = plan_failure(ThrottledError("fcm", "QUOTA_EXCEEDED", retry_after=12.0), 0, PUSH)
    assert (plan.action, plan.tier, plan.wait) == (RETRY, 1.0, 12.0)
    short = plan_failure(ThrottledError("fcm", "QUOTA_EXCEEDED", retry_after=0.5), 1, PUSH)
    assert short.wait == 5.0


@pytest.mark.parametrize(
    ("error", "action"),
    [
        (InvalidRecipientError("apns", "Unregistered"), INVALID_RECIPIENT),
        (PermanentError("smtp", "554"), DEAD_LETTER),
        (ConfigurationError("apns", "DeviceTokenNotForTopic"), DEAD_LETTER),
    ],
)
def test_non_transient_failures_are_never_retried(error: Exception, action: str) -> None:
    assert plan_failure(error, 0, PUSH).action == action  # type: ignore[arg-type]


def test_after_failure_keeps_the_history() -> None:
    d = Delivery("d", "n", "u", "push", "tok", "t", "b", "high", platform="ios")
    twice = d.after_failure("e1", 1.0, 2.0).after_failure("e2", 3.0, 9.0)
    assert (twice.attempt, twice.not_before) == (2, 9.0)
    assert [e["error"] for e in twice.errors] == ["e1", "e2"]
    assert d.errors == []  # the original is untouched


@pytest.mark.parametrize(
    ("seconds", "label"),
    [(1, "1s"), (30, "30s"), (300, "5m"), (3600, "1h"), (90, "90s"), (0.5, "500ms")],
)
def test_tier_labels(seconds: float, label: str) -> None:
    assert tier_label(seconds) == label


async def test_scheduler_dispatches_in_due_order_across_sources() -> None:
    now = [100.0]
    scheduler: DueScheduler[str] = DueScheduler(capacity=10, clock=lambda: now[0])
    out: list[str] = []

    async def dispatch(item: str) -> None:
        out.append(item)

    runner = asyncio.create_task(scheduler.run(dispatch))
    await scheduler.put(105.0, "p0-late")  # read first, due last
    await scheduler.put(101.0, "p1-early")
    await scheduler.put(99.0, "overdue")
    await asyncio.sleep(0.01)
    assert out == ["overdue"]
    now[0] = 101.5
    await scheduler.put(200.0, "wake")  # any put re-checks the head
    await asyncio.sleep(0.01)
    assert out == ["overdue", "p1-early"]
    now[0] = 106.0
    await scheduler.put(300.0, "wake2")
    await asyncio.sleep(0.01)
    assert out == ["overdue", "p1-early", "p0-late"]
    runner.cancel()


async def test_scheduler_applies_backpressure_when_full() -> None:
    scheduler: DueScheduler[int] = DueScheduler(capacity=2, clock=lambda: 0.0)
    await scheduler.put(10.0, 1)
    await scheduler.put(10.0, 2)
    third = asyncio.create_task(scheduler.put(10.0, 3))
    await asyncio.sleep(0.01)
    assert not third.done() and len(scheduler) == 2
    third.cancel()


def test_sendgrid_events_map_to_delivery_events_and_suppressions() -> None:
    ids = {"notification_id": "n1", "delivery_id": "n1:email:x", "user_id": "u1"}
    hard = {"event": "bounce", "type": "bounce", "email": "a@x.io", "reason": "550 5.1.1", **ids}
    event, suppression = map_event(hard)
    assert event is not None and (event.status, event.delivery_id) == ("bounced", "n1:email:x")
    assert suppression is not None and suppression.address == "a@x.io"
    soft = map_event({**hard, "type": "blocked"})
    assert soft[0] is not None and soft[1] is None
    spam = map_event({"event": "spamreport", "email": "a@x.io", **ids})
    assert spam[0] is not None and spam[0].status == "complained" and spam[1] is not None
    opened = map_event({"event": "open", "email": "a@x.io", **ids})
    assert opened[0] is not None and opened[0].status == "opened" and opened[1] is None
    assert map_event({"event": "processed", **ids}) == (None, None)
    assert map_event({"event": "delivered", "email": "a@x.io"}) == (None, None)  # not ours
