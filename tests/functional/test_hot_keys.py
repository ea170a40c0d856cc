"""Hot keys in the agents under test_context(): a flagged user's deliveries go to the lanes
under salted keys (except the ones whose lane state is the user's), the intake counts what it
fans out, and a lane keys its ledger and retries by the key its record came under."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from app import Pipeline
from providers.sandboxes.webhook import WebhookSandbox
from streams.deliveries import Delivery
from streams.hot_keys import HotKeyFlag, flag_record
from streams.salting import unsalted_key
from tables import ledger
from tests.functional.conftest import (
    eventually,
    sent,
    values,
    webhook_pipeline,
)
from tests.functional.test_resolve_agent import control, req, request


@pytest.fixture
async def hot(tmp_path: Path) -> AsyncIterator[tuple[Pipeline, WebhookSandbox]]:
    async with webhook_pipeline(tmp_path, rate_limit_per_user=100) as built:
        yield built


def flag_user(pipeline: Pipeline, user_id: str) -> None:
    assert pipeline.hot_keys is not None
    now = time.time()
    flag = HotKeyFlag(user_id, 0, 50.0, 60.0, 10.0, now, now + 300)
    pipeline.hot_keys.board.apply_flag(*flag_record(flag), now)


async def test_a_flagged_users_deliveries_are_salted_and_counted(
    hot: tuple[Pipeline, WebhookSandbox],
) -> None:
    pipeline, _ = hot
    assert pipeline.hot_keys is not None
    await control(pipeline, "user-contacts", {"user_id": "u1", "email": "u1@example.com"})
    flag_user(pipeline, "u1")
    await request(pipeline, *(req(f"n{i}", channels=["email"]) for i in range(20)))
    await request(pipeline, req("in-app", channels=["in_app"]))
    await request(pipeline, req("with-fallback", channels=["email"], fallback_channel="sms"))

    lane = sent(pipeline.topics.deliveries[("email", "normal")])
    keys = [e.key.decode() for e in lane if isinstance(e.key, bytes)]
    assert len(keys) == len(lane) == 21
    salted, plain = keys[:20], keys[20:]
    assert all(unsalted_key(key) == "u1" and key != "u1" for key in salted)
    assert len(set(salted)) > 4  # spread over the sub-keys (8 of them)
    assert plain == ["u1"]  # a fallback counts on the user's partition: not salted
    [in_app] = sent(pipeline.topics.deliveries[("in_app", "normal")])
    assert in_app.key == b"u1"  # the inbox is the user's
    assert pipeline.hot_keys.counters.salted_deliveries >= 20
    # The intake counted every delivery it fanned out, on the request's partition.
    assert pipeline.hot_keys.detector.key_rate(0, "u1", time.time()) > 0


def hook(webhook: WebhookSandbox, path: str) -> Delivery:
    return Delivery(
        delivery_id=f"n1:webhook:{path}",
        notification_id="n1",
        user_id="u1",
        channel="webhook",
        address=webhook.url(path),
        title="t",
        body="b",
        priority="normal",
    )


async def test_a_lane_keys_its_ledger_and_retries_by_the_records_key(
    hot: tuple[Pipeline, WebhookSandbox],
) -> None:
    pipeline, webhook = hot
    webhook.faults["/flaky"] = 503
    good, flaky = hook(webhook, "/ok"), hook(webhook, "/flaky")
    events = pipeline.topics.delivery_events
    async with pipeline.agents["deliver_normal"].test_context() as agent:
        for record in (good, flaky, good):  # the good one read twice under its sub-key
            await agent.put(record.to_json(), key=b"u1#5")
        await eventually(lambda: len(sent(events)) == 3)

    assert [r["delivery_id"] for r in webhook.received] == [good.delivery_id]
    assert [e["status"] for e in values(events)] == ["sent", "retrying", "duplicate_suppressed"]
    now = time.time()
    assert ledger.sent_by(pipeline.tables.ledger, "u1#5", good.delivery_id, now) == "webhook"
    assert ledger.sent_by(pipeline.tables.ledger, "u1", good.delivery_id, now) is None
    [retry] = sent(pipeline.topics.retries[1.0])
    assert retry.key == b"u1#5"  # back to the same lane partition when it is due
