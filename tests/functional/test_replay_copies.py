"""A replay copy of a request (``x-replay-of``) stands for the record it copies in the dedup
check: resolved as a replay of it, where any other record with the key is a duplicate."""

from __future__ import annotations

import time
from typing import Any

import orjson

from agents.request_origin import REPLAY_OF_HEADER
from app import Pipeline
from tables import dedup
from tests.functional.conftest import values
from tests.functional.test_resolve_agent import req, setup_user


async def put(agent: Any, headers: dict[str, bytes] | None = None) -> None:
    # One test context per test: each numbers its records from offset 0 again.
    await agent.put(orjson.dumps(req("n1")), key=b"u1", headers=headers or {})


async def test_a_copy_of_the_claiming_record_is_fanned_out_again(pipeline: Pipeline) -> None:
    await setup_user(pipeline)
    async with pipeline.agents["resolve"].test_context() as agent:
        await put(agent)
        claim = dedup.claim_of(pipeline.tables.dedup, "u1", "n1", time.time())
        assert claim is not None
        await put(agent)  # the same request again, from another record: a duplicate
        await put(agent, {REPLAY_OF_HEADER: claim.encode()})  # the claiming record, replayed
    statuses = [(e["status"], e.get("reason")) for e in values(pipeline.topics.delivery_events)]
    assert statuses == [("accepted", None), ("rejected", "duplicate"), ("accepted", None)]
    lane = values(pipeline.topics.deliveries[("email", "normal")])
    assert len(lane) == 2 and lane[0]["delivery_id"] == lane[1]["delivery_id"]
    # The copy reopened nothing: the claim is still the original record's.
    assert dedup.claim_of(pipeline.tables.dedup, "u1", "n1", time.time()) == claim


async def test_a_copy_naming_another_record_is_still_a_duplicate(pipeline: Pipeline) -> None:
    await setup_user(pipeline)
    async with pipeline.agents["resolve"].test_context() as agent:
        await put(agent)
        await put(agent, {REPLAY_OF_HEADER: b"notification-requests:0:999"})
    statuses = [(e["status"], e.get("reason")) for e in values(pipeline.topics.delivery_events)]
    assert statuses == [("accepted", None), ("rejected", "duplicate")]
