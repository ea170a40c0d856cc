"""The inbox under test_context(): an in-app delivery reaches the user's open live streams as
it is added, and inbox actions on the control agent change its read and archived state."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from agents.inbox_hub import InboxChange
from app import Pipeline
from providers.sandboxes.webhook import WebhookSandbox
from streams.deliveries import Delivery
from tables import inbox
from tables.inbox import InboxEntry
from tests.functional.conftest import (
    eventually,
    sent,
    webhook_pipeline,
)

KIND = "x-control-kind"


@pytest.fixture
async def delivering(tmp_path: Path) -> AsyncIterator[tuple[Pipeline, WebhookSandbox]]:
    async with webhook_pipeline(tmp_path) as built:
        yield built


def in_app(notification_id: str, url: str) -> Delivery:
    return Delivery(
        delivery_id=f"{notification_id}:in_app:1",
        notification_id=notification_id,
        user_id="u1",
        channel="in_app",
        address=url,
        title=f"About {notification_id}",
        body="World",
        priority="high",
        requested_at=1.0,
    )


async def act(pipeline: Pipeline, *records: dict[str, Any] | bytes) -> None:
    async with pipeline.agents["control"].test_context() as agent:
        for record in records:
            raw = record if isinstance(record, bytes) else orjson.dumps(record)
            await agent.put(raw, key=b"u1", headers={KIND: b"user-inbox-actions"})


def state(pipeline: Pipeline) -> list[tuple[str, bool, bool]]:
    return [
        (e.message["notification_id"], e.read, e.archived)
        for e in inbox.entries(pipeline.tables.inbox, "u1")
    ]


async def test_an_in_app_delivery_reaches_the_users_open_streams(
    delivering: tuple[Pipeline, WebhookSandbox],
) -> None:
    pipeline, webhook = delivering
    assert pipeline.inbox_hub is not None
    feed, other = pipeline.inbox_hub.subscribe("u1"), pipeline.inbox_hub.subscribe("u2")
    async with pipeline.agents["deliver_high"].test_context() as agent:
        for nid in ("n1", "n2"):
            await agent.put(in_app(nid, webhook.url("/inbox")).to_json(), key=b"u1")
        await eventually(lambda: len(sent(pipeline.topics.delivery_events)) == 2)
    first, second = await feed.next_entry(5.0), await feed.next_entry(5.0)
    assert isinstance(first, InboxEntry) and isinstance(second, InboxEntry)
    assert [(e.position, e.message["title"]) for e in (first, second)] == [
        (0, "About n1"),
        (1, "About n2"),
    ]
    assert await other.next_entry(0.01) is None
    # What the stream sent is what the ring holds: the same positions, newest first.
    assert [e.position for e in inbox.entries(pipeline.tables.inbox, "u1")] == [1, 0]


async def test_inbox_actions_change_read_and_archived_state(
    delivering: tuple[Pipeline, WebhookSandbox],
) -> None:
    pipeline, webhook = delivering
    async with pipeline.agents["deliver_high"].test_context() as agent:
        for nid in ("n1", "n2", "n3"):
            await agent.put(in_app(nid, webhook.url("/inbox")).to_json(), key=b"u1")
        await eventually(lambda: len(sent(pipeline.topics.delivery_events)) == 3)
    assert inbox.unread(inbox.entries(pipeline.tables.inbox, "u1")) == 3

    await act(
        pipeline,
        {"user_id": "u1", "action": "read", "notification_id": "n2"},
        {"user_id": "u1", "action": "archive", "notification_id": "n3"},
    )
    assert state(pipeline) == [("n3", False, True), ("n2", True, False), ("n1", False, False)]
    assert inbox.unread(inbox.entries(pipeline.tables.inbox, "u1")) == 1
    await act(pipeline, {"user_id": "u1", "action": "read_all"})
    assert inbox.unread(inbox.entries(pipeline.tables.inbox, "u1")) == 0


async def test_each_applied_action_reaches_the_users_open_streams_with_the_unread_count(
    delivering: tuple[Pipeline, WebhookSandbox],
) -> None:
    pipeline, webhook = delivering
    assert pipeline.inbox_hub is not None
    async with pipeline.agents["deliver_high"].test_context() as agent:
        for nid in ("n1", "n2", "n3"):
            await agent.put(in_app(nid, webhook.url("/inbox")).to_json(), key=b"u1")
        await eventually(lambda: len(sent(pipeline.topics.delivery_events)) == 3)
    feed = pipeline.inbox_hub.subscribe("u1")
    await act(
        pipeline,
        {"user_id": "u1", "action": "read", "notification_id": "n2"},
        {"user_id": "u1", "action": "read", "notification_id": "n2"},  # again: no change
        {"user_id": "u1", "action": "archive", "notification_id": "n3"},
        {"user_id": "u1", "action": "read_all"},
    )
    changes = [await feed.next_entry(1.0) for _ in range(3)]
    assert changes == [
        InboxChange("read", "n2", unread=2),
        InboxChange("archive", "n3", unread=1),
        InboxChange("read_all", None, unread=0),
    ]
    assert await feed.next_entry(0.01) is None  # the repeated read changed nothing


async def test_a_bad_inbox_action_is_dead_lettered_and_the_agent_goes_on(
    pipeline: Pipeline,
) -> None:
    await act(
        pipeline,
        {"user_id": "u1", "action": "archive"},
        b"not json",
        {"user_id": "u1", "action": "read_all"},  # nothing to read: applied, changes nothing
    )
    reasons = [dict(d.headers)["x-dlq-reason"] for d in sent(pipeline.topics.control_dlq)]
    assert len(reasons) == 2
    assert b"'notification_id' is required to archive a message" in reasons[0]
    assert b"malformed JSON" in reasons[1]
