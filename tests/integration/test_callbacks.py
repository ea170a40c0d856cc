"""Status callbacks end to end: a real broker, one worker, and the webhook sandbox as both the
user's webhook and the caller's callback endpoint (it checks every signature, and answers
with the faults and stalls a test injects)."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from api.keys import new_key
from providers.sandboxes.stack import SandboxStack
from providers.webhook import DELIVERY_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, sign
from scripts.embedded_broker import EmbeddedBroker
from scripts.worker_process import WorkerProcess
from scripts.workload import User, json_records, produce, setup_users, wait_for_users
from streams import topics
from tests.integration.pipeline_harness import delivery_events, start_worker, worker_settings

pytestmark = pytest.mark.integration

T = TypeVar("T")
CALLBACK_SLOTS = 2
TOKEN, DIGEST = new_key("cb-client")
AUTH = {"Authorization": f"Bearer {TOKEN}"}  # the callbacks' lane, small enough for a test to fill
_numbers = itertools.count(1)


@dataclass
class Env:
    bootstrap: str
    worker: WorkerProcess
    sandboxes: SandboxStack

    def new_user(self) -> User:
        uid = f"cb-user-{next(_numbers)}"
        user = User(uid, {}, f"{uid}@example.com", "+15550000001", self.hook(f"/hooks/{uid}"))
        asyncio.run(setup_users(self.bootstrap, [user]))
        asyncio.run(wait_for_users(self.worker.web_url, [user], headers=AUTH))
        return user

    def hook(self, path: str) -> str:
        return self.sandboxes.webhook.url(path)

    def send(self, user: User, nid: str, callback_path: str) -> None:
        request = {
            "notification_id": nid,
            "user_id": user.user_id,
            "channels": ["webhook"],
            "title": "Order shipped",
            "body": "on its way",
            "callback_url": self.hook(callback_path),
        }
        asyncio.run(produce(self.bootstrap, json_records(topics.REQUESTS, [request])))

    def callbacks(self, path: str) -> list[dict[str, Any]]:
        return [r for r in self.sandboxes.received() if r["address"] == path]


def delivered(records: list[dict[str, Any]]) -> set[str]:
    """The notifications whose delivery (to the user's webhook, not a callback) arrived."""
    return {r["notification_id"] for r in records if r["address"].startswith("/hooks/")}


@pytest.fixture(scope="module")
def env(sandboxes: SandboxStack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    tmp: Path = tmp_path_factory.mktemp("callbacks")
    sandboxes.clear()
    # The caller's key names its callback URL, for requests through the API that name none.
    key = {
        "id": "cb-client",
        "sha256": DIGEST,
        "scopes": ["send", "read"],
        "callback_url": sandboxes.webhook.url("/client/by-key"),
    }
    with EmbeddedBroker(log_path=tmp / "broker.log") as bootstrap:
        values = worker_settings(
            bootstrap,
            sandboxes,
            tmp / "data",
            retry_webhook=[0.2, 0.4],
            callback_concurrency=CALLBACK_SLOTS,
            callback_timeout_seconds=30.0,  # a stalled endpoint holds its slot until released
            deliver_cpu_ceiling_low=0.0,  # the callbacks' lane's ceiling, as for the others
            api_keys=json.dumps([key]),
        )
        worker = start_worker(values, tmp / "worker.log")
        yield Env(bootstrap, worker, sandboxes)
        worker.stop()
    sandboxes.clear()


def statuses(records: list[dict[str, Any]], nid: str) -> set[str]:
    return {r["payload"]["status"] for r in records if r["notification_id"] == nid}


def test_every_status_change_is_posted_signed_to_the_callback_url(env: Env) -> None:
    user = env.new_user()
    env.send(user, "cb-ok-1", "/client/ok")

    arrived = env.sandboxes.wait_for(
        lambda _: statuses(env.callbacks("/client/ok"), "cb-ok-1") >= {"accepted", "sent"},
        timeout=30,
    )
    assert "cb-ok-1" in delivered(arrived)
    for callback in env.callbacks("/client/ok"):
        headers, raw = callback["headers"], callback["raw"]
        # Signed exactly like the webhook channel: HMAC over "<timestamp>.<body>".
        assert headers[SIGNATURE_HEADER] == sign(
            env.sandboxes.webhook.secret, headers[TIMESTAMP_HEADER], raw
        )
        assert headers[DELIVERY_HEADER] == callback["payload"]["callback_id"]
        assert callback["payload"]["user_id"] == user.user_id
    [sent] = [r["payload"] for r in env.callbacks("/client/ok") if r["payload"]["status"] == "sent"]
    assert (sent["notification_status"], sent["channel"]) == ("sent", "webhook")

    # The user read it: a receipt through the API, folded, and called back.
    with httpx.Client(base_url=env.worker.web_url, headers=AUTH, timeout=10) as api:
        receipt = api.put("/v1/notifications/cb-ok-1/read")
        assert receipt.status_code == 202, receipt.text
        assert receipt.json()["user_id"] == user.user_id  # from the status row
    env.sandboxes.wait_for(
        lambda _: "read" in statuses(env.callbacks("/client/ok"), "cb-ok-1"), timeout=30
    )
    [read] = [r["payload"] for r in env.callbacks("/client/ok") if r["payload"]["status"] == "read"]
    assert read["notification_status"] == "read"
    # A callback's own send is no delivery event: one delivery, sent, then the receipt.
    events = delivery_events(
        env.bootstrap,
        lambda evs: any(e["notification_id"] == "cb-ok-1" and e["status"] == "read" for e in evs),
    )
    assert [e["status"] for e in events if e["notification_id"] == "cb-ok-1"] == [
        "accepted",
        "sent",
        "read",
    ]


def test_a_request_through_the_api_calls_back_to_its_keys_url(env: Env) -> None:
    user = env.new_user()
    body = {"user_id": user.user_id, "channels": ["webhook"], "title": "Hi", "body": "there"}
    with httpx.Client(base_url=env.worker.web_url, headers=AUTH, timeout=10) as api:
        posted = api.post("/v1/notifications", json=body)
        assert posted.status_code == 202, posted.text
    nid = posted.json()["notification_id"]
    env.sandboxes.wait_for(
        lambda _: statuses(env.callbacks("/client/by-key"), nid) >= {"accepted", "sent"},
        timeout=30,
    )


def test_a_receipt_before_the_status_exists_needs_the_user_and_is_kept(env: Env) -> None:
    with httpx.Client(base_url=env.worker.web_url, headers=AUTH, timeout=10) as api:
        assert api.put("/v1/notifications/cb-early-1/read").status_code == 404
        early = api.put("/v1/notifications/cb-early-1/read", params={"user_id": "cb-early"})
        assert early.status_code == 202, early.text
        row = wait_until_value(
            lambda: api.get("/v1/notifications/cb-early-1"), lambda r: r.status_code == 200
        ).json()
        assert (row["status"], row["user_id"]) == ("read", "cb-early")
        mismatch = api.put("/v1/notifications/cb-early-1/read", params={"user_id": "another"})
        assert mismatch.status_code == 409


def test_a_failing_endpoint_is_retried_and_a_stalled_one_holds_up_no_delivery(env: Env) -> None:
    user = env.new_user()
    # An endpoint that does not answer while the test runs: the first notification's two
    # callbacks (accepted, sent) take every slot of the callbacks' lane.
    env.sandboxes.inject("webhook", address="/client/stalled", delay_seconds=60)
    env.send(user, "cb-stalled-0", "/client/stalled")
    wait_until(lambda: callbacks_in_flight(env) == CALLBACK_SLOTS)
    # Then more notifications, one with an endpoint failing twice: delivered all the same.
    env.sandboxes.inject("webhook", address="/client/flaky", fault=503, times=2)
    env.send(user, "cb-flaky-1", "/client/flaky")
    stalled = [f"cb-stalled-{i}" for i in range(3)]
    for nid in stalled[1:]:
        env.send(user, nid, "/client/stalled")
    env.sandboxes.wait_for(
        lambda records: delivered(records) >= {*stalled, "cb-flaky-1"}, timeout=30
    )
    assert callbacks_in_flight(env) == CALLBACK_SLOTS
    assert not env.callbacks("/client/stalled")

    env.sandboxes.inject("webhook", address="/client/stalled", clear=True)
    env.sandboxes.webhook.plan.release()

    def all_called_back(_: object) -> bool:
        flaky = statuses(env.callbacks("/client/flaky"), "cb-flaky-1")
        late = env.callbacks("/client/stalled")
        return flaky >= {"accepted", "sent"} and all(
            statuses(late, nid) >= {"accepted", "sent"} for nid in stalled
        )

    env.sandboxes.wait_for(all_called_back, timeout=30)
    refused = [r for r in env.sandboxes.rejected() if r["address"] == "/client/flaky"]
    assert [r["status"] for r in refused] == [503, 503]  # and then retried through the tiers


def callbacks_in_flight(env: Env) -> float:
    """The worker's own gauge of the callbacks' lane (``GET /metrics``)."""

    async def scrape() -> str:
        async with (
            aiohttp.ClientSession(headers=AUTH) as session,
            session.get(f"{env.worker.web_url}/metrics") as response,
        ):
            return await response.text()

    for family in text_string_to_metric_families(asyncio.run(scrape())):
        for sample in family.samples:
            if sample.name == "notify_lane_sends_in_flight" and sample.labels == {
                "priority": "callbacks"
            }:
                return sample.value
    return 0.0


def wait_until(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    wait_until_value(lambda: None, lambda _: condition(), timeout)


def wait_until_value(read: Callable[[], T], holds: Callable[[T], bool], timeout: float = 30.0) -> T:
    deadline = time.monotonic() + timeout
    while not holds(value := read()):
        if time.monotonic() > deadline:
            raise TimeoutError(f"condition not met in {timeout}s")
        time.sleep(0.1)
    return value
