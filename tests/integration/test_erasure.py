"""Erasure and one-click unsubscribe through the API of a running worker on the real broker, to
the provider sandboxes: an erased user's held notification is never sent and their views are
empty; an e-mail's signed List-Unsubscribe link, POSTed, stops that category's next e-mail.
One broker and one worker for the module (a stepped clock holds the night's notification)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import orjson
import pytest

from api.keys import new_key
from config.clock import step_clock
from providers.sandboxes.stack import SandboxStack
from scripts.embedded_broker import EmbeddedBroker
from scripts.worker_process import WorkerProcess
from scripts.workload import read_topic
from streams import topics
from tests.integration.pipeline_harness import delivery_events, start_worker, worker_settings

pytestmark = pytest.mark.integration

ADMIN, ADMIN_SHA = new_key("erasure-admin")
LISBON = ZoneInfo("Europe/Lisbon")


def local(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=LISBON).timestamp()


@pytest.fixture(scope="module")
def clock(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("clock") / "clock"
    step_clock(path, local("2026-12-01T23:30:00"))
    return path


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with EmbeddedBroker(log_path=tmp_path_factory.mktemp("broker") / "broker.log") as bootstrap:
        yield bootstrap


@pytest.fixture(scope="module")
def worker(
    broker: str, sandboxes: SandboxStack, clock: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WorkerProcess]:
    tmp = tmp_path_factory.mktemp("erasure")
    sandboxes.clear()
    keys = [{"id": "erasure-admin", "sha256": ADMIN_SHA, "scopes": ["admin"]}]
    values = worker_settings(
        broker, sandboxes, tmp / "data", api_keys=json.dumps(keys), clock_file=clock
    )
    values["public_base_url"] = f"http://127.0.0.1:{values['web_port']}"
    values["unsubscribe_secret"] = "integration-unsubscribe-secret"
    started = start_worker(values, tmp / "worker.log")
    yield started
    started.stop()


@pytest.fixture
def api(worker: WorkerProcess) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {ADMIN}"}
    with httpx.Client(base_url=worker.web_url, headers=headers, timeout=10) as client:
        yield client


def eventually(read: Callable[[], Any], holds: Callable[[Any], bool], timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = read()
        if holds(value):
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"not met in {timeout}s: {value}")
        time.sleep(0.1)


def send(api: httpx.Client, user_id: str, nid: str, channels: list[str], **kw: Any) -> None:
    body = {"notification_id": nid, "user_id": user_id, "title": "T", "body": "B", **kw}
    answer = api.post("/v1/notifications", json={**body, "channels": channels})
    assert answer.status_code == 202, answer.text


def events_of(broker: str, nid: str, status: str) -> dict[str, Any]:
    found = delivery_events(
        broker, lambda es: any((e["notification_id"], e["status"]) == (nid, status) for e in es)
    )
    return next(e for e in found if (e["notification_id"], e["status"]) == (nid, status))


def audit_of(broker: str, user_id: str, action: str) -> tuple[dict[str, Any], bytes]:
    def mine(messages: list[Any]) -> list[Any]:
        return [
            m
            for m in messages
            if (orjson.loads(m.value)["user_id"], orjson.loads(m.value)["action"])
            == (user_id, action)
        ]

    messages = asyncio.run(read_topic(broker, topics.AUDIT_EVENTS, lambda ms: bool(mine(ms))))
    [message] = mine(messages)[:1]
    return orjson.loads(message.value), message.value


def test_an_erased_user_gets_nothing_more_and_no_view_shows_them(
    broker: str, sandboxes: SandboxStack, worker: WorkerProcess, api: httpx.Client, clock: Path
) -> None:
    user, email, hook = "erased-1", "erased-1@example.com", sandboxes.webhook.url("/erased-1")
    quiet = {"webhook": {"start": "22:00", "end": "07:00"}}
    for part, body in [
        ("attributes", {"attributes": {"timezone": "Europe/Lisbon"}}),
        ("contacts", {"email": email, "webhook_url": hook}),
        ("preferences", {"quiet_hours": quiet}),
    ]:
        assert api.put(f"/v1/users/{user}/{part}", json=body).status_code == 202
    eventually(
        lambda: api.get(f"/v1/users/{user}").json(),
        lambda u: bool((u.get("preferences") or {}).get("quiet_hours")) and len(u["contacts"]) == 2,
    )
    # The e-mail goes now; the webhook waits for 07:00 in a held record, with its address to be.
    send(api, user, "erase-before", ["email", "webhook"])
    sandboxes.wait_for(lambda rs: any(r["address"] == email for r in rs), timeout=30)
    events_of(broker, "erase-before", "held")

    assert api.delete(f"/v1/users/{user}").status_code == 202
    eventually(lambda: api.get(f"/v1/users/{user}").status_code, lambda s: s == 404)
    audit, raw = audit_of(broker, user, "user_erased")
    assert audit["details"]["address.email"] == "e***@example.com"
    assert audit["details"]["requested_by"] == "erasure-admin"
    assert email.encode() not in raw and b"/erased-1" not in raw
    # The history: anonymised where its status lives.
    history = eventually(
        lambda: api.get("/v1/notifications/erase-before").json(), lambda s: s.get("user_id") == ""
    )
    assert user not in json.dumps(history) and email not in json.dumps(history)

    step_clock(clock, local("2026-12-02T07:00:01"))  # the hold ends: refused, not sent
    assert events_of(broker, "erase-before", "released")["reason"] == "webhook: user_erased"
    send(api, user, "erase-after", ["email", "webhook", "sms", "push"])  # nobody to reach
    assert events_of(broker, "erase-after", "rejected")["reason"] == "no_reachable_address"
    sent_to_them = [r for r in sandboxes.received() if r["address"] in (email, "/erased-1")]
    assert [r["notification_id"] for r in sent_to_them] == ["erase-before"]  # the e-mail only


def test_a_posted_unsubscribe_link_stops_that_categorys_next_email(
    broker: str, sandboxes: SandboxStack, api: httpx.Client
) -> None:
    user, email = "unsub-1", "unsub-1@example.com"
    assert api.put(f"/v1/users/{user}/contacts", json={"email": email}).status_code == 202
    eventually(lambda: api.get(f"/v1/users/{user}").status_code, lambda s: s == 200)
    send(api, user, "unsub-first", ["email"], category="promo")
    [mail] = [
        r
        for r in sandboxes.wait_for(lambda rs: any(r["address"] == email for r in rs), 30)
        if r["address"] == email
    ]
    headers = mail["headers"]
    assert headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    link = headers["List-Unsubscribe"].split(",")[0].strip().strip("<>")
    assert link.startswith(f"{api.base_url}/v1/unsubscribe/")

    with httpx.Client(timeout=10) as mail_client:  # no API key: the signature is the key
        tampered = mail_client.post(link[:-3] + "xyz", content=b"List-Unsubscribe=One-Click")
        assert (tampered.status_code, tampered.json()["error"]) == (403, "bad_signature")
        done = mail_client.post(
            link,
            content=b"List-Unsubscribe=One-Click",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
    assert (done.status_code, done.json()) == (
        202,
        {"status": "accepted", "category": "promo", "channel": None},
    )
    eventually(
        lambda: api.get(f"/v1/users/{user}").json()["preferences"],
        lambda p: p is not None and "promo" in p["muted_categories"],
    )
    audit, raw = audit_of(broker, user, "unsubscribed")
    assert audit["details"]["category"] == "promo" and email.encode() not in raw

    send(api, user, "unsub-promo", ["email"], category="promo")
    send(api, user, "unsub-orders", ["email"], category="orders")
    assert events_of(broker, "unsub-promo", "rejected")["reason"] == "category_muted"
    sandboxes.wait_for(lambda rs: any(r["notification_id"] == "unsub-orders" for r in rs), 30)
    assert not [r for r in sandboxes.received() if r["notification_id"] == "unsub-promo"]
