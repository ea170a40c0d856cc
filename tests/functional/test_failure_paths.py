"""Failure paths of the deliver stage under test_context(): retry tiers, dead letters, dead
tokens, suppressions and the fallback channel. Providers answer from real sandboxes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import msgspec
import orjson
import pytest

from agents.outcomes import OutcomeRouter
from app import Pipeline
from providers.base import InvalidRecipientError, PermanentError
from providers.breaker import endpoint_of
from providers.sandboxes.webhook import WebhookSandbox
from streams.deliveries import Delivery
from tests.functional.conftest import (
    eventually,
    sent,
    values,
    webhook_pipeline,
)


@pytest.fixture
async def failing(tmp_path: Path) -> AsyncIterator[tuple[Pipeline, WebhookSandbox]]:
    async with webhook_pipeline(tmp_path) as built:
        yield built


def hook(webhook: WebhookSandbox, path: str, attempt: int = 0, **kw: object) -> Delivery:
    return Delivery(
        delivery_id=f"n1:webhook:{path}",
        notification_id="n1",
        user_id="u1",
        channel="webhook",
        address=webhook.url(path),
        title="t",
        body="b",
        priority="normal",
        attempt=attempt,
        **kw,  # type: ignore[arg-type]
    )


async def deliver(pipeline: Pipeline, *deliveries: Delivery) -> None:
    events = pipeline.topics.delivery_events
    before = len(sent(events))
    async with pipeline.agents["deliver_normal"].test_context() as agent:
        for d in deliveries:
            await agent.put(d.to_json(), key=b"u1")
        await eventually(lambda: len(sent(events)) >= before + len(deliveries))


async def test_transient_failure_goes_to_the_first_retry_tier(
    failing: tuple[Pipeline, WebhookSandbox],
) -> None:
    pipeline, webhook = failing
    webhook.faults["/flaky"] = 503
    await deliver(pipeline, hook(webhook, "/flaky"))
    [retry] = values(pipeline.topics.retries[1.0])  # webhook schedule starts at 1 s
    assert retry["attempt"] == 1 and retry["not_before"] > retry["errors"][0]["at"]
    assert "503" in retry["errors"][0]["error"]
    [event] = values(pipeline.topics.delivery_events)
    assert event["status"] == "retrying" and "next in 1s" in event["reason"]


async def test_last_attempt_dead_letters_with_the_whole_history(
    failing: tuple[Pipeline, WebhookSandbox],
) -> None:
    pipeline, webhook = failing
    webhook.faults["/down"] = 500
    history = [{"attempt": n, "error": "earlier", "at": float(n)} for n in range(1, 6)]
    await deliver(pipeline, hook(webhook, "/down", attempt=5, errors=history))
    [dead] = sent(pipeline.topics.deliveries_dlq)
    record = orjson.loads(dead.value)
    assert len(record["errors"]) == 6 and record["attempt"] == 6
    assert dict(dead.headers)["x-dlq-reason"].startswith(b"retries exhausted after 6 attempts")
    [event] = values(pipeline.topics.delivery_events)
    assert event["status"] == "failed" and event["reason"].startswith("dead_letter")


async def test_invalid_push_token_is_unregistered_not_retried(
    failing: tuple[Pipeline, WebhookSandbox],
) -> None:
    pipeline, _ = failing
    # These settings have no APNs sandbox: hand the router (what the deliver agent calls on a
    # provider error) the answer APNs gives for a dead token. test_context() supplies the event
    # context that table writes need.
    dead = Delivery("n1:push:x", "n1", "u1", "push", "a" * 64, "t", "b", "high", platform="ios")
    async with pipeline.agents["deliver_high"].test_context():
        await router(pipeline).failed(
            dead, "apns", InvalidRecipientError("apns", "410", "Unregistered")
        )
    [unregister] = values(pipeline.topics.devices)
    assert unregister == {
        "user_id": "u1",
        "token": "a" * 64,
        "platform": "ios",
        "action": "unregister",
        "reason": "InvalidRecipientError: apns: 410: Unregistered",
    }
    assert not values(pipeline.topics.retries[1.0])


def router(pipeline: Pipeline) -> OutcomeRouter:
    return OutcomeRouter(pipeline.settings, pipeline.topics, pipeline.tables, pipeline.metrics)


async def test_fallback_channel_is_used_once_when_every_delivery_failed(
    failing: tuple[Pipeline, WebhookSandbox],
) -> None:
    pipeline, webhook = failing
    kind = {"x-control-kind": b"user-contacts"}
    async with pipeline.agents["control"].test_context() as agent:
        await agent.put(
            orjson.dumps(
                {"user_id": "u1", "email": "u1@example.com", "webhook_url": webhook.url("/gone")}
            ),
            key=b"u1",
            headers=kind,
        )
    request = {
        "notification_id": "n9",
        "user_id": "u1",
        "title": "t",
        "body": "b",
        "channels": ["webhook"],
        "fallback_channel": "email",
    }
    async with pipeline.agents["resolve"].test_context() as agent:
        await agent.put(orjson.dumps(request), key=b"u1")
    [first] = values(pipeline.topics.deliveries[("webhook", "normal")])
    webhook.faults["/gone"] = 410
    await deliver(pipeline, Delivery(**first))
    [fallback] = values(pipeline.topics.deliveries[("email", "normal")])
    assert (fallback["address"], fallback["is_fallback"]) == ("u1@example.com", True)
    statuses = [e["status"] for e in values(pipeline.topics.delivery_events)]
    assert statuses == ["accepted", "failed", "fell_back"]
    # The fallback delivery failing as well does not fall back again.
    await router(pipeline).failed(Delivery(**fallback), "smtp", PermanentError("smtp", "554"))
    assert len(values(pipeline.topics.deliveries[("email", "normal")])) == 1


async def test_a_delivery_the_breaker_refuses_spends_no_provider_token(tmp_path: Path) -> None:
    """The lane asks the breaker before it takes a token: during an outage the refused
    deliveries neither use up the provider's rate nor queue for tokens behind the sends that
    will go."""
    async with webhook_pipeline(tmp_path, rate_webhook_per_second=100.0) as (pipeline, webhook):
        assert pipeline.providers.breakers is not None and pipeline.limits is not None
        # The webhook provider's breakers are per endpoint: the sandbox's is this one.
        breaker = pipeline.providers.breakers.get(f"webhook@{endpoint_of(webhook.url())}")
        for _ in range(breaker.policy.window):  # a window of failures: it opens
            permit = breaker.admit()
            assert permit is not None
            breaker.record(permit, True)
        refused = [
            msgspec.structs.replace(hook(webhook, "/a"), delivery_id=f"n1:webhook:{i}")
            for i in range(3)
        ]
        await deliver(pipeline, *refused)
        assert [e["status"] for e in values(pipeline.topics.delivery_events)] == ["deferred"] * 3
        assert pipeline.limits.limiters["webhook"].counters.tokens_taken == 0
        assert breaker.refused == 3 and webhook.received == []
