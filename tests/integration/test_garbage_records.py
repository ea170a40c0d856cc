"""No record of any shape or size stops anything, on the embedded broker with a real worker.

On every topic the worker consumes, records that are oversized (~1 MB, which the broker
accepts), binary, nested 30,000 deep, schema-breaking, tombstones and non-objects are produced
between valid records on the same partition. Every valid record must be processed (delivered
to a sandbox, applied to a table, folded into a status), every bad one must be on the right
dead-letter topic with a reason, and no agent may crash.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaProducer
from faust.types import TopicT

from agents.dead_letter import REASON_HEADER, SOURCE_HEADER, TRUNCATED_HEADER
from app import build_app
from config.settings import Settings
from config.vocabulary import Channel
from providers.sandboxes.stack import SandboxStack
from scripts.worker_process import WorkerProcess
from scripts.workload import User, make_users, read_topic, setup_users, wait_for_users
from streams import topics
from streams.callbacks import StatusChange, callback_delivery, lane_key
from streams.deliveries import Delivery
from streams.holds import hold_record
from streams.partitioning import partition_for
from streams.records import CHANNELS, PRIORITIES
from tests.integration.pipeline_harness import (
    PARTITIONS,
    get_json,
    received_pairs,
    sandbox_address,
    wait_until,
)

pytestmark = pytest.mark.integration
REQUEST_TOPICS = (
    topics.REQUESTS,
    topics.REQUESTS_BY_USER,
    topics.REQUESTS_HIGH,
    topics.REQUESTS_NORMAL,
    topics.REQUESTS_LOW,
)

# Over the 1 MiB an aiokafka producer sends by default and the worker's producer limit
# (Faust's producer_max_request_size, 1,000,000): its dead letter cannot be a whole copy.
OVERSIZED_BYTES = 1_050_000
KIND_HEADER = "x-control-kind"
# Topics of one partition, read whole by every worker (tables/held_whole.py says why); the rest
# have NOTIFY_PARTITIONS.
SINGLE_PARTITION = {topics.TEMPLATES, topics.API_KEYS, topics.ERASED_USERS}

Record = tuple[str, str, bytes | None, list[tuple[str, bytes]]]  # topic, key, value, headers

# The newer control records' users: none is set up, each only exists through its records.
ERASED = "g-erased"  # erased twice: two audit events
MUTED = "g-muted"  # two categories muted
MARKED = "g-marked"  # two erasure markers read straight off erased-users
MARKED_AT = {"before": 1000.0, "after": 2000.0}
KEY_SHA = hashlib.sha256(b"garbage-test key").hexdigest()
KEY_SCOPES = {"before": ["read"], "after": ["send"]}
CALLBACK_PATH = "/callbacks/garbage"


def garbage(schema_breaking: dict[str, Any]) -> dict[str, bytes | None]:
    # Random base64 inside a JSON string: valid JSON, and lz4 cannot shrink it much.
    pad = base64.b64encode(os.urandom(OVERSIZED_BYTES * 3 // 4))
    return {
        "oversized": b'{"pad": "' + pad + b'"}',
        "binary": os.urandom(2048),
        "nested": b"[" * 30_000 + b"]" * 30_000,  # under every size limit: the depth answers
        "schema": orjson.dumps(schema_breaking),
        "tombstone": None,
        "not an object": b'"a string"',
    }


def kind_of(reason: str) -> str:
    """Which bad record a dead letter's reason is about (control reasons start with the kind;
    lanes dead-letter concurrently, so letters of one partition may come in any order)."""
    for words, kind in (
        ("depth limit exceeded", "nested"),
        ("malformed JSON", "binary"),
        ("bytes, larger than the", "oversized"),
        ("empty message", "tombstone"),
        ("expected a JSON object", "not an object"),
    ):
        if words in reason:
            return kind
    return "schema"


async def produce_in_order(bootstrap: str, records: list[Record]) -> None:
    """Each record on its key's home partition, in order, by one producer allowed 4 MB."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, max_request_size=4 * 1024 * 1024, linger_ms=5
    )
    await producer.start()
    try:
        for topic, key, value, headers in records:
            await producer.send_and_wait(
                topic,
                value,
                key=key.encode(),
                partition=0 if topic in SINGLE_PARTITION else partition_for(key, PARTITIONS),
                headers=headers,
            )
    finally:
        await producer.stop()


