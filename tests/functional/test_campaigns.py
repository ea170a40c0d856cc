"""The campaign agents under test_context(): a scan over the attribute table, its progress,
cancel, a scan handed over mid-way and resumed, and the outcome counts the status agent keeps."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson

from app import Pipeline
from tables import campaign_progress, user_attributes
from tests.functional.conftest import eventually, sent, values

KIND = "x-control-kind"
USERS = 60


async def control(pipeline: Pipeline, kind: str, record: dict[str, Any]) -> None:
    async with pipeline.agents["control"].test_context() as agent:
        await agent.put(
            orjson.dumps(record), key=record["user_id"].encode(), headers={KIND: kind.encode()}
        )


async def load_users(pipeline: Pipeline) -> set[str]:
    """USERS users, half of them in the US; of those every fifth muted marketing and every
    seventh switched push off. Returns who should get the campaign."""
    expected = set()
    for i in range(USERS):
        uid = f"u{i:03d}"
        country = "US" if i % 2 == 0 else "DE"
        await control(
            pipeline,
            "user-attributes",
            {"user_id": uid, "attributes": {"country": country, "name": f"N{i}"}},
        )
        muted = ["marketing"] if i % 5 == 0 else []
        channels = {"push": i % 7 != 0}
        await control(
            pipeline,
            "user-preferences",
            {"user_id": uid, "channels": channels, "muted_categories": muted},
        )
        if country == "US" and not muted and channels["push"]:
            expected.add(uid)
    return expected


def start(campaign_id: str = "c1", **overrides: Any) -> bytes:
    record = {
        "campaign_id": campaign_id,
        "segment": 'country == "US"',
        "title": "Hello {name}",
        "body": "News",
        "channels": ["push"],
        "throttle_per_second": 100_000,
        **overrides,
    }
    return orjson.dumps(record)


def progress(pipeline: Pipeline, campaign_id: str = "c1") -> Any:
    return campaign_progress.get(pipeline.tables.campaign_progress, campaign_id, 0)


def requested(pipeline: Pipeline) -> list[str]:
    return [r["user_id"] for r in values(pipeline.topics.requests_low)]


async def test_a_campaign_requests_each_matching_opted_in_user_once(pipeline: Pipeline) -> None:
    expected = await load_users(pipeline)
    async with pipeline.agents["scan_campaigns"].test_context() as agent:
        await agent.put(start(), key=b"c1")
        await eventually(lambda: (progress(pipeline) or {}).get("state") == "done")
    assert sorted(requested(pipeline)) == sorted(expected)
    first = values(pipeline.topics.requests_low)[0]
    assert first["notification_id"] == first["idempotency_key"] == f"campaign:c1:{first['user_id']}"
    assert first["title"] == f"Hello N{int(first['user_id'][1:])}"
    final = progress(pipeline)
    assert (final["scanned"], final["targeted"], final["enqueued"]) == (60, 30, len(expected))
    # US users are the even ones: muted every fifth (0, 10, ...), push off every seventh.
    assert final["skipped"] == {"category_muted": 6, "no_channel_allowed": 4}
    assert final["cursor"] == "u059"


async def test_a_copy_read_again_after_the_end_sends_nothing(pipeline: Pipeline) -> None:
    await load_users(pipeline)
    async with pipeline.agents["scan_campaigns"].test_context() as agent:
        await agent.put(start(), key=b"c1")
        await eventually(lambda: (progress(pipeline) or {}).get("state") == "done")
        before = len(requested(pipeline))
        await agent.put(start(), key=b"c1")
        await asyncio.sleep(0.2)
    assert len(requested(pipeline)) == before


async def test_a_scan_handed_over_midway_resumes_from_its_cursor(pipeline: Pipeline) -> None:
    expected = await load_users(pipeline)
    async with pipeline.agents["scan_campaigns"].test_context() as agent:
        # 10/s: about 2 s for the 20 requests, a cursor written every 0.5 s meanwhile.
        await agent.put(start(throttle_per_second=10), key=b"c1")
        await eventually(lambda: (progress(pipeline) or {}).get("enqueued", 0) >= 8)
        [task] = [t for t in asyncio.all_tasks() if t.get_name() == "campaign-scan:c1:0"]
        task.cancel()  # what a rebalance does to the scans of revoked partitions
        await asyncio.gather(task, return_exceptions=True)
        saved = progress(pipeline)
        sent_before = requested(pipeline)
        assert saved["state"] == "running" and saved["cursor"] is not None
        # The partition's next owner reads the campaign record again.
        await agent.put(start(throttle_per_second=10), key=b"c1")
        await eventually(lambda: (progress(pipeline) or {}).get("state") == "done", timeout=15)
    resent = requested(pipeline)[len(sent_before) :]
    assert set(sent_before) | set(resent) == expected
    # Only the users after the saved cursor were requested again: none before it.
    assert all(uid > saved["cursor"] for uid in resent)
    assert len(sent_before) - saved["enqueued"] <= 6  # at most ~0.5 s of sends repeated
    final = progress(pipeline)  # counts as if it had never been interrupted
    assert (final["scanned"], final["targeted"], final["enqueued"]) == (60, 30, len(expected))


async def test_cancel_stops_a_running_scan_and_is_remembered(pipeline: Pipeline) -> None:
    await load_users(pipeline)
    async with pipeline.agents["scan_campaigns"].test_context() as agent:
        await agent.put(start(throttle_per_second=5), key=b"c1")
        await eventually(lambda: (progress(pipeline) or {}).get("enqueued", 0) >= 2)
        await agent.put(orjson.dumps({"campaign_id": "c1", "action": "cancel"}), key=b"c1")
        await eventually(lambda: progress(pipeline)["state"] == "cancelled")
        count = len(requested(pipeline))
        await agent.put(start(throttle_per_second=5), key=b"c1")  # read again: stays cancelled
        await asyncio.sleep(0.5)
    assert len(requested(pipeline)) == count < 20
    assert progress(pipeline)["cancel_requested"] is True


async def test_a_campaign_cancelled_before_its_start_time_never_sends(pipeline: Pipeline) -> None:
    await load_users(pipeline)
    later = start(start_at=4_000_000_000.0)
    async with pipeline.agents["scan_campaigns"].test_context() as agent:
        await agent.put(later, key=b"c1")
        await eventually(lambda: progress(pipeline) is not None)
        assert progress(pipeline)["state"] == "scheduled"
        await agent.put(orjson.dumps({"campaign_id": "c1", "action": "cancel"}), key=b"c1")
        await eventually(lambda: progress(pipeline)["state"] == "cancelled")
    assert requested(pipeline) == []


async def test_a_bad_segment_is_dead_lettered_with_where_it_is_wrong(pipeline: Pipeline) -> None:
    async with pipeline.agents["broadcast_campaigns"].test_context() as agent:
        await agent.put(start(segment='country == "US" and'), key=b"c1")
    [dead] = sent(pipeline.topics.campaigns_dlq)
    reason = dict(dead.headers)["x-dlq-reason"].decode()
    assert reason.startswith("segment: expected an attribute name") and "column 20" in reason
    assert sent(pipeline.topics.campaign_partitions) == []


async def test_a_campaign_is_copied_to_every_partition(pipeline: Pipeline) -> None:
    async with pipeline.agents["broadcast_campaigns"].test_context() as agent:
        await agent.put(start(), key=b"c1")
    copies = sent(pipeline.topics.campaign_partitions)
    assert [(c.key, c.message.partition) for c in copies] == [(b"c1", 0)]  # one partition here


async def test_attributes_merge_and_a_null_removes_one(pipeline: Pipeline) -> None:
    await control(pipeline, "user-attributes", {"user_id": "u1", "attributes": {"a": 1, "b": "x"}})
    await control(
        pipeline, "user-attributes", {"user_id": "u1", "attributes": {"a": None, "c": True}}
    )
    assert user_attributes.get(pipeline.tables.user_attributes, "u1") == {"b": "x", "c": True}


async def test_outcomes_count_each_notification_by_its_current_status(pipeline: Pipeline) -> None:
    def event(nid: str, status: str, **kw: Any) -> bytes:
        return orjson.dumps(
            {"notification_id": nid, "user_id": "u", "status": status, "at": 1.0, **kw}
        )

    a, b, c = "campaign:c1:a", "campaign:c1:b", "campaign:c1:c"
    async with pipeline.agents["status"].test_context() as agent:
        await agent.put(event(a, "accepted", deliveries=1), key=a.encode())
        await agent.put(event(a, "sent", delivery_id=f"{a}:push:1", channel="push"), key=a.encode())
        await agent.put(event(a, "sent", delivery_id=f"{a}:push:1", channel="push"), key=a.encode())
        await agent.put(event(a, "rejected", reason="duplicate"), key=a.encode())  # a re-scan
        await agent.put(event(b, "rejected", reason="rate_limited"), key=b.encode())
        await agent.put(event(c, "accepted", deliveries=1), key=c.encode())
        await agent.put(
            event(c, "failed", delivery_id=f"{c}:push:1", channel="push"), key=c.encode()
        )
        await agent.put(event("order-1", "rejected", reason="rate_limited"), key=b"order-1")
    counted = campaign_progress.outcomes(pipeline.tables.campaign_outcomes, "c1", 0)
    assert counted == {"delivered": 1, "failed": 1, "rejected": {"rate_limited": 1}}
