"""End to end on the embedded broker: plain aiokafka producers -> worker process -> sandboxes."""

from __future__ import annotations

import asyncio
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from providers.sandboxes.stack import SandboxStack
from scripts.worker_process import WorkerProcess
from scripts.workload import (
    RequestMix,
    User,
    json_records,
    make_users,
    produce,
    read_topic,
    setup_users,
    wait_for_users,
)
from streams import topics
from streams.partitioning import partition_for
from tests.integration.pipeline_harness import (
    PARTITIONS,
    delivery_events,
    expected_deliveries,
    lane_positions,
    received_pairs,
)

pytestmark = pytest.mark.integration


def load_users(broker: str, worker: WorkerProcess, users: list[User]) -> None:
    asyncio.run(setup_users(broker, users))
    asyncio.run(wait_for_users(worker.web_url, users))


def rejected(events: list[dict[str, Any]]) -> dict[str, str]:
    return {e["notification_id"]: e["reason"] for e in events if e["status"] == "rejected"}


def test_thousand_requests_arrive_exactly_once_on_allowed_channels(
    broker: str, sandboxes: SandboxStack, workers: Callable[..., WorkerProcess]
) -> None:
    users = make_users(200, sandboxes.webhook.url("/"))
    requests = RequestMix(users).make(1000)
    worker = workers(rate_limit_per_user=100)
    load_users(broker, worker, users)
    asyncio.run(produce(broker, json_records(topics.REQUESTS, requests)))

    inapp_url = sandboxes.webhook.url("/inbox")
    expected = expected_deliveries(requests, {u.user_id: u for u in users}, inapp_url)
    total = sum(expected.values())
    sandboxes.wait_for(lambda got: len(got) >= total, timeout=180)
    # Every delivery has reported back: nothing else can still be on its way.
    delivery_events(broker, lambda evs: sum(e["status"] == "sent" for e in evs) >= total)

    got = received_pairs(sandboxes.received())
    assert got == expected
    assert {r["sandbox"] for r in sandboxes.received()} == {"apns", "fcm", "smtp", "sms", "webhook"}
    # The in-app ones are also in each user's inbox, newest first (the worker's web view).
    inapp = {nid for nid, address in expected if address == "/inbox"}
    inapp_by_user = Counter(r["user_id"] for r in requests if r["notification_id"] in inapp)
    user_id, count = inapp_by_user.most_common(1)[0]
    with urllib.request.urlopen(f"{worker.web_url}/users/{user_id}/inbox/", timeout=10) as page:
        shown = orjson.loads(page.read())["messages"]
    assert len(shown) == min(count, 50)
    assert [m["at"] for m in shown] == sorted((m["at"] for m in shown), reverse=True)


def notification_status(
    worker: WorkerProcess, notification_id: str, until: Callable[[dict[str, Any]], Any]
) -> dict[str, Any]:
    """The worker's status view for a notification, once ``until`` holds (or after 30 s)."""
    deadline = time.monotonic() + 30
    while True:
        try:
            url = f"{worker.web_url}/notifications/{notification_id}/"
            with urllib.request.urlopen(url, timeout=10) as page:
                found: dict[str, Any] = orjson.loads(page.read())
        except urllib.error.HTTPError:  # 404 until the status agent has seen an event
            found = {}
        if until(found) or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def test_same_idempotency_key_twice_is_delivered_once(
    broker: str, sandboxes: SandboxStack, workers: Callable[..., WorkerProcess]
) -> None:
    [user] = make_users(1, sandboxes.webhook.url("/"), opt_out_rate=0)
    request = {
        "notification_id": "reset-1",
        "idempotency_key": "pw-reset-77",
        "user_id": user.user_id,
        "channels": ["email"],
        "priority": "high",
        "category": "security",
        "title": "Reset",
        "body": "Your code is 123456",
    }
    worker = workers()
    load_users(broker, worker, [user])
    asyncio.run(produce(broker, json_records(topics.REQUESTS, [request, request])))

    events = delivery_events(
        broker,
        lambda evs: (
            any(e["status"] == "rejected" for e in evs) and any(e["status"] == "sent" for e in evs)
        ),
    )
    statuses = Counter(e["status"] for e in events)
    assert statuses == Counter({"accepted": 1, "sent": 1, "rejected": 1})
    assert rejected(events) == {"reset-1": "duplicate"}
    assert received_pairs(sandboxes.received()) == Counter({("reset-1", user.email): 1})
    # The repeat is counted on the notification's status, and does not undo its acceptance.
    status = notification_status(worker, "reset-1", until=lambda s: s.get("repeats_rejected"))
    assert (status["status"], status["repeats_rejected"]) == ("sent", 1)


