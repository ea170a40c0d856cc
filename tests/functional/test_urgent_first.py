"""Urgent requests first: the intake resolves high requests and only passes the others on, so a
burst of normal requests never sits in front of a password reset (streams/request_routes.py)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest

from agents.request_origin import REPLAY_OF_HEADER, REQUEST_OF_HEADER
from app import Pipeline, build_app
from tables import dedup
from tests.functional.conftest import channel_topics, make_settings, sent, values
from tests.functional.test_resolve_agent import req, setup_user


@pytest.fixture
async def urgent(tmp_path: Path) -> AsyncIterator[Pipeline]:
    """The pipeline with the default pass-ons: normal and low requests to their own topics."""
    built = build_app(
        make_settings(tmp_path, normal_requests_wait=True, rate_limit_per_user=1000),
        topics_for=channel_topics,
    )
    built.app.finalize()
    yield built


def accepted(pipeline: Pipeline) -> list[str]:
    return [
        e["notification_id"]
        for e in values(pipeline.topics.delivery_events)
        if e["status"] == "accepted"
    ]


async def test_a_high_request_is_resolved_ahead_of_a_normal_backlog(urgent: Pipeline) -> None:
    await setup_user(urgent)
    backlog = [orjson.dumps(req(f"normal-{i}", priority="normal")) for i in range(50)]
    async with urgent.agents["resolve"].test_context() as agent:
        for raw in backlog:
            await agent.put(raw, key=b"u1")
        await agent.put(orjson.dumps(req("reset", priority="high")), key=b"u1")

    # Behind 50 normal requests on its partition, the reset is the only one resolved yet: the
    # intake passed the others on untouched, in their order, keyed by user.
    assert accepted(urgent) == ["reset"]
    [pushed] = values(urgent.topics.deliveries[("push", "high")])
    assert pushed["notification_id"] == "reset"
    passed = sent(urgent.topics.requests_normal)
    assert [(e.key, e.value) for e in passed] == [(b"u1", raw) for raw in backlog]
    assert not values(urgent.topics.deliveries[("push", "normal")])

    async with urgent.agents["resolve_normal"].test_context() as agent:
        for event in passed:
            await agent.put(event.value, key=event.key)
    assert accepted(urgent) == ["reset", *(f"normal-{i}" for i in range(50))]
    normal_push = values(urgent.topics.deliveries[("push", "normal")])
    assert [d["notification_id"] for d in normal_push] == [f"normal-{i}" for i in range(50)]


async def test_the_high_topic_passes_on_what_is_not_high(urgent: Pipeline) -> None:
    await setup_user(urgent)
    normal, low = req("normal", priority="normal"), req("campaign", priority="low")
    async with urgent.agents["resolve_high"].test_context() as agent:
        for record in (normal, low, req("reset", priority="high")):
            await agent.put(orjson.dumps(record), key=b"u1")

    assert accepted(urgent) == ["reset"]
    assert [orjson.loads(e.value) for e in sent(urgent.topics.requests_normal)] == [normal]
    assert [orjson.loads(e.value) for e in sent(urgent.topics.requests_low)] == [low]


async def test_dedup_holds_across_the_priority_topics(urgent: Pipeline) -> None:
    """One idempotency key, sent once as high and once as normal: the copy resolved second is
    a duplicate, whichever topic it came through."""
    await setup_user(urgent)
    async with urgent.agents["resolve_high"].test_context() as agent:
        await agent.put(orjson.dumps(req("first", idempotency_key="k", priority="high")))
    async with urgent.agents["resolve_normal"].test_context() as agent:
        # Each test context numbers its records from offset 0, and a record with the claiming
        # record's coordinates would be its replay: a dead letter takes offset 0 here.
        await agent.put(b"{nope")
        await agent.put(orjson.dumps(req("second", idempotency_key="k", priority="normal")))
    statuses = [
        (e["notification_id"], e["status"], e.get("reason"))
        for e in values(urgent.topics.delivery_events)
    ]
    assert statuses == [("first", "accepted", None), ("second", "rejected", "duplicate")]


async def test_a_passed_on_request_claims_its_key_as_the_record_it_came_from(
    urgent: Pipeline,
) -> None:
    """The normal copy resolves the request, but it claims the idempotency key as the public
    record, so a replay of the public record (what an operator replays) is its replay."""
    await setup_user(urgent)
    async with urgent.agents["resolve"].test_context() as agent:
        # Each test context numbers its records from 0 on one topic name: two dead letters
        # first, so no record of the normal context below shares the origin's coordinates.
        await agent.put(b"{nope")
        await agent.put(b"{nope")
        await agent.put(orjson.dumps(req("n1", priority="normal")), key=b"u1")
    [passed] = sent(urgent.topics.requests_normal)
    headers = dict(passed.headers or {})
    origin = headers[REQUEST_OF_HEADER]
    assert origin.decode().rsplit(":", 1)[1] == "2"
    async with urgent.agents["resolve_normal"].test_context() as agent:
        await agent.put(passed.value, key=b"u1", headers=headers)
        await agent.put(passed.value, key=b"u1")  # the same request from another record
        # A replay of the public record, passed on again: its x-replay-of names the origin.
        await agent.put(passed.value, key=b"u1", headers={REPLAY_OF_HEADER: origin})
    statuses = [(e["status"], e.get("reason")) for e in values(urgent.topics.delivery_events)]
    assert statuses == [("accepted", None), ("rejected", "duplicate"), ("accepted", None)]
    assert dedup.claim_of(urgent.tables.dedup, "u1", "n1", time.time()) == origin.decode()


def test_the_worker_raises_fausts_changelog_buffer_limit(tmp_path: Path) -> None:
    """Over the limit, Faust's one hand-off waits for table changelog writes and every topic's
    records wait with it (streams/changelog_buffer.py)."""
    built = build_app(make_settings(tmp_path, changelog_buffer_messages=5000), channel_topics)
    assert built.app.producer.buffer.max_messages == 5000
