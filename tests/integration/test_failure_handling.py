"""Failure handling end to end, per channel: a real broker, one worker with short retry
schedules, and sandboxes told to fail over their own protocols."""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from providers.sandboxes.stack import SandboxStack
from scripts import dlq
from scripts.embedded_broker import EmbeddedBroker
from scripts.worker_process import WorkerProcess
from scripts.workload import (
    User,
    device_token,
    json_records,
    produce,
    read_topic,
    setup_users,
    wait_for_users,
)
from streams import topics
from tests.integration.pipeline_harness import delivery_events, start_worker, worker_settings

pytestmark = pytest.mark.integration

SCHEDULE = [0.2, 0.4]
PUSH_OPTIONS = {
    "sound": "chime.caf",
    "badge": 3,
    "mutable_content": True,
    "image": "https://cdn.example.com/order-7.png",
}  # every channel: two retries, then the dead-letter topic
_user_numbers = itertools.count(50_000)


@dataclass(frozen=True)
class Case:
    """One channel, the sandbox behind it, and the faults that sandbox can answer with."""

    name: str
    channel: str
    sandbox: str
    transient: Any
    invalid: Any
    platform: str | None = None


CASES = [
    Case("apns", "push", "apns", (503, "ServiceUnavailable"), (410, "Unregistered"), "ios"),
    # FCM's own client retries 500/503 internally for seconds; a 429 is returned at once.
    Case("fcm", "push", "fcm", (429, "QUOTA_EXCEEDED"), (404, "UNREGISTERED"), "android"),
    Case("smtp", "email", "smtp", (451, "4.3.0 Try again later"), (550, "5.1.1 User unknown")),
    Case("sms", "sms", "sms", (503, None), (400, 21211)),
    Case("webhook", "webhook", "webhook", 503, 410),
]
IN_APP = Case("in_app", "in_app", "webhook", 503, None)


