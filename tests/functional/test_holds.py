"""Quiet hours in the intake under test_context(): a quiet channel is held on the hold topic
and the others go; at the release the user's preferences of that moment decide (an
unsubscribe in the night stops it)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import pytest

from app import Pipeline, build_app
from config.clock import step_clock
from streams.holds import parse_hold, release_headers
from tables import dedup
from tests.functional.conftest import channel_topics, make_settings, sent, values
from tests.functional.test_resolve_agent import control, req

QUIET = {"push": {"start": "22:00", "end": "07:00"}}


def lisbon(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo("Europe/Lisbon")).timestamp()


@pytest.fixture
async def night(tmp_path: Path) -> AsyncIterator[Pipeline]:
    clock = tmp_path / "clock"
    step_clock(clock, lisbon("2026-12-01T23:30:00"))
    built = build_app(make_settings(tmp_path, clock_file=clock), topics_for=channel_topics)
    built.app.finalize()
    await control(built, "user-contacts", {"user_id": "u1", "email": "u1@example.com"})
    await control(
        built, "device-registrations", {"user_id": "u1", "token": "a" * 64, "platform": "ios"}
    )
    await control(
        built, "user-attributes", {"user_id": "u1", "attributes": {"timezone": "Europe/Lisbon"}}
    )
    await control(built, "user-preferences", {"user_id": "u1", "quiet_hours": QUIET})
    yield built


async def resolve(pipeline: Pipeline, raw: bytes, headers: dict[str, bytes] | None = None) -> None:
    async with pipeline.agents["resolve"].test_context() as agent:
        await agent.put(raw, key=b"u1", headers=headers or {})


def statuses(pipeline: Pipeline) -> list[tuple[str, Any]]:
    return [(e["status"], e.get("reason")) for e in values(pipeline.topics.delivery_events)]


async def test_a_quiet_channel_is_held_and_released_to_the_preferences_of_the_morning(
    night: Pipeline,
) -> None:
    topics = night.topics
    await resolve(night, orjson.dumps(req("n1", channels=["push", "email"])))
    assert [d["notification_id"] for d in values(topics.deliveries[("email", "normal")])] == ["n1"]
    assert values(topics.deliveries[("push", "normal")]) == []
    [held] = sent(topics.requests_held)
    hold = parse_hold(held.value)
    assert (hold.channels, hold.release_at) == (["push"], lisbon("2026-12-02T07:00:00"))
    assert statuses(night) == [("accepted", None), ("held", f"{hold.release_at:.3f}")]

    # Released as it is: the push goes out, once, and nothing else is fanned out again.
    step_clock(Path(str(night.settings.clock_file)), lisbon("2026-12-02T07:00:01"))
    await resolve(night, bytes(hold.request), release_headers(hold))
    assert [d["notification_id"] for d in values(topics.deliveries[("push", "normal")])] == ["n1"]
    assert len(values(topics.deliveries[("email", "normal")])) == 1
    assert statuses(night)[-1] == ("released", "push")


async def test_turning_the_channel_off_in_the_night_stops_the_held_part(night: Pipeline) -> None:
    topics = night.topics
    await resolve(night, orjson.dumps(req("n2", channels=["push"])))
    [held] = sent(topics.requests_held)
    assert statuses(night) == [("held", f"{parse_hold(held.value).release_at:.3f}")]
    await control(night, "user-preferences", {"user_id": "u1", "channels": {"push": False}})
    hold = parse_hold(held.value)
    await resolve(night, bytes(hold.request), release_headers(hold))
    assert values(topics.deliveries[("push", "normal")]) == []
    assert statuses(night)[-1] == ("released", "push: no_channel_allowed")
    # The idempotency key stays claimed by the record that arrived: a repeat is a duplicate.
    assert dedup.claim_of(night.tables.dedup, "u1", "n2", time.time()) == hold.source
