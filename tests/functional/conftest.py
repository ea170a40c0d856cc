"""Agents under Faust's ``test_context()``: in-memory tables, and in-memory channels in place of
every output topic so a test reads exactly what an agent produced."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import fields
from pathlib import Path
from typing import Any

import faust
import orjson
import pytest

from app import Pipeline, build_app
from config.settings import Settings
from providers.sandboxes.webhook import WebhookSandbox
from streams.faust_types import Channel, Event
from streams.records import CHANNELS, PRIORITIES
from streams.topics import CALLBACK_LANE, USER_DATA_CONTROL, Topics


class Recorder(faust.Channel[Any]):
    """An in-memory channel that keeps every event sent to it, for assertions."""

    def __init__(self, app: faust.App) -> None:
        super().__init__(app)
        self.sent: list[Event] = []

    async def put(self, value: Event) -> None:
        self.sent.append(value)


def channel_topics(app: faust.App, settings: Settings) -> Topics:
    def channel() -> Channel:
        return Recorder(app)

    # Every plain topic field gets its own recorder, so a new topic needs no line here.
    mapped: dict[str, Any] = {
        "deliveries": {
            **{(c, p): channel() for c in CHANNELS for p in PRIORITIES},
            CALLBACK_LANE: channel(),
        },
        "delivery_lanes": {p: channel() for p in PRIORITIES},
        "retries": {d: channel() for d in settings.retry_delays()},
        "user_data_control": tuple(channel() for _ in USER_DATA_CONTROL),
    }
    chosen: dict[str, Any] = {f.name: mapped.get(f.name) or channel() for f in fields(Topics)}
    return Topics(**chosen)


def sent(channel: Channel) -> list[Event]:
    """Every event an agent has sent to ``channel`` so far."""
    assert isinstance(channel, Recorder)
    return channel.sent


def values(channel: Channel) -> list[dict[str, Any]]:
    return [orjson.loads(event.value) for event in sent(channel)]


async def eventually(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    """``put()`` returns when the agent has *taken* the event, not when it has finished with it
    (faust's test wrapper for sink-less agents); wait for the outcome before leaving the context."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError("condition not met")
        await asyncio.sleep(0.01)


def make_settings(tmp_path: Path, **overrides: Any) -> Settings:
    base: dict[str, Any] = dict(
        app_id="functional",
        store="memory://",
        data_dir=tmp_path,
        partitions=1,
        rate_limit_per_user=3,
        inapp_url="http://inbox.test/api",
        web_enabled=False,
        gc_freeze_when_ready=False,  # a test process builds many apps: freeze none of them
        # One actor per lane, so the order of outcomes is the order of the records.
        deliver_concurrency_high=1,
        deliver_concurrency_normal=1,
        deliver_concurrency_low=1,
        # The test process's own CPU use must not decide when a delivery or request is taken.
        deliver_cpu_ceiling_low=0.0,
        deliver_cpu_ceiling_normal=0.0,
        normal_requests_cpu_ceiling=0.0,
        # Most tests put normal requests on the intake and read what resolving them produced;
        # the pass-on to notification-requests.normal has its own tests (test_urgent_first.py).
        normal_requests_wait=False,
    )
    base.update(overrides)
    return Settings(**base)


@asynccontextmanager
async def webhook_pipeline(
    tmp_path: Path, **overrides: Any
) -> AsyncIterator[tuple[Pipeline, WebhookSandbox]]:
    """A pipeline whose webhook and in-app deliveries go to a running webhook sandbox."""
    webhook = WebhookSandbox()
    await webhook.start()
    built = build_app(
        make_settings(tmp_path, **overrides, **webhook.settings_overrides()),
        topics_for=channel_topics,
    )
    built.app.finalize()
    try:
        yield built, webhook
    finally:
        await built.providers.on_stop()
        await webhook.stop()


@pytest.fixture
async def pipeline(tmp_path: Path) -> AsyncIterator[Pipeline]:
    built = build_app(make_settings(tmp_path), topics_for=channel_topics)
    built.app.finalize()
    yield built
