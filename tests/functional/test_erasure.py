"""Erasure and unsubscribe through the control, intake, lane and status agents (in memory)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import msgspec
import orjson
import pytest

from app import Pipeline
from providers.sandboxes.webhook import WebhookSandbox
from streams.deliveries import Delivery, DeliveryEvent
from tables import contacts, devices, erasures, inbox, preferences, rate_windows, status
from tables.user_attributes import get as attributes_of
from tests.functional.conftest import (
    eventually,
    sent,
    values,
    webhook_pipeline,
)
from tests.functional.test_resolve_agent import control, req, request, setup_user


async def erase(pipeline: Pipeline, user_id: str = "u1", **fields: Any) -> None:
    await control(pipeline, "user-erasures", {"user_id": user_id, **fields})


async def apply_markers(pipeline: Pipeline) -> None:
    """What the ``erased-users`` agent does on every worker: the control agent's markers into
    the GlobalTable."""
    async with pipeline.agents["erased_users"].test_context() as agent:
        for event in sent(pipeline.topics.erased_users):
            await agent.put(event.value, key=event.key)
    await eventually(
        lambda: all(
            erasures.erased_at(pipeline.tables.erased_users, orjson.loads(e.value)["user_id"])
            is not None
            for e in sent(pipeline.topics.erased_users)
        )
    )


async def test_an_erasure_deletes_the_users_values_and_says_so(pipeline: Pipeline) -> None:
    await setup_user(pipeline)
    await control(pipeline, "user-attributes", {"user_id": "u1", "attributes": {"plan": "pro"}})
    await control(pipeline, "user-contacts", {"user_id": "u2", "email": "u2@example.com"})
    await request(pipeline, req("n1"))
    t = pipeline.tables
    assert rate_windows.recent(t.rate_windows, "u1", time.time(), 3600)
    assert attributes_of(t.user_attributes, "u1") == {"plan": "pro"}

    await erase(pipeline, requested_by="key-7")

    assert contacts.get(t.contacts, "u1") == {}
    assert devices.tokens(t.devices, "u1") == {}
    assert preferences.get(t.preferences, "u1") is None
    assert attributes_of(t.user_attributes, "u1") == {}
    assert rate_windows.recent(t.rate_windows, "u1", time.time(), 3600) == []
    assert not any(str(key).startswith("u1#") for key in t.dedup)  # every dedup bucket
    assert contacts.get(t.contacts, "u2") == {"email": "u2@example.com"}  # others stay
    # A tombstone under the user's key on each control topic, for compaction.
    for channel in pipeline.topics.user_data_control:
        [tombstone] = sent(channel)
        assert (tombstone.key, tombstone.value) == (b"u1", None)
    [marker] = values(pipeline.topics.erased_users)
    assert marker["user_id"] == "u1" and marker["erased_at"] > 0
    erased = [e for e in values(pipeline.topics.delivery_events) if e["status"] == "erased"]
    assert [e["user_id"] for e in erased] == ["u1"]  # one per partition (1 here)
    [audit] = values(pipeline.topics.audit_events)
    assert (audit["action"], audit["user_id"]) == ("user_erased", "u1")
    details = audit["details"]
    assert details["address.email"] == "u***@example.com"  # masked, never the address
    assert "u1@example.com" not in orjson.dumps(audit).decode()
    assert details["deleted.contacts"] == "1" and details["requested_by"] == "key-7"


async def test_an_erasure_read_twice_does_the_same(pipeline: Pipeline) -> None:
    await setup_user(pipeline)
    await erase(pipeline)
    await erase(pipeline)  # a restart read it again
    assert contacts.get(pipeline.tables.contacts, "u1") == {}
    assert len(sent(pipeline.topics.audit_events)) == 2
    assert not sent(pipeline.topics.control_dlq)


async def test_a_request_made_before_the_erasure_is_refused(pipeline: Pipeline) -> None:
    await setup_user(pipeline)
    await erase(pipeline, requested_at=time.time())
    await apply_markers(pipeline)
    # Back from a quiet-hours hold, or still in a request topic: made before the erasure.
    await request(pipeline, req("held", created_at=time.time() - 60))
    [event] = [e for e in values(pipeline.topics.delivery_events) if e.get("notification_id")]
    assert (event["status"], event["reason"]) == ("rejected", "user_erased")
    # Made after it (the user came back): resolved as anyone's; nothing is known of them.
    await request(pipeline, req("later", created_at=time.time() + 60))
    later = values(pipeline.topics.delivery_events)[-1]
    assert (later["notification_id"], later["status"]) == ("later", "accepted")  # in-app only
    assert all(
        not sent(lane) for key, lane in pipeline.topics.deliveries.items() if key[0] != "in_app"
    )


@pytest.fixture
async def delivering(tmp_path: Path) -> AsyncIterator[tuple[Pipeline, WebhookSandbox]]:
    async with webhook_pipeline(tmp_path) as built:
        yield built


def delivery(delivery_id: str, url: str, user_id: str, requested_at: float) -> Delivery:
    return Delivery(
        delivery_id=delivery_id,
        notification_id=delivery_id.split(":")[0],
        user_id=user_id,
        channel="webhook",
        address=url,
        title="Hi",
        body="there",
        priority="high",
        requested_at=requested_at,
    )


async def test_the_lanes_never_send_an_erased_users_pending_deliveries(
    delivering: tuple[Pipeline, WebhookSandbox],
) -> None:
    pipeline, webhook = delivering
    erased_at = time.time()
    await erase(pipeline, requested_at=erased_at)
    await apply_markers(pipeline)
    pending = [
        # Already in a lane, or back from a retry tier; under the user key or a hot user's
        # salted sub-key (the marker is the user's, whatever the lane key).
        (b"u1", delivery("n1:webhook:a", webhook.url("/u1"), "u1", erased_at - 5)),
        (b"u1#3", delivery("n2:webhook:a", webhook.url("/u1"), "u1", erased_at - 1)),
        (b"u2", delivery("n3:webhook:a", webhook.url("/u2"), "u2", erased_at - 5)),
    ]
    async with pipeline.agents["deliver_high"].test_context() as agent:
        for key, record in pending:
            await agent.put(record.to_json(), key=key)
        await eventually(lambda: len(sent(pipeline.topics.delivery_events)) == 4)
    assert [r["delivery_id"] for r in webhook.received] == ["n3:webhook:a"]
    outcomes = {
        e["delivery_id"]: (e["status"], e.get("reason"))
        for e in values(pipeline.topics.delivery_events)
        if e.get("delivery_id")
    }
    assert outcomes["n1:webhook:a"] == ("cancelled", "user_erased")
    assert outcomes["n2:webhook:a"] == ("cancelled", "user_erased")
    assert outcomes["n3:webhook:a"][0] == "sent"


async def test_a_send_in_flight_at_the_erasure_stores_nothing_of_the_user_after_it(
    tmp_path: Path,
) -> None:
    """The lane checked the user before sending; the erasure lands while the provider still
    holds the send. Its answer then stores nothing: no inbox message for the in-app one, no
    suppression record (with the address) for the one whose endpoint is gone."""
    async with webhook_pipeline(tmp_path, deliver_concurrency_high=2) as (pipeline, webhook):
        await _erase_while_sending(pipeline, webhook)


async def _erase_while_sending(pipeline: Pipeline, webhook: WebhookSandbox) -> None:
    for path in ("/inbox", "/gone"):
        webhook.plan.update(address=path, delay_seconds=0.5)
    webhook.plan.update(address="/gone", fault=410)
    requested_at = time.time() - 5
    in_app = msgspec.structs.replace(
        delivery("n1:in_app:a", webhook.url("/inbox"), "u1", requested_at), channel="in_app"
    )
    gone = delivery("n2:webhook:a", webhook.url("/gone"), "u1", requested_at)
    async with pipeline.agents["deliver_high"].test_context() as agent:
        for record in (in_app, gone):
            await agent.put(record.to_json(), key=b"u1")
        await asyncio.sleep(0.1)  # both sends are with the sandbox now
        await erase(pipeline, requested_at=time.time())
        await apply_markers(pipeline)
        await eventually(lambda: len(sent(pipeline.topics.delivery_events)) >= 2, timeout=5)
    outcomes = {
        e["delivery_id"]: e["status"]
        for e in values(pipeline.topics.delivery_events)
        if e.get("delivery_id")
    }
    assert outcomes == {"n1:in_app:a": "sent", "n2:webhook:a": "failed"}
    assert not [s.value for s in sent(pipeline.topics.suppressions) if s.value is not None]
    assert inbox.entries(pipeline.tables.inbox, "u1") == []


async def test_the_history_is_anonymised_and_stays_so(pipeline: Pipeline) -> None:
    before = [
        DeliveryEvent("n1", "u1", "accepted", at=1.0, deliveries=2, requested_at=1.0),
        DeliveryEvent(
            "n1",
            "u1",
            "failed",
            at=2.0,
            delivery_id="n1:email:abc",
            channel="email",
            reason="smtp: 550 u1@example.com unknown",
        ),
        DeliveryEvent("n2", "u2", "accepted", at=1.0, deliveries=1, requested_at=1.0),
    ]
    async with pipeline.agents["status"].test_context() as agent:
        for event in before:
            await agent.put(event.to_json(), key=event.notification_id.encode())
        await erase(pipeline, requested_at=10.0)
        await apply_markers(pipeline)
        for produced in sent(pipeline.topics.delivery_events):
            await agent.put(produced.value, key=produced.key, partition=0)
        late = [
            # Events still on their way: for a notification seen before, and for one not yet.
            DeliveryEvent("n1", "u1", "sent", at=11.0, delivery_id="n1:push:x", channel="push"),
            DeliveryEvent("n5", "u1", "accepted", at=11.0, deliveries=1, requested_at=5.0),
        ]
        for event in late:
            await agent.put(event.to_json(), key=event.notification_id.encode())
        await eventually(lambda: status.get(pipeline.tables.status, "n5") is not None)
    n1 = status.get(pipeline.tables.status, "n1")
    assert n1 is not None and n1["user_id"] == status.ERASED_USER
    assert "u1" not in orjson.dumps(n1).decode()  # no user id, no address, no address digest
    assert sorted(n1["deliveries"]) == ["email-0"]
    assert n1["deliveries"]["email-0"]["status"] == "failed"
    assert "reason" not in n1["deliveries"]["email-0"]
    n5 = status.get(pipeline.tables.status, "n5")
    assert n5 is not None and n5["user_id"] == status.ERASED_USER
    n2 = status.get(pipeline.tables.status, "n2")
    assert n2 is not None and n2["user_id"] == "u2"


async def test_an_unsubscribe_mutes_one_category_in_the_preferences_of_that_moment(
    pipeline: Pipeline,
) -> None:
    await setup_user(pipeline)  # sms and in_app off
    await control(pipeline, "user-unsubscribes", {"user_id": "u1", "category": "promo"})
    await control(pipeline, "user-unsubscribes", {"user_id": "u1", "category": "promo"})
    await control(pipeline, "user-unsubscribes", {"user_id": "u1", "channel": "push"})
    prefs = preferences.get(pipeline.tables.preferences, "u1")
    assert prefs is not None
    assert prefs.muted_categories == ("promo",)  # once, however often it is asked
    assert dict(prefs.channels) == {"sms": False, "in_app": False, "push": False}
    audits = values(pipeline.topics.audit_events)
    assert [a["details"].get("category") or a["details"]["channel"] for a in audits] == [
        "promo",
        "promo",
        "push",
    ]
    assert audits[0]["details"]["address.email"] == "u***@example.com"
    await request(pipeline, req("p1", category="promo"), req("o1", category="orders"))
    outcomes = {e["notification_id"]: e for e in values(pipeline.topics.delivery_events)}
    assert outcomes["p1"]["reason"] == "category_muted"
    assert outcomes["o1"]["status"] == "accepted"


async def test_an_unsubscribe_must_name_one_thing(pipeline: Pipeline) -> None:
    await control(pipeline, "user-unsubscribes", {"user_id": "u1"})
    await control(
        pipeline, "user-unsubscribes", {"user_id": "u1", "category": "a", "channel": "email"}
    )
    assert len(sent(pipeline.topics.control_dlq)) == 2
    assert inbox.messages(pipeline.tables.inbox, "u1") == []