def delivery(user: User, nid: str, channel: str, priority: str, inapp_url: str) -> Delivery:
    address = user.addresses(channel, inapp_url)[0]
    return Delivery(
        delivery_id=f"{nid}:{channel}",
        notification_id=nid,
        user_id=user.user_id,
        channel=channel,
        address=address,
        title="t",
        body="b",
        priority=priority,
        platform=user.devices.get(address) if channel == "push" else None,
        requested_at=time.time(),
    )


def constant(value: bytes) -> Callable[[str], bytes]:
    return lambda when: value


def consumed_topics() -> set[str]:
    """What the worker reads: every agent's topics (as the worker's settings declare them),
    and the compacted hot-key topics every worker reads whole outside the group."""
    pipeline = build_app(Settings())
    channels = [agent.channel for agent in pipeline.agents.values()]
    agents = {name for c in channels if isinstance(c, TopicT) for name in c.topics}
    return agents | {topics.HOT_KEYS, topics.HOT_KEY_RATES}


def test_bad_records_on_every_consumed_topic_are_dead_lettered_and_nothing_stops(
    broker: str, sandboxes: SandboxStack, workers: Callable[..., WorkerProcess]
) -> None:
    users = make_users(7, sandboxes.webhook.url("/"), opt_out_rate=0)
    user, prefs_user, device_user, contact_user, suppressed_user, rekeyed_user, attrs_user = users
    inapp_url = sandboxes.webhook.url("/inbox")
    worker = workers(rate_limit_per_user=100)
    asyncio.run(setup_users(broker, [user]))
    asyncio.run(wait_for_users(worker.web_url, [user]))

    records: list[Record] = []
    # Inbox actions, produced once the in-app messages they act on are in the inbox.
    inbox_records: list[Record] = []
    bad: Counter[str] = Counter()  # source topic -> bad records produced there
    tolerated: dict[str, set[str]] = {}  # source topic -> garbage kinds that are valid there
    expected: Counter[tuple[str, str]] = Counter()  # (notification_id, address) delivered

    def around_garbage(
        topic: str,
        key: str,
        valid: Callable[[str], bytes],
        schema: dict[str, Any],
        headers: list[tuple[str, bytes]] | None = None,
        valid_kinds: set[str] | None = None,
        into: list[Record] = records,
    ) -> None:
        """valid, the six bad ones, valid again: all on one partition, in that order."""
        headers = headers or []
        tolerated[topic] = valid_kinds or set()
        into.append((topic, key, valid("before"), headers))
        for kind, value in garbage(schema).items():
            into.append((topic, key, value, headers))
            if kind not in tolerated[topic]:
                bad[topic] += 1
        into.append((topic, key, valid("after"), headers))

    # Requests: the public topic, its re-keyed twin and the priority topics; e-mail only.
    own_priority = {topics.REQUESTS_HIGH: "high", topics.REQUESTS_LOW: "low"}
    for topic in REQUEST_TOPICS:

        def request(when: str, topic: str = topic) -> bytes:
            nid = f"{topic}-{when}"
            expected[(nid, user.email)] += 1
            priority = own_priority.get(topic, "normal")
            return orjson.dumps(
                {"notification_id": nid, "user_id": user.user_id, "priority": priority,
                 "channels": ["email"], "title": "t", "body": "b"}
            )  # fmt: skip

        around_garbage(topic, user.user_id, request, {"notification_id": 1, "user_id": "u"})

    # Control topics: one user each, checked in the worker's user view afterwards.
    control: list[tuple[str, User, dict[str, Any], dict[str, Any], str]] = [
        (topics.PREFERENCES, prefs_user, {"channels": {"sms": False}}, {"channels": ["sms"]}, ""),
        (topics.DEVICES, device_user, {"token": "f" * 64, "platform": "ios"}, {"token": 5}, ""),
        (topics.CONTACTS, contact_user, {"email": "c@example.com"}, {"email": 5}, ""),
        (topics.SUPPRESSIONS, suppressed_user, {"address": "s@example.com"}, {"address": []}, ""),
        (topics.CONTROL_BY_USER, rekeyed_user, {"email": "r@example.com"}, {"email": {}},
         topics.CONTACTS),
        (topics.USER_ATTRIBUTES, attrs_user, {"attributes": {"country": "US"}},
         {"attributes": 5}, ""),
    ]  # fmt: skip
    for topic, owner, fields, schema, kind in control:
        around_garbage(
            topic,
            owner.user_id,
            constant(orjson.dumps({"user_id": owner.user_id, **fields})),
            {"user_id": owner.user_id, **schema},
            headers=[(KIND_HEADER, kind.encode())] if kind else [],
            # A tombstone on a control topic is an erasure's (agents/erasure.py): skipped.
            valid_kinds={"tombstone"},
        )

    # Held requests (quiet hours), due at once: each valid one is released and delivered.
    def held(when: str) -> bytes:
        nid = f"held-{when}"
        expected[(nid, user.email)] += 1
        request = {"notification_id": nid, "user_id": user.user_id, "channels": ["email"],
                   "title": "t", "body": "b"}  # fmt: skip
        return hold_record(time.time(), f"x:0:{when}", ["email"], orjson.dumps(request))

    around_garbage(topics.REQUESTS_HELD, user.user_id, held, {"release_at": "soon"})

    # Templates (one partition): each valid one is stored in the templates GlobalTable.
    def template(when: str) -> bytes:
        return orjson.dumps(
            {"template_id": f"g-{when}", "version": 1,
             "locales": {"en": {"push": {"title": "t", "body": "{{ x }}"}}}}
        )  # fmt: skip

    around_garbage(topics.TEMPLATES, "g", template, {"template_id": 5, "version": 1})

    # Campaigns, public and per-partition copies: each valid one targets nobody.
    def campaign(prefix: str) -> Callable[[str], bytes]:
        def valid(when: str) -> bytes:
            return orjson.dumps(
                {"campaign_id": f"{prefix}-{when}", "segment": 'country == "ZZ"',
                 "title": "t", "body": "b", "channels": ["email"]}
            )  # fmt: skip

        return valid

    for topic, prefix in ((topics.CAMPAIGNS, "gc"), (topics.CAMPAIGN_PARTITIONS, "gcp")):
        around_garbage(topic, prefix, campaign(prefix), {"campaign_id": 5})

    # Hot keys, read whole by every worker outside the group: a flag (a tombstone clears it,
    # so it is no bad record there) and a partition rate; the valid flag after the garbage
    # must be on the worker's board.
    def hot_flag(when: str) -> bytes:
        rate = 1.0 if when == "before" else 2.0
        return orjson.dumps(
            {"key": "gflag", "partition": 0, "rate": rate, "partition_rate": 3.0,
             "mean_rate": 1.0, "flagged_at": time.time(), "expires_at": time.time() + 3600}
        )  # fmt: skip

    def hot_rate(when: str) -> bytes:
        return orjson.dumps({"partition": 1, "rate": 0.0, "at": time.time()})

    around_garbage(topics.HOT_KEYS, "gflag", hot_flag, {"key": 5}, valid_kinds={"tombstone"})
    around_garbage(topics.HOT_KEY_RATES, "1", hot_rate, {"partition": "one"})

    # Erasures, unsubscribes and inbox actions are control records too, but no erasure writes
    # a tombstone on their topics: there it is a bad record. Each erasure is audited.
    def erasure(when: str) -> bytes:
        return orjson.dumps({"user_id": ERASED, "requested_by": f"garbage-{when}"})

    around_garbage(topics.USER_ERASURES, ERASED, erasure, {"user_id": ERASED, "requested_at": "x"})

    def unsubscribe(when: str) -> bytes:
        return orjson.dumps({"user_id": MUTED, "category": f"g-{when}"})

    around_garbage(topics.USER_UNSUBSCRIBES, MUTED, unsubscribe, {"user_id": MUTED, "category": 5})

    # Read one in-app message, archive another (both delivered below, through their lanes).
    def inbox_action(when: str) -> bytes:
        action, lane = ("read", "high") if when == "before" else ("archive", "low")
        nid = f"{topics.delivery_topic(Channel.IN_APP, lane)}-{when}"
        return orjson.dumps({"user_id": user.user_id, "action": action, "notification_id": nid})

    around_garbage(
        topics.INBOX_ACTIONS,
        user.user_id,
        inbox_action,
        {"user_id": user.user_id, "action": "explode"},
        into=inbox_records,
    )

    # Erased-user markers, read into the GlobalTable every worker holds: the later one stands.
    def marker(when: str) -> bytes:
        return orjson.dumps({"user_id": MARKED, "erased_at": MARKED_AT[when]})

    around_garbage(topics.ERASED_USERS, MARKED, marker, {"user_id": MARKED, "erased_at": "x"})

    # API keys (a tombstone revokes one: no bad record there): stored, revoked, stored again.
    def api_key(when: str) -> bytes:
        return orjson.dumps({"id": "g-key", "sha256": KEY_SHA, "scopes": KEY_SCOPES[when]})

    around_garbage(
        topics.API_KEYS, f"g-key:{KEY_SHA}", api_key, {"id": 5}, valid_kinds={"tombstone"}
    )

    # Every delivery lane, and every retry tier (due at once, so re-routed to its lane).
    def on(channel: str, priority: str, prefix: str, **changes: Any) -> Callable[[str], bytes]:
        def valid(when: str) -> bytes:
            d = delivery(user, f"{prefix}-{when}", channel, priority, inapp_url)
            expected[(d.notification_id, sandbox_address(d.address))] += 1
            return orjson.dumps({**orjson.loads(d.to_json()), **changes})

        return valid

    broken = orjson.loads(delivery(user, "x", "email", "normal", inapp_url).to_json())
    for channel in CHANNELS:
        for priority in PRIORITIES:
            lane = topics.delivery_topic(channel, priority)
            around_garbage(
                lane, user.user_id, on(channel, priority, lane), {**broken, "attempt": "x"}
            )

    # The status callbacks' own lane: each valid callback is POSTed to the caller's URL.
    def status_callback(when: str) -> bytes:
        change = StatusChange(f"cb-{when}", user.user_id, "sent", "sent", time.time())
        callback = callback_delivery(change, sandboxes.webhook.url(CALLBACK_PATH))
        expected[(callback.notification_id, CALLBACK_PATH)] += 1
        return callback.to_json()

    around_garbage(
        topics.CALLBACKS,
        lane_key(user.user_id).decode(),
        status_callback,
        {**broken, "kind": "carrier pigeon"},
    )
    for wait in Settings().retry_delays():  # the worker runs with the default schedules
        tier = topics.retry_topic(wait)
        valid = on("email", "high", tier, attempt=1, not_before=time.time())
        around_garbage(tier, user.user_id, valid, {**broken, "not_before": "soon"})

    # Delivery events, keyed by notification_id: accepted before the garbage, one of its two
    # deliveries sent after it, so the status shows that both were folded.
    def event(when: str) -> bytes:
        fields = {"status": "accepted", "deliveries": 2}
        if when == "after":
            fields = {"status": "sent", "delivery_id": "ev:email", "channel": "email"}
        return orjson.dumps({"notification_id": "ev", "user_id": user.user_id, "at": time.time(),
                             **fields})  # fmt: skip

    around_garbage(topics.DELIVERY_EVENTS, "ev", event, {"notification_id": "ev", "at": "now"})

    started = time.monotonic()
    asyncio.run(produce_in_order(broker, records))
    produced = time.monotonic()

    # Every valid one processed: delivered, applied, folded.
    total = sum(expected.values())
    sandboxes.wait_for(lambda got: len(got) >= total, timeout=120)
    delivered = time.monotonic()
    assert received_pairs(sandboxes.received()) == expected

    def user_view_of(user_id: str) -> dict[str, Any]:
        return get_json(f"{worker.web_url}/users/{user_id}/")  # type: ignore[no-any-return]

    def user_view(owner: User) -> dict[str, Any]:
        return user_view_of(owner.user_id)

    wait_until(lambda: bool(user_view(rekeyed_user)["contacts"]))
    assert user_view(prefs_user)["preferences"]["channels"] == {"sms": False}
    assert [d["platform"] for d in user_view(device_user)["devices"]] == ["ios"]
    assert set(user_view(contact_user)["contacts"]) == {"email"}
    assert len(user_view(suppressed_user)["suppressed"]) == 1
    wait_until(lambda: user_view(attrs_user)["attributes"] == {"country": "US"})
    wait_until(lambda: (user_view_of(MUTED)["preferences"] or {}).get("muted_categories")
               == ["g-before", "g-after"])  # fmt: skip

    def campaign_state(campaign_id: str) -> str:
        try:
            return str(get_json(f"{worker.web_url}/campaigns/{campaign_id}/").get("state"))
        except urllib.error.HTTPError:  # 404 until the campaign is known
            return ""

    # The valid campaign after the bad ones ran: the partition kept moving.
    wait_until(lambda: campaign_state("gc-after") == "done")

    # Consumed apart from everything above: wait for its second valid event to be folded.
    def folded() -> dict[str, Any]:
        try:
            return get_json(f"{worker.web_url}/notifications/ev/")  # type: ignore[no-any-return]
        except urllib.error.HTTPError:  # 404 until the status agent has seen an event
            return {}

    wait_until(lambda: bool(folded().get("deliveries")))

    # The flag after the garbage (and after the tombstone that cleared the first one).
    def board() -> dict[str, Any]:
        return get_json(f"{worker.web_url}/hot-keys/")  # type: ignore[no-any-return]

    wait_until(lambda: board()["flags"].get("gflag", {}).get("rate") == 2.0)
    status = folded()
    assert (status["status"], status["expected"], list(status["deliveries"])) == (
        "partially_sent",
        2,
        ["ev:email"],
    )

    # The valid template after the bad ones was stored: its changelog has both.
    stored = asyncio.run(read_topic(broker, "notify-templates-changelog", lambda ms: len(ms) >= 2))
    assert sorted(m.key for m in stored) == [b"g-after", b"g-before"]

    def changelog(table: str, key: bytes, count: int) -> list[Any]:
        """The first ``count`` values written to ``table`` under ``key``, decoded."""

        def mine(messages: list[Any]) -> list[Any]:
            return [m.value and orjson.loads(m.value) for m in messages if m.key == key]

        topic = f"notify-{table}-changelog"
        return mine(asyncio.run(read_topic(broker, topic, lambda ms: len(mine(ms)) >= count)))

    # Both markers, the later one last; the key stored, revoked (the tombstone), stored again.
    assert changelog("erased_users", MARKED.encode(), 2) == [1000.0, 2000.0]
    # Its keys are str, which Faust writes as JSON strings (only bytes keys are raw).
    stored_keys = changelog("api_keys", orjson.dumps(f"g-key:{KEY_SHA}"), 3)
    assert [k and k["scopes"] for k in stored_keys] == [["read"], None, ["send"]]

    # Both erasures done, and audited.
    audits = asyncio.run(read_topic(broker, topics.AUDIT_EVENTS, lambda ms: len(ms) >= 4))
    actions = Counter((m.key, orjson.loads(m.value)["action"]) for m in audits)
    assert actions == {(ERASED.encode(), "user_erased"): 2, (MUTED.encode(), "unsubscribed"): 2}

    # Inbox actions last, on in-app messages now in the inbox: the valid ones both applied.
    def inbox() -> dict[str, dict[str, Any]]:
        found = get_json(f"{worker.web_url}/users/{user.user_id}/inbox/")["messages"]
        return {m["notification_id"]: m for m in found}

    read_nid, archived_nid = (orjson.loads(r[2] or b"")["notification_id"]
                              for r in (inbox_records[0], inbox_records[-1]))  # fmt: skip
    wait_until(lambda: {read_nid, archived_nid} <= set(inbox()))
    asyncio.run(produce_in_order(broker, inbox_records))
    wait_until(lambda: "archived_at" in inbox()[archived_nid])
    assert "read_at" in inbox()[read_nid]

    # Every bad one on its stage's dead-letter topic, with a reason and its source.
    newer_control = {topics.USER_ERASURES, topics.USER_UNSUBSCRIBES, topics.INBOX_ACTIONS}
    dlq_of = {
        topics.REQUESTS_DLQ: {*REQUEST_TOPICS, topics.REQUESTS_HELD},
        topics.TEMPLATES_DLQ: {topics.TEMPLATES},
        topics.CONTROL_DLQ: {*(t for t, *_ in control), *newer_control, topics.ERASED_USERS},
        topics.DELIVERIES_DLQ: {t for t in bad if t.startswith("deliveries.")},
        topics.DELIVERY_EVENTS_DLQ: {topics.DELIVERY_EVENTS},
        topics.CAMPAIGNS_DLQ: {topics.CAMPAIGNS, topics.CAMPAIGN_PARTITIONS},
        topics.HOT_KEYS_DLQ: {topics.HOT_KEYS, topics.HOT_KEY_RATES},
        topics.API_KEYS_DLQ: {topics.API_KEYS},
    }
    assert set().union(*dlq_of.values()) == set(bad)
    # Every topic the worker consumes is covered: its agents' and the hot keys' own reader's.
    assert set(bad) == consumed_topics(), consumed_topics() ^ set(bad)
    for dlq, sources in dlq_of.items():
        want = sum(bad[s] for s in sources)
        letters = asyncio.run(read_topic(broker, dlq, lambda ms, n=want: len(ms) >= n))
        by_source: dict[str, list[Any]] = {}
        for letter in letters:
            headers = dict(letter.headers)
            source = headers[SOURCE_HEADER].decode().rsplit(":", 2)[0]
            by_source.setdefault(source, []).append((headers, letter))
        assert {s: len(v) for s, v in by_source.items()} == {s: bad[s] for s in sources}, dlq
        for source, found in by_source.items():
            kinds = {kind_of(h[REASON_HEADER].decode()): (h, letter) for h, letter in found}
            refused = set(garbage({})) - tolerated[source]
            assert set(kinds) == refused, (source, [h[REASON_HEADER] for h, _ in found])
            oversized_headers, oversized = kinds["oversized"]
            assert int(oversized_headers[TRUNCATED_HEADER]) > OVERSIZED_BYTES, source
            assert len(oversized.value) == 64 * 1024
            assert all(TRUNCATED_HEADER not in h for h, _ in found if h is not oversized_headers)
    dead_lettered = time.monotonic()

    log = worker.log_text()
    for sign in ("Traceback", "Crashed", "crashed", "LOST", "internal error"):
        assert sign not in log, f"{sign!r} in the worker's log"
    print(
        f"\n{len(records)} records ({sum(bad.values())} bad) on {len(bad)} topics: produced in "
        f"{produced - started:.1f}s, all {total} valid delivered {delivered - produced:.1f}s "
        f"later, all dead letters read {dead_lettered - delivered:.1f}s after that"
    )