def test_user_over_the_rate_window_gets_only_the_limit(
    broker: str, sandboxes: SandboxStack, workers: Callable[..., WorkerProcess]
) -> None:
    [user] = make_users(1, sandboxes.webhook.url("/"), opt_out_rate=0)
    requests = [
        {
            "notification_id": f"promo-{i}",
            "user_id": user.user_id,
            "channels": ["in_app"],
            "title": "Deal",
            "body": f"Deal {i}",
        }
        for i in range(8)
    ]
    load_users(broker, workers(rate_limit_per_user=5), [user])
    asyncio.run(produce(broker, json_records(topics.REQUESTS, requests)))

    events = delivery_events(
        broker,
        lambda evs: sum(e["status"] in ("sent", "rejected") for e in evs) >= 8,
    )
    assert rejected(events) == {f"promo-{i}": "rate_limited" for i in (5, 6, 7)}
    assert sorted(n for n, _ in received_pairs(sandboxes.received())) == [
        f"promo-{i}" for i in range(5)
    ]


def test_malformed_requests_are_dead_lettered_and_the_partition_keeps_moving(
    broker: str, sandboxes: SandboxStack, workers: Callable[..., WorkerProcess]
) -> None:
    [user] = make_users(1, sandboxes.webhook.url("/"), opt_out_rate=0)
    key = user.user_id.encode()

    def valid(nid: str) -> bytes:
        return orjson.dumps(
            {
                "notification_id": nid,
                "user_id": user.user_id,
                "channels": ["email"],
                "title": "t",
                "body": "b",
            }
        )

    records = [
        b'{"notification_id": "broken", ',  # truncated JSON
        valid("first"),
        orjson.dumps({"notification_id": "no-user", "title": "t", "body": "b"}),
        b"\xff\xfe not even utf-8",
        valid("second"),
    ]
    load_users(broker, workers(), [user])
    # One key: every record lands on the same partition, in this order.
    asyncio.run(produce(broker, [(topics.REQUESTS, key, value) for value in records]))

    dead = asyncio.run(read_topic(broker, topics.REQUESTS_DLQ, lambda ms: len(ms) >= 3))
    reasons = [dict(m.headers)["x-dlq-reason"].decode() for m in dead]
    assert [m.value for m in dead] == [records[0], records[2], records[3]]  # bytes kept as sent
    assert reasons[0].startswith("malformed JSON")
    assert reasons[1] == "'user_id' is required and must be a non-empty string"
    assert reasons[2].startswith("malformed JSON")
    sandboxes.wait_for(lambda got: len(got) >= 2)
    assert received_pairs(sandboxes.received()) == Counter(
        {("first", user.email): 1, ("second", user.email): 1}
    )


@pytest.mark.parametrize(
    "topic,priority",
    [
        (topics.REQUESTS_LOW, "low"),
        # Urgent producers write to the high topic, which no burst shares; normal ones may
        # write to the normal topic and skip the intake's pass-on hop.
        (topics.REQUESTS_HIGH, "high"),
        (topics.REQUESTS_NORMAL, "normal"),
    ],
)
def test_producers_may_write_requests_straight_to_their_priority_topic(
    broker: str,
    sandboxes: SandboxStack,
    workers: Callable[..., WorkerProcess],
    topic: str,
    priority: str,
) -> None:
    [user] = make_users(1, sandboxes.webhook.url("/"), opt_out_rate=0)
    home = partition_for(user.user_id, PARTITIONS)
    elsewhere = (home + 1) % PARTITIONS  # as a producer with another partitioner would
    load_users(broker, workers(), [user])

    def digest(nid: str) -> bytes:
        request = {"notification_id": nid, "user_id": user.user_id, "priority": priority}
        return orjson.dumps({**request, "channels": ["email"], "title": "t", "body": "b"})

    async def send() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=broker)
        await producer.start()
        try:
            for nid, partition in (("at-home", home), ("elsewhere", elsewhere)):
                await producer.send_and_wait(
                    topic, digest(nid), key=user.user_id.encode(), partition=partition
                )
        finally:
            await producer.stop()

    asyncio.run(send())
    sandboxes.wait_for(lambda got: len(got) >= 2)
    assert received_pairs(sandboxes.received()) == Counter(
        {("at-home", user.email): 1, ("elsewhere", user.email): 1}
    )