@dataclass
class Env:
    bootstrap: str
    worker: WorkerProcess
    sandboxes: SandboxStack

    def new_user(self, platform: str = "ios") -> User:
        n = next(_user_numbers)
        uid = f"user-{n}"
        return User(
            user_id=uid,
            devices={device_token(platform, random.Random(n)): platform},
            email=f"{uid}@example.com",
            phone=f"+1555{n:07d}",
            webhook_url=self.sandboxes.webhook.url(f"/hooks/{uid}"),
        )

    def load(self, *users: User) -> None:
        asyncio.run(setup_users(self.bootstrap, users))
        asyncio.run(wait_for_users(self.worker.web_url, list(users)))

    def send(self, user: User, nid: str, channels: list[str], **extra: Any) -> None:
        request = {
            "notification_id": nid,
            "user_id": user.user_id,
            "channels": channels,
            "title": "Order shipped",
            "body": f"{nid} is on its way",
            **extra,
        }
        asyncio.run(produce(self.bootstrap, json_records(topics.REQUESTS, [request])))

    def events_for(
        self, nid: str, until: Callable[[list[dict[str, Any]]], bool]
    ) -> list[dict[str, Any]]:
        def mine(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
            return [e for e in events if e["notification_id"] == nid]

        return mine(delivery_events(self.bootstrap, lambda evs: until(mine(evs)), timeout=30))

    def snapshot(self, user: User) -> dict[str, Any]:
        async def get() -> dict[str, Any]:
            async with (
                aiohttp.ClientSession() as session,
                session.get(f"{self.worker.web_url}/users/{user.user_id}/") as response,
            ):
                return await response.json()  # type: ignore[no-any-return]

        return asyncio.run(get())


def address_of(case: Case, user: User, env: Env) -> str:
    """The address as the sandbox keys its faults: token, e-mail, number or URL path."""
    if case.channel == "push":
        return next(iter(user.devices))
    return {
        "email": user.email,
        "sms": user.phone,
        "webhook": f"/hooks/{user.user_id}",
        "in_app": "/inbox",
    }[case.channel]


def arrived(env: Env, nid: str) -> list[dict[str, Any]]:
    return [r for r in env.sandboxes.received() if r["notification_id"] == nid]


def refused(env: Env, address: str) -> list[dict[str, Any]]:
    return [r for r in env.sandboxes.rejected() if r["address"] == address]


@pytest.fixture(scope="module")
def env(sandboxes: SandboxStack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    tmp: Path = tmp_path_factory.mktemp("failures")
    sandboxes.clear()
    for name in ("fcm", "sms", "webhook"):  # a throttle says "1 s" unless a test says more
        sandboxes.inject(name, retry_after=1)
    with EmbeddedBroker(log_path=tmp / "broker.log") as bootstrap:
        schedules = {f"retry_{c}": SCHEDULE for c in ("push", "email", "sms", "webhook", "in_app")}
        values = worker_settings(bootstrap, sandboxes, tmp / "data", **schedules)
        worker = start_worker(values, tmp / "worker.log")
        yield Env(bootstrap, worker, sandboxes)
        worker.stop()


@pytest.mark.parametrize("case", [*CASES, IN_APP], ids=lambda c: c.name)
def test_transient_failures_are_retried_then_delivered(env: Env, case: Case) -> None:
    user = env.new_user(case.platform or "ios")
    env.load(user)
    address = address_of(case, user, env)
    env.sandboxes.inject(case.sandbox, address=address, fault=case.transient, times=2)
    nid = f"retry-{case.name}-{user.user_id}"
    env.send(
        user,
        nid,
        [case.channel],
        priority="high",
        data={"order_id": "7"},
        collapse_key="order-7",
        ttl_seconds=600,
        push=PUSH_OPTIONS,
    )

    env.sandboxes.wait_for(lambda _: bool(arrived(env, nid)), timeout=30)
    events = env.events_for(nid, lambda evs: any(e["status"] == "sent" for e in evs))
    assert [e["status"] for e in events if e.get("delivery_id")] == ["retrying", "retrying", "sent"]
    if case.channel == "sms":  # billed segments are reported with the send
        assert [e.get("segments") for e in events if e["status"] == "sent"] == [1]
    [message] = arrived(env, nid)
    assert (message["title"], message["body"]) == ("Order shipped", f"{nid} is on its way")
    assert len(refused(env, address)) >= 2
    assert_channel_payload(case, message)


def assert_channel_payload(case: Case, message: dict[str, Any]) -> None:
    """What each protocol must carry for a high-priority request with data, collapse key, TTL."""
    if case.name == "apns":
        headers = message["headers"]
        assert (headers["apns-priority"], headers["apns-collapse-id"]) == ("10", "order-7")
        assert (
            headers["apns-push-type"] == "alert" and int(headers["apns-expiration"]) > time.time()
        )
        assert message["payload"]["order_id"] == "7"
        aps = message["payload"]["aps"]
        assert (aps["sound"], aps["badge"], aps["mutable-content"]) == ("chime.caf", 3, 1)
    elif case.name == "fcm":
        android = message["payload"]["android"]
        assert (android["priority"], android["collapse_key"], android["ttl"]) == (
            "high",
            "order-7",
            "600s",
        )
        assert message["payload"]["data"]["order_id"] == "7"
        assert message["payload"]["notification"]["image"] == PUSH_OPTIONS["image"]
        assert android["notification"]["sound"] == "chime.caf"
        assert message["payload"]["apns"]["payload"]["aps"]["badge"] == 3
    elif case.name == "smtp":
        headers = message["headers"]
        assert headers["X-Notification-ID"] == message["notification_id"]
        assert "List-Unsubscribe" in headers and message["html"] and message["text"]
    elif case.name == "sms":
        assert message["segments"] == 1 and message["text"].startswith("Order shipped: ")
    else:  # webhook and in-app: signed JSON (the sandbox refuses a bad signature with 401)
        assert message["headers"]["X-Notify-Signature"].startswith("sha256=")
        assert message["payload"]["data"] == {"order_id": "7"}


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_exhausted_retries_dead_letter_with_history_and_redrive_delivers(
    env: Env, case: Case, monkeypatch: pytest.MonkeyPatch
) -> None:
    user = env.new_user(case.platform or "ios")
    env.load(user)
    address = address_of(case, user, env)
    env.sandboxes.inject(case.sandbox, address=address, fault=case.transient)
    nid = f"dlq-{case.name}-{user.user_id}"
    env.send(user, nid, [case.channel])

    def mine(messages: list[Any]) -> list[Any]:
        return [m for m in messages if orjson.loads(m.value)["notification_id"] == nid]

    [dead] = mine(
        asyncio.run(
            read_topic(env.bootstrap, topics.DELIVERIES_DLQ, lambda ms: bool(mine(ms)), timeout=30)
        )
    )
    record = orjson.loads(dead.value)
    assert record["attempt"] == len(SCHEDULE) + 1
    assert [e["attempt"] for e in record["errors"]] == [1, 2, 3]
    assert dict(dead.headers)["x-dlq-reason"].startswith(b"retries exhausted after 3 attempts")
    assert not arrived(env, nid)

    # The provider is healthy again: an operator redrives exactly this record.
    env.sandboxes.inject(case.sandbox, address=address, clear=True)
    monkeypatch.setenv("NOTIFY_KAFKA_BOOTSTRAP", env.bootstrap)
    from config.settings import get_settings

    get_settings.cache_clear()
    assert dlq.main(["redrive", "--records", f"{dead.partition}:{dead.offset}"]) == 0
    env.sandboxes.wait_for(lambda _: bool(arrived(env, nid)), timeout=30)
    # A second redrive of the same record is refused by the redrive log.
    assert dlq.main(["redrive", "--records", f"{dead.partition}:{dead.offset}"]) == 0
    get_settings.cache_clear()
    assert len(arrived(env, nid)) == 1


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_invalid_recipient_is_removed_and_never_used_again(env: Env, case: Case) -> None:
    user = env.new_user(case.platform or "ios")
    env.load(user)
    address = address_of(case, user, env)
    env.sandboxes.inject(case.sandbox, address=address, fault=case.invalid)
    first = f"dead-{case.name}-{user.user_id}"
    env.send(user, first, [case.channel])
    [failed] = [
        e
        for e in env.events_for(first, lambda evs: any(e["status"] == "failed" for e in evs))
        if e["status"] == "failed"
    ]
    assert failed["reason"].startswith("invalid_recipient")

    def forgotten(snapshot: dict[str, Any]) -> bool:
        if case.channel == "push":
            return not snapshot["devices"]
        return bool(snapshot["suppressed"])

    deadline = time.monotonic() + 15
    while not forgotten(env.snapshot(user)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert forgotten(env.snapshot(user))

    second = f"after-{case.name}-{user.user_id}"
    env.send(user, second, [case.channel])
    [rejected] = env.events_for(second, lambda evs: bool(evs))
    assert (rejected["status"], rejected["reason"]) == ("rejected", "no_reachable_address")
    assert len(refused(env, address)) == 1  # no retry, and never tried again


@pytest.mark.parametrize(
    "sandbox,channel", [("sms", "sms"), ("webhook", "webhook"), ("fcm", "push")]
)
def test_retry_after_is_honoured(env: Env, sandbox: str, channel: str) -> None:
    user = env.new_user("android")
    env.load(user)
    case = next(c for c in CASES if c.sandbox == sandbox)
    address = address_of(case, user, env)
    throttled = {"sms": (429, 20429), "webhook": 429, "fcm": (429, "QUOTA_EXCEEDED")}[sandbox]
    env.sandboxes.inject(sandbox, retry_after=2)
    env.sandboxes.inject(sandbox, address=address, fault=throttled, times=1)
    nid = f"throttled-{sandbox}-{user.user_id}"
    env.send(user, nid, [channel])
    env.sandboxes.wait_for(lambda _: bool(arrived(env, nid)), timeout=30)
    env.sandboxes.inject(sandbox, retry_after=1)  # back to the module's default
    [throttle] = refused(env, address)
    [delivered] = arrived(env, nid)
    # The schedule says 0.2 s; the provider said 2 s, and nothing was sent before that.
    assert delivered["received_at"] - throttle["received_at"] >= 2.0


def test_fallback_channel_is_used_once(env: Env) -> None:
    user = env.new_user("ios")
    env.load(user)
    env.sandboxes.inject("apns", address=next(iter(user.devices)), fault=(410, "Unregistered"))
    nid = f"fallback-{user.user_id}"
    env.send(user, nid, ["push"], fallback_channel="sms", priority="high")
    env.sandboxes.wait_for(lambda _: bool(arrived(env, nid)), timeout=30)
    events = env.events_for(nid, lambda evs: sum(e["status"] == "sent" for e in evs) >= 1)
    assert [e["status"] for e in events if e["status"] != "accepted"] == [
        "failed",
        "fell_back",
        "sent",
    ]
    assert [(r["sandbox"], r["address"]) for r in arrived(env, nid)] == [("sms", user.phone)]


def test_hard_bounce_feedback_suppresses_the_address(env: Env) -> None:
    user = env.new_user()
    env.load(user)
    first = f"bounce-{user.user_id}"
    env.send(user, first, ["email"])
    env.sandboxes.wait_for(lambda _: bool(arrived(env, first)), timeout=30)
    [mail] = arrived(env, first)
    bounce = [
        {
            "event": "bounce",
            "type": "bounce",
            "email": user.email,
            "reason": "550 5.1.1",
            "timestamp": int(time.time()),
            "notification_id": first,
            "delivery_id": mail["delivery_id"],
            "user_id": user.user_id,
        }
    ]

    async def post() -> dict[str, Any]:
        async with (
            aiohttp.ClientSession() as session,
            session.post(f"{env.worker.web_url}/feedback/sendgrid/", json=bounce) as response,
        ):
            assert response.status == 200
            return await response.json()  # type: ignore[no-any-return]

    assert asyncio.run(post()) == {"recorded": 1, "ignored": 0}
    env.events_for(first, lambda evs: any(e["status"] == "bounced" for e in evs))
    deadline = time.monotonic() + 15
    while not env.snapshot(user)["suppressed"] and time.monotonic() < deadline:
        time.sleep(0.1)
    second = f"bounce-again-{user.user_id}"
    env.send(user, second, ["email"])
    [rejected] = env.events_for(second, lambda evs: bool(evs))
    assert rejected["reason"] == "no_reachable_address"
