"""The metrics the agents count, read back from the app's own registry after real sends to the
webhook and SMTP sandboxes, and the scrape of a worker whose consumer is not running."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from agents.counters import FAILURES
from app import Pipeline, build_app
from providers.sandboxes.smtp import SmtpSandbox
from providers.sandboxes.webhook import WebhookSandbox
from streams.deliveries import Delivery
from tests.functional.conftest import channel_topics, eventually, make_settings, sent


@pytest.fixture
async def delivering(tmp_path: Path) -> AsyncIterator[tuple[Pipeline, WebhookSandbox]]:
    FAILURES.reset()
    webhook, smtp = WebhookSandbox(), SmtpSandbox()
    await webhook.start()
    await smtp.start()
    settings = make_settings(tmp_path, **webhook.settings_overrides(), **smtp.settings_overrides())
    pipeline = build_app(settings, topics_for=channel_topics)
    pipeline.app.finalize()
    yield pipeline, webhook
    await pipeline.providers.on_stop()
    await webhook.stop()
    await smtp.stop()
    FAILURES.reset()


def delivery(delivery_id: str, channel: str, address: str, requested_at: float) -> Delivery:
    return Delivery(
        delivery_id=delivery_id,
        notification_id=delivery_id.split(":")[0],
        user_id="u1",
        channel=channel,
        address=address,
        title="Hello",
        body="World",
        priority="normal",
        requested_at=requested_at,
    )


async def test_sends_failures_retries_and_dead_letters_are_counted(
    delivering: tuple[Pipeline, WebhookSandbox],
) -> None:
    pipeline, webhook = delivering
    webhook.faults["/gone"] = 410
    webhook.faults["/busy"] = 503
    now = time.time()
    async with pipeline.agents["deliver_normal"].test_context() as agent:
        for record in (
            delivery("a:webhook:1", "webhook", webhook.url("/hooks/u1"), now - 2.0),
            delivery("b:email:1", "email", "u1@example.com", now - 2.0),
            delivery("c:webhook:1", "webhook", webhook.url("/gone"), now),
            delivery("d:webhook:1", "webhook", webhook.url("/busy"), now),
        ):
            await agent.put(record.to_json(), key=b"u1")
        await agent.put(b"not a delivery", key=b"u1")
        await eventually(lambda: len(sent(pipeline.topics.delivery_events)) == 4)
        await eventually(lambda: len(sent(pipeline.topics.deliveries_dlq)) == 1)

    def value(name: str, **labels: str) -> float | None:
        return pipeline.metrics.registry.get_sample_value(name, labels)

    sent_total = "notify_notifications_sent_total"
    assert value(sent_total, channel="webhook", provider="webhook") == 3
    assert value(sent_total, channel="email", provider="smtp") == 1
    delivered = "notify_notifications_delivered_total"
    assert value(delivered, channel="webhook", provider="webhook") == 1
    assert value(delivered, channel="email", provider="smtp") == 1
    failed = "notify_notifications_failed_total"
    assert value(failed, channel="webhook", provider="webhook", error_type="invalid_recipient") == 1
    assert value(failed, channel="webhook", provider="webhook", error_type="transient") == 1
    assert value("notify_retries_total", channel="webhook", tier="1") == 1
    # Two deliveries accepted about two seconds after their request: one latency sample each,
    # in the 2.5 s bucket and not in the 1 s one.
    latency = "notify_delivery_latency_seconds_bucket"
    assert value(latency, channel="email", le="2.5") == 1
    assert value(latency, channel="email", le="1.0") == 0
    assert value("notify_provider_request_seconds_count", provider="webhook") == 3
    # Every record a lane took, the unreadable one too (its channel has no topic name here).
    assert value("notify_queue_wait_seconds_count", queue="<internal>") == 5
    assert value("notify_delivery_cost_dollars_total", channel="email", provider="smtp") == (
        pytest.approx(0.0001)
    )
    # From agents/counters.py, exported at scrape time.
    dead = "notify_dead_letters_total"
    assert value(dead, topic="<channel>", reason="invalid_record") == 1
    assert value("notify_invalid_records_total", stage="deliver_normal") == 1


async def test_a_scrape_before_the_consumer_runs_has_every_family_and_no_samples_of_lag(
    delivering: tuple[Pipeline, WebhookSandbox],
) -> None:
    pipeline, _ = delivering
    text = generate_latest(pipeline.metrics.registry).decode()
    families = {family.name: family for family in text_string_to_metric_families(text)}
    for name in (
        "notify_kafka_consumer_lag_messages",
        "notify_queue_depth_messages",
        "notify_campaign_users",
        "notify_agent_restarts",
        "notify_notifications_delivered",
    ):
        assert name in families, name
    assert families["notify_kafka_consumer_lag_messages"].samples == []
    depth = {s.labels["priority"]: s.value for s in families["notify_queue_depth_messages"].samples}
    assert depth == {"high": 0, "low": 0, "normal": 0}