@pytest.mark.parametrize("keep_local_state", [True, False], ids=["rocksdb-kept", "rebuilt"])
def test_worker_restarted_mid_run_resumes_with_tables_intact(
    broker: str,
    sandboxes: SandboxStack,
    workers: Callable[..., WorkerProcess],
    keep_local_state: bool,
    tmp_path: Any,
) -> None:
    users = make_users(20, sandboxes.webhook.url("/"))
    by_id = {u.user_id: u for u in users}
    mix = RequestMix(users, prefix="before")
    before = mix.make(200)
    first = workers(rate_limit_per_user=100)
    load_users(broker, first, users)
    asyncio.run(produce(broker, json_records(topics.REQUESTS, before)))
    inapp_url = sandboxes.webhook.url("/inbox")
    expected = expected_deliveries(before, by_id, inapp_url)
    # Crash (SIGKILL: no commit, no flush) once part of the run has gone out.
    sandboxes.wait_for(lambda got: len(got) >= sum(expected.values()) // 3)
    first.kill()

    data_dir = tmp_path / ("worker-data" if keep_local_state else "fresh-data")
    workers(rate_limit_per_user=100, data_dir=data_dir)
    after = RequestMix(users, prefix="after", seed=5).make(50)
    # A new notification id carrying the idempotency key of a request sent before the crash.
    replayed = {
        **before[0],
        "notification_id": "again",
        "idempotency_key": before[0]["notification_id"],
    }
    asyncio.run(produce(broker, json_records(topics.REQUESTS, [*after, replayed])))

    expected += expected_deliveries(after, by_id, inapp_url)
    total = sum(expected.values())
    try:
        sandboxes.wait_for(lambda got: set(received_pairs(got)) >= set(expected), timeout=120)
    except TimeoutError:
        missing = set(expected) - set(received_pairs(sandboxes.received()))
        nids = {nid for nid, _ in missing}
        trail = [
            e
            for e in delivery_events(broker, lambda evs: False, timeout=5)
            if e["notification_id"] in nids
        ]
        statuses = Counter((e["status"], e.get("channel"), e.get("reason")) for e in trail)
        positions = lane_positions(broker, nids)
        raise AssertionError(
            f"never delivered: {sorted(missing)[:8]} ({len(missing)} in all); "
            f"their events: {statuses}; on the lanes: {positions}"
        ) from None
    events = delivery_events(broker, lambda evs: "again" in rejected(evs))

    got = received_pairs(sandboxes.received())
    # Nothing lost, and the "after" requests reached the devices and addresses registered
    # before the crash: preferences, devices and contacts came back. The ledger and the replay
    # rule keep re-sends to what a crash between a provider's answer and the ledger write causes.
    assert set(got) == set(expected)
    duplicates = sum(got.values()) - total
    print(f"duplicate sends after SIGKILL: {duplicates} of {total}")
    # A crash can re-send only what the first worker had sent and whose ledger write had not
    # reached the broker; after the restart the ledger stops any further copy: so duplicates are
    # of requests produced before the crash, and each went out at most twice. (Arrival times
    # cannot tell: bytes a killed worker left in its socket still reach the sandbox later.)
    for (nid, address), count in got.items():
        assert count == 1 or (count == 2 and nid.startswith("before-")), (nid, address, count)
    # The dedup table survived the crash: the old key is still claimed.
    assert rejected(events)["again"] == "duplicate"


def test_two_workers_share_the_partitions_and_answer_for_each_other(
    broker: str, sandboxes: SandboxStack, workers: Callable[..., WorkerProcess], tmp_path: Any
) -> None:
    users = make_users(60, sandboxes.webhook.url("/"), first=7000)
    requests = RequestMix(users, prefix="pair").make(300)
    first = workers(rate_limit_per_user=100)
    second = workers(rate_limit_per_user=100, data_dir=tmp_path / "second-data")
    asyncio.run(setup_users(broker, users))
    # Each worker owns half the partitions; the web views route every user to its owner, so
    # asking either worker about every user proves both the routing and the split.
    asyncio.run(wait_for_users(first.web_url, users))
    asyncio.run(wait_for_users(second.web_url, users))
    asyncio.run(produce(broker, json_records(topics.REQUESTS, requests)))

    expected = expected_deliveries(
        requests, {u.user_id: u for u in users}, sandboxes.webhook.url("/inbox")
    )
    sandboxes.wait_for(lambda got: len(got) >= sum(expected.values()), timeout=120)
    delivery_events(
        broker, lambda evs: sum(e["status"] == "sent" for e in evs) >= sum(expected.values())
    )
    assert received_pairs(sandboxes.received()) == expected
    for worker in (first, second):
        assert "Worker ready" in worker.log_text()
