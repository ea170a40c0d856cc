"""One hot account among 999 others, on the embedded broker with two real workers.

The hot user sends 100 times what each other user sends (300 requests against 3, over 24 s,
webhook only). With 16 partitions that makes its partition carry ~2.3x the mean partition rate
(at 4 or 8 partitions the same user raises its partition only to 1.3x or 1.6x the mean, which by
the 2x rule is not a hot partition: its worker carries little more than the others). The workers
(each owning 8 partitions, each seeing only its own traffic) must share their partitions' rates
to know the cluster's mean, flag the user, spread its deliveries over at least four lane
partitions, of both workers, under salted keys,
and still send every accepted notification exactly once, keep every other user's deliveries on
one partition in request order, and hold the hot user to its rate window and dedup.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from providers.sandboxes.stack import SandboxStack
from scripts.worker_process import WorkerProcess
from scripts.workload import User, make_users, read_topic, setup_users, wait_for_users
from streams import topics
from streams.partitioning import partition_for
from streams.salting import unsalted_key
from tests.integration.pipeline_harness import (
    delivery_events,
    get_json,
    received_pairs,
    sandbox_address,
    wait_until,
)

pytestmark = pytest.mark.integration

PARTITIONS = 16
TICKS = 24  # seconds of traffic
ROUNDS = 3  # requests per ordinary user, 8 s apart
HOT_REQUESTS = 100 * ROUNDS  # of which DUPLICATES repeat an earlier idempotency key
DUPLICATES = 10
RATE_LIMIT = 250  # the hot user's unique requests past this are refused as rate_limited
LANE = topics.delivery_topic("webhook", "normal")


def request(nid: str, user: User, idempotency_key: str | None = None) -> dict[str, Any]:
    return {
        "notification_id": nid,
        "idempotency_key": idempotency_key or nid,
        "user_id": user.user_id,
        "channels": ["webhook"],
        "title": "t",
        "body": nid,
    }


def traffic(hot: User, others: list[User]) -> list[list[dict[str, Any]]]:
    """One list of requests per second: each ordinary user once every 8 s (3 in all), the hot
    user 12-13 a second, ten of them repeating one of its first requests."""
    ticks: list[list[dict[str, Any]]] = [[] for _ in range(TICKS)]
    for i, user in enumerate(others):
        for n in range(ROUNDS):
            ticks[i % 8 + 8 * n].append(request(f"{user.user_id}-{n}", user))
    unique = HOT_REQUESTS - DUPLICATES
    hot_requests = [request(f"hot-{n:04d}", hot) for n in range(unique)]
    for d in range(DUPLICATES):  # early on, so the first copy was accepted
        copy = request(f"hot-dup-{d}", hot, idempotency_key=f"hot-{d:04d}")
        hot_requests.insert(20 + 3 * d, copy)
    for n, hot_request in enumerate(hot_requests):
        ticks[n * TICKS // HOT_REQUESTS].append(hot_request)
    return ticks


async def produce_paced(bootstrap: str, ticks: list[list[dict[str, Any]]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    await producer.start()
    try:
        start = time.monotonic()
        for second, batch in enumerate(ticks):
            await asyncio.sleep(max(0.0, start + second - time.monotonic()))
            for value in batch:
                await producer.send(
                    topics.REQUESTS, orjson.dumps(value), key=value["user_id"].encode()
                )
            await producer.flush()
    finally:
        await producer.stop()


def test_a_hot_user_is_flagged_and_spread_and_nothing_is_lost_or_sent_twice(
    broker: str, sandboxes: SandboxStack, workers: Callable[..., WorkerProcess], tmp_path: Path
) -> None:
    users = make_users(1000, sandboxes.webhook.url("/"), opt_out_rate=0)
    hot, others = users[0], users[1:]
    settings: dict[str, Any] = dict(
        partitions=PARTITIONS,
        rate_limit_per_user=RATE_LIMIT,
        hot_key_bucket_seconds=1.0,
        hot_key_window_buckets=5,
        hot_key_sustain_seconds=2.0,
        hot_key_evaluate_seconds=0.5,
    )
    pair = [workers(**settings), workers(**settings, data_dir=tmp_path / "second-data")]
    worker = pair[0]

    def owned() -> list[set[int]]:
        return [set(get_json(f"{w.web_url}/hot-keys/")["owned_here"]) for w in pair]

    # The group settled before any traffic: a rebalance under load repeats sends by design.
    wait_until(lambda: (o := owned())[0].isdisjoint(o[1]) and len(o[0] | o[1]) == PARTITIONS)
    asyncio.run(setup_users(broker, users))
    asyncio.run(wait_for_users(worker.web_url, users))

    ticks = traffic(hot, others)
    asyncio.run(produce_paced(broker, ticks))
    requests = [r for batch in ticks for r in batch]

    # What the intake refused: the hot user's duplicates and its requests past the rate limit,
    # and nothing of anyone else's.
    def settled(events: list[dict[str, Any]]) -> bool:
        return sum(e["status"] in ("accepted", "rejected") for e in events) >= len(requests)

    events = delivery_events(broker, settled, timeout=120)
    rejected = Counter((e["user_id"], e["reason"]) for e in events if e["status"] == "rejected")
    unique = HOT_REQUESTS - DUPLICATES
    assert rejected == {
        (hot.user_id, "duplicate"): DUPLICATES,
        (hot.user_id, "rate_limited"): unique - RATE_LIMIT,
    }
    accepted = {e["notification_id"] for e in events if e["status"] == "accepted"}

    # Every accepted notification arrived once: nothing lost, nothing twice.
    expected = Counter(
        (r["notification_id"], sandbox_address(hot.webhook_url if r["user_id"] == hot.user_id
                                               else _user(users, r["user_id"]).webhook_url))
        for r in requests
        if r["notification_id"] in accepted
    )  # fmt: skip
    total = sum(expected.values())
    sandboxes.wait_for(lambda got: len(got) >= total, timeout=120)
    delivery_events(broker, lambda evs: sum(e["status"] == "sent" for e in evs) >= total)
    received = sandboxes.received()
    assert received_pairs(received) == expected
    assert set(expected.values()) == {1}

    # The hot user's partition's owner flagged it, and only it; both views show the flag, and
    # every partition's rate (each worker published its own).
    views = [get_json(f"{w.web_url}/hot-keys/") for w in pair]
    assert [set(v["flags"]) for v in views] == [{hot.user_id}] * 2, views
    flag = views[0]["flags"][hot.user_id]
    assert flag["partition"] == partition_for(hot.user_id, PARTITIONS)
    assert all(len(v["partition_rates"]) == PARTITIONS for v in views)
    # Against the cluster's mean the hot partition is (999 + 100 x 16) / 1099 = 2.4x; had its
    # owner counted only its own eight partitions (the others idle), it would have seen ~4x.
    assert 2 < flag["partition_rate"] / flag["mean_rate"] < 3.2, flag
    owner, other = sorted(views, key=lambda v: flag["partition"] not in v["owned_here"])
    assert owner["counters"]["flags_raised"] == 1 and other["counters"]["flags_raised"] == 0
    assert owner["counters"]["salted_deliveries"] > 0
    view = owner

    # The lane itself: the hot user's deliveries under salted keys on at least four
    # partitions; every other user's on its own partition, in the order it asked.
    lane = asyncio.run(read_topic(broker, LANE, lambda ms: len(ms) >= len(accepted)))
    assert len(lane) == len(accepted)
    hot_partitions: Counter[int] = Counter()
    order: defaultdict[str, list[tuple[int, int, str]]] = defaultdict(list)
    for record in lane:
        key = record.key.decode()
        delivery = orjson.loads(record.value)
        assert unsalted_key(key) == delivery["user_id"]
        if delivery["user_id"] == hot.user_id:
            hot_partitions[record.partition] += 1
            continue
        assert key == delivery["user_id"]  # nobody else is salted
        assert record.partition == partition_for(key, PARTITIONS)
        order[key].append((record.partition, record.offset, delivery["notification_id"]))
    assert len(hot_partitions) >= 4, hot_partitions
    # ... sent by both workers.
    assert all(set(hot_partitions) & set(v["owned_here"]) for v in views), (hot_partitions, views)
    assert sum(hot_partitions.values()) == RATE_LIMIT
    for user_id, placed in order.items():
        assert [nid for _, _, nid in sorted(placed)] == [f"{user_id}-{n}" for n in range(ROUNDS)]
    # ... and they reached the webhook sandbox in that order too.
    arrivals: defaultdict[str, list[str]] = defaultdict(list)
    for record in received:
        nid = record["notification_id"]
        if not nid.startswith("hot-"):
            arrivals[nid.rsplit("-", 1)[0]].append(nid)
    assert all(nids == sorted(nids) for nids in arrivals.values())
    assert len(arrivals) == len(others)
    print(
        f"\nhot user's {RATE_LIMIT} deliveries over lane partitions "
        f"{dict(sorted(hot_partitions.items()))}\nGET /hot-keys/: {orjson.dumps(view).decode()}"
    )
    flagged_lines = [line for line in worker.log_text().splitlines() if "hot key" in line]
    print("\n".join(flagged_lines))
    assert "Traceback" not in worker.log_text()


def _user(users: list[User], user_id: str) -> User:
    return users[int(user_id.rsplit("-", 1)[1])]
