"""The resolve (intake) and control agents under test_context(): tables in memory, outputs
captured on in-memory channels."""

from __future__ import annotations

from typing import Any

import orjson

from app import Pipeline
from tables import contacts, devices, preferences
from tests.functional.conftest import sent, values

KIND = "x-control-kind"


async def control(pipeline: Pipeline, kind: str, record: dict[str, Any]) -> None:
    async with pipeline.agents["control"].test_context() as agent:
        await agent.put(
            orjson.dumps(record), key=record["user_id"].encode(), headers={KIND: kind.encode()}
        )


async def request(pipeline: Pipeline, *records: dict[str, Any] | bytes) -> None:
    async with pipeline.agents["resolve"].test_context() as agent:
        for record in records:
            raw = record if isinstance(record, bytes) else orjson.dumps(record)
            await agent.put(raw, key=b"u1")


def req(nid: str = "n1", **kw: Any) -> dict[str, Any]:
    return {"notification_id": nid, "user_id": "u1", "title": "Hi", "body": "there", **kw}


async def setup_user(pipeline: Pipeline) -> None:
    await control(pipeline, "user-contacts", {"user_id": "u1", "email": "u1@example.com"})
    await control(
        pipeline, "device-registrations", {"user_id": "u1", "token": "a" * 64, "platform": "ios"}
    )
    await control(
        pipeline, "user-preferences", {"user_id": "u1", "channels": {"sms": False, "in_app": False}}
    )


async def test_control_records_fill_the_tables(pipeline: Pipeline) -> None:
    await setup_user(pipeline)
    t = pipeline.tables
    assert contacts.get(t.contacts, "u1") == {"email": "u1@example.com"}
    assert devices.tokens(t.devices, "u1") == {"a" * 64: "ios"}
    prefs = preferences.get(t.preferences, "u1")
    assert prefs is not None and not prefs.allows_channel("sms")
    await control(
        pipeline,
        "device-registrations",
        {"user_id": "u1", "token": "a" * 64, "platform": "ios", "action": "unregister"},
    )
    assert devices.tokens(t.devices, "u1") == {}


async def test_bad_control_record_is_dead_lettered(pipeline: Pipeline) -> None:
    await control(pipeline, "user-contacts", {"user_id": "u1", "phone": "555"})
    [dead] = sent(pipeline.topics.control_dlq)
    assert b"E.164" in dict(dead.headers)["x-dlq-reason"]


async def test_accepted_request_fans_out_to_lanes(pipeline: Pipeline) -> None:
    await setup_user(pipeline)
    await request(pipeline, req(priority="high"))
    push = values(pipeline.topics.deliveries[("push", "high")])
    email = values(pipeline.topics.deliveries[("email", "high")])
    assert [d["address"] for d in push] == ["a" * 64]
    assert [d["address"] for d in email] == ["u1@example.com"]
    assert not values(pipeline.topics.deliveries[("sms", "high")])  # preference: off
    [event] = values(pipeline.topics.delivery_events)
    assert (event["status"], event["deliveries"]) == ("accepted", 2)


async def test_low_priority_requests_are_passed_on_and_resolved_by_their_own_agent(
    pipeline: Pipeline,
) -> None:
    await setup_user(pipeline)
    campaign = orjson.dumps(req("campaign", priority="low"))
    await request(pipeline, campaign, req("urgent", priority="high"))

    # The intake resolved the urgent request and only passed the campaign's on, untouched.
    [passed] = sent(pipeline.topics.requests_low)
    assert (passed.key, passed.value) == (b"u1", campaign)
    assert [e["notification_id"] for e in values(pipeline.topics.delivery_events)] == ["urgent"]
    assert not values(pipeline.topics.deliveries[("push", "low")])

    async with pipeline.agents["resolve_low"].test_context() as agent:
        await agent.put(passed.value, key=passed.key)
    [pushed] = values(pipeline.topics.deliveries[("push", "low")])
    assert pushed["notification_id"] == "campaign"
    events = [(e["notification_id"], e["status"]) for e in values(pipeline.topics.delivery_events)]
    assert events == [("urgent", "accepted"), ("campaign", "accepted")]


async def test_duplicate_idempotency_key_is_rejected(pipeline: Pipeline) -> None:
    await setup_user(pipeline)
    await request(pipeline, req("n1", idempotency_key="k"), req("n2", idempotency_key="k"))
    statuses = [
        (e["notification_id"], e["status"], e.get("reason"))
        for e in values(pipeline.topics.delivery_events)
    ]
    assert statuses == [("n1", "accepted", None), ("n2", "rejected", "duplicate")]


async def test_rate_window_rejects_past_the_limit(pipeline: Pipeline) -> None:
    await setup_user(pipeline)  # limit is 3 in the functional settings
    await request(pipeline, *[req(f"n{i}") for i in range(5)])
    reasons = [e.get("reason") for e in values(pipeline.topics.delivery_events)]
    assert reasons == [None, None, None, "rate_limited", "rate_limited"]


async def test_malformed_requests_go_to_the_dlq_and_the_stream_moves_on(pipeline: Pipeline) -> None:
    await setup_user(pipeline)
    await request(pipeline, b"{nope", req(priority="urgent"), req("ok"))
    reasons = [dict(e.headers)["x-dlq-reason"] for e in sent(pipeline.topics.requests_dlq)]
    assert reasons[0].startswith(b"malformed JSON")
    assert reasons[1] == b"Invalid enum value 'urgent' - at `$.priority`"
    assert [e["notification_id"] for e in values(pipeline.topics.delivery_events)] == ["ok"]


async def test_user_without_addresses_is_rejected(pipeline: Pipeline) -> None:
    await control(pipeline, "user-preferences", {"user_id": "u1", "channels": {"in_app": False}})
    await request(pipeline, req())
    [event] = values(pipeline.topics.delivery_events)
    assert (event["status"], event["reason"]) == ("rejected", "no_reachable_address")
