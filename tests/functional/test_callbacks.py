"""Status callbacks through the status agent and the callbacks' lane under test_context(): the
lane posts to the webhook sandbox over the network; outputs land on in-memory channels."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest

from app import Pipeline, build_app
from config.vocabulary import EventStatus
from providers.sandboxes.webhook import WebhookSandbox
from providers.webhook import DELIVERY_HEADER
from streams.callbacks import StatusChange, callback_delivery, lane_key
from streams.deliveries import DeliveryEvent, parse_delivery
from streams.topics import CALLBACK_LANE
from tables import ledger, status
from tests.functional.conftest import (
    channel_topics,
    eventually,
    make_settings,
    sent,
    webhook_pipeline,
)


@pytest.fixture
async def pipeline(tmp_path: Path) -> AsyncIterator[tuple[Pipeline, WebhookSandbox]]:
    async with webhook_pipeline(tmp_path) as built:
        yield built


async def test_the_status_agent_queues_a_callback_per_change_of_a_notification_that_asked(
    pipeline: tuple[Pipeline, WebhookSandbox],
) -> None:
    app, webhook = pipeline
    url = webhook.url("/client/status")
    events = [
        DeliveryEvent("n1", "u1", "accepted", at=1.0, deliveries=1, callback_url=url),
        DeliveryEvent("n1", "u1", "retrying", at=2.0, delivery_id="d1", channel="push"),
        DeliveryEvent("n1", "u1", "sent", at=3.0, delivery_id="d1", channel="push"),
        DeliveryEvent("n1", "u1", "read", at=4.0),
        DeliveryEvent("n2", "u2", "accepted", at=1.0, deliveries=1),  # asked for none
        DeliveryEvent("n2", "u2", "sent", at=2.0, delivery_id="d2", channel="push"),
    ]
    async with app.agents["status"].test_context() as agent:
        for event in events:
            await agent.put(event.to_json(), key=event.notification_id.encode())
        await eventually(lambda: status.get(app.tables.status, "n2") is not None)
    queued = sent(app.topics.deliveries[CALLBACK_LANE])
    assert {q.key for q in queued} == {lane_key("u1")}
    bodies = [orjson.loads(parse_delivery(q.value).body) for q in queued]
    assert [(b["status"], b["notification_status"]) for b in bodies] == [
        ("accepted", "accepted"),
        ("sent", "sent"),
        ("read", "read"),
    ]
    row = status.get(app.tables.status, "n1")
    assert row is not None and (row["status"], row["callback_url"]) == ("read", url)


async def test_a_callback_is_posted_signed_once_and_is_no_delivery_event(
    pipeline: tuple[Pipeline, WebhookSandbox],
) -> None:
    app, webhook = pipeline
    change = StatusChange("n1", "u1", EventStatus.SENT, "sent", 3.0, delivery_id="d1")
    callback = callback_delivery(change, webhook.url("/client/status"))
    async with app.agents["deliver_callbacks"].test_context() as agent:
        for _ in range(2):  # read twice: the ledger holds the first send
            await agent.put(callback.to_json(), key=lane_key("u1"))
        await eventually(lambda: len(webhook.received) == 1)
        owner = lane_key("u1").decode()
        await eventually(
            lambda: ledger.sent_by(app.tables.ledger, owner, callback.delivery_id, 4.0) is not None
        )
    [received] = webhook.received  # the sandbox verified X-Notify-Signature
    assert received["headers"][DELIVERY_HEADER] == callback.delivery_id
    assert received["payload"]["callback_id"] == callback.delivery_id
    assert received["payload"]["status"] == "sent"
    assert received["raw"] == callback.body.encode()
    assert not sent(app.topics.delivery_events)  # nothing to fold, nothing to call back about
    assert ledger.sent_by(app.tables.ledger, "u1", callback.delivery_id, 4.0) is None
    # Counted as a callback, not as a notification (the webhook channel's delivery rate).
    sample = app.metrics.registry.get_sample_value
    assert sample("notify_callbacks_total", {"outcome": "posted"}) == 1
    labels = {"channel": "webhook", "provider": "callback"}
    assert sample("notify_notifications_sent_total", labels) is None


async def test_a_failing_endpoint_retries_through_the_tiers_and_dead_letters_without_events(
    pipeline: tuple[Pipeline, WebhookSandbox],
) -> None:
    app, webhook = pipeline
    webhook.plan.faults["/busy"] = 503
    webhook.plan.faults["/gone"] = 410
    busy = callback_delivery(
        StatusChange("n1", "u1", EventStatus.ACCEPTED, "accepted", 1.0), webhook.url("/busy")
    )
    gone = callback_delivery(
        StatusChange("n2", "u1", EventStatus.ACCEPTED, "accepted", 1.0), webhook.url("/gone")
    )
    async with app.agents["deliver_callbacks"].test_context() as agent:
        await agent.put(busy.to_json(), key=lane_key("u1"))
        await agent.put(gone.to_json(), key=lane_key("u1"))
        first_tier = app.topics.retries[app.settings.retry_webhook[0]]
        await eventually(lambda: bool(sent(first_tier)) and bool(sent(app.topics.deliveries_dlq)))
    [retry] = sent(first_tier)
    again = parse_delivery(retry.value)
    assert (retry.key, again.delivery_id, again.attempt) == (lane_key("u1"), busy.delivery_id, 1)
    assert "http_503" in again.errors[0]["error"]
    [letter] = sent(app.topics.deliveries_dlq)
    assert parse_delivery(letter.value).delivery_id == gone.delivery_id
    assert dict(letter.headers)["x-dlq-reason"].startswith(b"callback: InvalidRecipientError")
    # A caller's endpoint is not a user's address: nothing suppressed, nothing folded.
    assert not sent(app.topics.suppressions)
    assert not sent(app.topics.delivery_events)
    sample = app.metrics.registry.get_sample_value
    assert sample("notify_callbacks_total", {"outcome": "retried"}) == 1
    assert sample("notify_callbacks_total", {"outcome": "dead_lettered"}) == 1


async def test_with_callbacks_off_nothing_is_queued_and_no_lane_reads_them(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, callbacks_enabled=False)
    app = build_app(settings, topics_for=channel_topics)
    app.app.finalize()
    assert "deliver_callbacks" not in app.agents
    accepted = DeliveryEvent(
        "n1", "u1", "accepted", at=1.0, deliveries=1, callback_url="https://c.example/s"
    )
    async with app.agents["status"].test_context() as agent:
        await agent.put(accepted.to_json(), key=b"n1")
        await eventually(lambda: status.get(app.tables.status, "n1") is not None)
    assert not sent(app.topics.deliveries[CALLBACK_LANE])
    row = status.get(app.tables.status, "n1")
    assert row is not None and row["callback_url"] == "https://c.example/s"
