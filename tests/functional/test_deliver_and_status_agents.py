"""The deliver and status agents under test_context(). Deliveries go over the network to the
webhook and SMTP sandboxes; outputs are captured on in-memory channels."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import msgspec
import pytest

from app import Pipeline, build_app
from providers.sandboxes.smtp import SmtpSandbox
from providers.sandboxes.webhook import WebhookSandbox
from streams.deliveries import Delivery, DeliveryEvent
from tables import inbox, ledger, status
from tests.functional.conftest import channel_topics, eventually, make_settings, sent, values


@pytest.fixture
async def delivering(tmp_path: Path) -> AsyncIterator[tuple[Pipeline, WebhookSandbox, SmtpSandbox]]:
    webhook, smtp = WebhookSandbox(), SmtpSandbox()
    await webhook.start()
    await smtp.start()
    settings = make_settings(tmp_path, **webhook.settings_overrides(), **smtp.settings_overrides())
    pipeline = build_app(settings, topics_for=channel_topics)
    pipeline.app.finalize()
    yield pipeline, webhook, smtp
    await pipeline.providers.on_stop()
    await webhook.stop()
    await smtp.stop()


def delivery(delivery_id: str, channel: str, address: str) -> Delivery:
    return Delivery(
        delivery_id=delivery_id,
        notification_id="n1",
        user_id="u1",
        channel=channel,
        address=address,
        title="Hello",
        body="World",
        priority="high",
        requested_at=1.0,
    )


async def test_deliveries_reach_providers_once_and_are_ledgered(
    delivering: tuple[Pipeline, WebhookSandbox, SmtpSandbox],
) -> None:
    pipeline, webhook, smtp = delivering
    hook = delivery("n1:webhook:1", "webhook", webhook.url("/hooks/u1"))
    mail = delivery("n1:email:1", "email", "u1@example.com")
    async with pipeline.agents["deliver_high"].test_context() as agent:
        for record in (hook, mail, hook):  # the webhook delivery arrives twice
            await agent.put(record.to_json(), key=b"u1")
        await eventually(lambda: len(sent(pipeline.topics.delivery_events)) == 3)

    assert [r["delivery_id"] for r in webhook.received] == ["n1:webhook:1"]
    assert [r["address"] for r in smtp.received] == ["u1@example.com"]
    events = values(pipeline.topics.delivery_events)
    assert [(e["delivery_id"], e["status"]) for e in events] == [
        ("n1:webhook:1", "sent"),
        ("n1:email:1", "sent"),
        ("n1:webhook:1", "duplicate_suppressed"),
    ]
    assert ledger.sent_by(pipeline.tables.ledger, "u1", "n1:email:1", now=2.0) is not None


async def test_provider_failures_become_events_not_crashes(
    delivering: tuple[Pipeline, WebhookSandbox, SmtpSandbox],
) -> None:
    pipeline, webhook, _ = delivering
    webhook.faults["/gone"] = 410
    async with pipeline.agents["deliver_normal"].test_context() as agent:
        await agent.put(delivery("d-gone", "webhook", webhook.url("/gone")).to_json(), key=b"u1")
        await agent.put(delivery("d-push", "push", "tok").to_json(), key=b"u1")  # no platform
        await agent.put(b"not a delivery", key=b"u1")
        await eventually(lambda: len(sent(pipeline.topics.deliveries_dlq)) == 2)
    events = {e["delivery_id"]: e for e in values(pipeline.topics.delivery_events)}
    assert events["d-gone"]["status"] == "failed"
    assert events["d-gone"]["reason"].startswith("invalid_recipient: InvalidRecipientError")
    [suppression] = values(pipeline.topics.suppressions)  # the dead URL is never used again
    assert suppression["address"] == webhook.url("/gone")
    assert ledger.sent_by(pipeline.tables.ledger, "u1", "d-gone", now=2.0) is None
    reasons = [dict(e.headers)["x-dlq-reason"] for e in sent(pipeline.topics.deliveries_dlq)]
    assert reasons[0].startswith(b"push delivery needs a platform")
    assert reasons[1].startswith(b"malformed JSON")


async def test_status_agent_folds_events(
    delivering: tuple[Pipeline, WebhookSandbox, SmtpSandbox],
) -> None:
    pipeline, _, _ = delivering
    events = [
        DeliveryEvent("n1", "u1", "accepted", at=1.0, deliveries=2),
        DeliveryEvent(
            "n1", "u1", "sent", at=2.0, delivery_id="d1", channel="push", provider="apns"
        ),
        DeliveryEvent("n1", "u1", "failed", at=3.0, delivery_id="d2", channel="sms", reason="x"),
        DeliveryEvent("n2", "u2", "rejected", at=1.0, reason="rate_limited"),
    ]
    async with pipeline.agents["status"].test_context() as agent:
        for event in events:
            await agent.put(event.to_json(), key=event.notification_id.encode())
        await agent.put(b"{broken", key=b"n3")  # logged, skipped: the stream goes on
        await agent.put(DeliveryEvent("n4", "u4", "accepted", at=1.0).to_json(), key=b"n4")
        await eventually(lambda: status.get(pipeline.tables.status, "n4") is not None)
    n1 = status.get(pipeline.tables.status, "n1")
    assert n1 is not None and n1["status"] == "sent"
    assert n1["deliveries"]["d2"]["status"] == "failed"
    n2 = status.get(pipeline.tables.status, "n2")
    assert n2 is not None and (n2["status"], n2["reason"]) == ("rejected", "rate_limited")


async def test_in_app_deliveries_are_kept_in_the_users_inbox_newest_first(
    delivering: tuple[Pipeline, WebhookSandbox, SmtpSandbox],
) -> None:
    pipeline, webhook, _ = delivering
    first = delivery("n1:in_app:1", "in_app", webhook.url("/inbox"))
    second = msgspec.structs.replace(
        first, delivery_id="n2:in_app:1", notification_id="n2", title="Again"
    )
    async with pipeline.agents["deliver_high"].test_context() as agent:
        for record in (first, second):
            await agent.put(record.to_json(), key=b"u1")
        await eventually(lambda: len(sent(pipeline.topics.delivery_events)) == 2)
        kept = inbox.messages(pipeline.tables.inbox, "u1")
    assert [(m["notification_id"], m["title"]) for m in kept] == [("n2", "Again"), ("n1", "Hello")]
    assert [r["delivery_id"] for r in webhook.received] == ["n1:in_app:1", "n2:in_app:1"]
