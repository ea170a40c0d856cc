"""The HTTP API on a running worker: keys and scopes, sends end to end to the sandboxes,
idempotency, per-field errors, bulk, the key rate limit, and schemathesis against the
served OpenAPI document. One broker and one worker for the module: every test here asks
the same worker, and each uses its own users."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.keys import new_key
from providers.sandboxes.stack import SandboxStack
from scripts.embedded_broker import EmbeddedBroker
from scripts.worker_process import WorkerProcess
from tests.integration.pipeline_harness import start_worker, worker_settings

KEYS = {scope: new_key(f"test-{scope}") for scope in ("send", "read", "admin", "slow")}
TOKEN = {name: token for name, (token, _) in KEYS.items()}
ENTRIES = [
    {"id": "test-send", "sha256": KEYS["send"][1], "scopes": ["send"]},
    {"id": "test-read", "sha256": KEYS["read"][1], "scopes": ["read"]},
    {"id": "test-admin", "sha256": KEYS["admin"][1], "scopes": ["admin"]},
    {"id": "test-slow", "sha256": KEYS["slow"][1], "scopes": ["admin"], "rate_per_second": 2},
]


@pytest.fixture(scope="module")
def api_worker(
    sandboxes: SandboxStack, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WorkerProcess]:
    tmp = tmp_path_factory.mktemp("api")
    with EmbeddedBroker(log_path=tmp / "broker.log") as bootstrap:
        values = worker_settings(bootstrap, sandboxes, tmp / "data", api_keys=json.dumps(ENTRIES))
        worker = start_worker(values, tmp / "worker.log")
        yield worker
        worker.stop()


def client(worker: WorkerProcess, key: str | None = "admin") -> httpx.Client:
    headers = {"Authorization": f"Bearer {TOKEN[key]}"} if key else {}
    return httpx.Client(base_url=worker.web_url, headers=headers, timeout=10)


def eventually(read: Callable[[], Any], holds: Callable[[Any], bool], timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = read()
        if holds(value) or time.monotonic() > deadline:
            return value
        time.sleep(0.2)


def set_up_user(api: httpx.Client, user_id: str, hook: str) -> None:
    assert api.put(f"/v1/users/{user_id}/contacts", json={"webhook_url": hook}).status_code == 202
    shown = eventually(lambda: api.get(f"/v1/users/{user_id}"), lambda r: r.status_code == 200)
    assert shown.json()["contacts"] == {"webhook_url": hook}


def sent_to(sandboxes: SandboxStack, path: str) -> list[dict[str, Any]]:
    return [r for r in sandboxes.received() if r.get("address") == path]


def test_every_route_refuses_a_missing_key_and_a_missing_scope(api_worker: WorkerProcess) -> None:
    with client(api_worker) as admin:
        document = admin.get("/openapi.json").json()
    operations = [
        (method.upper(), path.replace("{", "").replace("}", ""))
        for path, methods in document["paths"].items()
        for method in methods
    ]
    assert len(operations) >= 10
    # Operator views too: only health checks answer without a key.
    operations += [("GET", "/users/u1/"), ("GET", "/metrics"), ("GET", "/")]
    with client(api_worker, key=None) as anonymous, client(api_worker, key="read") as reader:
        for method, path in operations:
            refused = anonymous.request(method, path, json={})
            assert refused.status_code == 401, (method, path, refused.text)
            assert refused.json()["error"] == "unauthorized"
            assert refused.headers["X-Request-Id"]
            if method != "GET":
                assert reader.request(method, path, json={}).status_code == 403, (method, path)
        wrong = anonymous.get("/v1/notifications/x", headers={"Authorization": "Bearer nk_x_y"})
        assert wrong.status_code == 401
        assert anonymous.get("/healthz").status_code == 200
    with client(api_worker, key="send") as sender:
        assert sender.get("/v1/notifications/x").status_code == 403


def test_a_notification_sent_through_the_api_arrives_once_and_its_status_says_so(
    api_worker: WorkerProcess, sandboxes: SandboxStack
) -> None:
    hook = sandboxes.webhook.url("/api-user-1")
    with client(api_worker) as api:
        set_up_user(api, "api-user-1", hook)
        body = {"user_id": "api-user-1", "title": "Hi", "body": "Order {n} shipped",
                "data": {"n": 7}, "channels": ["webhook"]}  # fmt: skip
        first = api.post("/v1/notifications", json=body, headers={"Idempotency-Key": "order-7"})
        again = api.post("/v1/notifications", json=body, headers={"Idempotency-Key": "order-7"})
        assert first.status_code == again.status_code == 202, first.text
        notification_id = first.json()["notification_id"]
        assert again.json()["notification_id"] == notification_id  # the key names it

        sandboxes.wait_for(lambda got: any(r.get("address") == "/api-user-1" for r in got))
        status = eventually(
            lambda: api.get(f"/v1/notifications/{notification_id}"),
            lambda r: r.status_code == 200 and r.json()["status"] == "sent",
        )
        assert status.json()["status"] == "sent", status.text
        time.sleep(1.0)  # the retried POST's copy, had it been sent, would be here by now
    [sent] = sent_to(sandboxes, "/api-user-1")
    assert sent["notification_id"] == notification_id


def test_bad_fields_are_listed_one_by_one(api_worker: WorkerProcess) -> None:
    with client(api_worker) as api:
        bad = {"user_id": "u", "title": 5, "body": "b", "channels": ["pigeon"], "priority": "x"}
        answer = api.post("/v1/notifications", json=bad)
        assert answer.status_code == 400
        fields = {d["field"] for d in answer.json()["details"]}
        assert {"title", "channels[0]", "priority"} <= fields, answer.text
        # The topic path's own checks, after the types: a blank title.
        blank = api.post("/v1/notifications", json={"user_id": "u", "title": " ", "body": "b"})
        assert blank.status_code == 400
        assert blank.json()["details"][0]["field"] == "title"
        assert api.post("/v1/notifications", content=b"{not json").status_code == 400


def test_a_bulk_answers_per_item_and_sends_the_good_ones(
    api_worker: WorkerProcess, sandboxes: SandboxStack
) -> None:
    with client(api_worker) as api:
        set_up_user(api, "api-bulk", sandboxes.webhook.url("/api-bulk"))
        items: list[Any] = [
            {"user_id": "api-bulk", "title": "one", "body": "b", "channels": ["webhook"]},
            {"user_id": "api-bulk", "title": "", "body": "b"},
            {"user_id": "api-bulk", "title": "three", "body": "b", "channels": ["webhook"]},
        ]
        once = {"Idempotency-Key": "bulk-1"}
        answer = api.post("/v1/notifications/bulk", json={"notifications": items}, headers=once)
        assert answer.status_code == 207, answer.text
        result = answer.json()
        assert (result["accepted"], result["invalid"]) == (2, 1)
        assert [r["status"] for r in result["results"]] == ["accepted", "invalid", "accepted"]
        # The same bulk again (a client retry): the same ids, refused downstream as duplicates.
        again = api.post("/v1/notifications/bulk", json={"notifications": items}, headers=once)
        ids = [r.get("notification_id") for r in result["results"]]
        assert [r.get("notification_id") for r in again.json()["results"]] == ids
        sandboxes.wait_for(lambda got: len(sent_to(sandboxes, "/api-bulk")) >= 2)
        time.sleep(1.0)
        delivered = sorted(r["notification_id"] for r in sent_to(sandboxes, "/api-bulk"))
        assert delivered == sorted(i for i in ids if i)
        empty = api.post("/v1/notifications/bulk", json={"notifications": []})
        assert empty.status_code == 400
        assert empty.json()["details"][0]["field"] == "notifications"


def test_a_key_over_its_rate_gets_429_with_retry_after(api_worker: WorkerProcess) -> None:
    with client(api_worker, key="slow") as slow:
        answers = [slow.get("/v1/notifications/none") for _ in range(6)]
    codes = [a.status_code for a in answers]
    assert codes.count(429) >= 3, codes  # a burst of 2, then 2/s
    limited = next(a for a in answers if a.status_code == 429)
    assert int(limited.headers["Retry-After"]) >= 1
    assert limited.json()["error"] == "rate_limited"


def test_schemathesis_finds_no_server_error_and_no_schema_mismatch(
    api_worker: WorkerProcess, tmp_path: Path
) -> None:
    run = subprocess.run(
        [
            str(Path(sys.executable).with_name("schemathesis")),
            "run",
            f"{api_worker.web_url}/openapi.json",
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,"
            "response_schema_conformance",
            "--header",
            f"Authorization: Bearer {TOKEN['admin']}",
            "--max-examples",
            "15",
            "--seed",
            "1",
            "--generation-database",
            "none",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]


def test_a_template_put_through_the_api_renders_in_the_users_language(
    api_worker: WorkerProcess, sandboxes: SandboxStack
) -> None:
    template = {
        "version": 1,
        "default_locale": "en",
        "locales": {
            "en": {"push": {"title": "Hello {{ name }}", "body": "Your order shipped"}},
            "pt": {"push": {"title": "Olá {{ name }}", "body": "A sua encomenda foi enviada"}},
        },
    }
    with client(api_worker) as api:
        broken = api.put("/v1/templates/api-broken", json={**template, "locales": {
            "en": {"push": {"title": "{{ name", "body": "b"}}}})  # fmt: skip
        assert broken.status_code == 400, broken.text
        assert api.put("/v1/templates/api-shipped", json=template).status_code == 202
        stored = eventually(lambda: api.get("/v1/templates/api-shipped"), lambda r: r.is_success)
        assert stored.json()["version"] == 1
        set_up_user(api, "api-pt", sandboxes.webhook.url("/api-pt"))
        request = {"user_id": "api-pt", "template_id": "api-shipped", "locale": "pt-BR",
                   "data": {"name": "Ana"}, "channels": ["webhook"]}  # fmt: skip
        sent = api.post("/v1/notifications", json=request)
        assert sent.status_code == 202, sent.text
    sandboxes.wait_for(lambda got: bool(sent_to(sandboxes, "/api-pt")))
    [received] = sent_to(sandboxes, "/api-pt")
    assert (received["title"], received["body"]) == ("Olá Ana", "A sua encomenda foi enviada")


def test_a_key_made_through_the_api_works_until_it_is_revoked(api_worker: WorkerProcess) -> None:
    with client(api_worker) as admin:
        made = admin.post("/v1/keys", json={"id": "made-here", "scopes": ["read"]})
        assert made.status_code == 201, made.text
        token, sha256 = made.json()["key"], made.json()["sha256"]
        listed = admin.get("/v1/keys").json()["keys"]
        assert not any(token in json.dumps(k) for k in listed)  # the key itself is not kept
        with httpx.Client(base_url=api_worker.web_url, timeout=10,
                          headers={"Authorization": f"Bearer {token}"}) as made_key:  # fmt: skip
            works = eventually(lambda: made_key.get("/v1/notifications/none").status_code,
                               lambda code: code == 404)  # fmt: skip
            assert works == 404  # authenticated (and nothing there)
            assert made_key.post("/v1/notifications", json={}).status_code == 403  # read only
            assert admin.delete(f"/v1/keys/made-here/{sha256}").status_code == 202
            gone = eventually(lambda: made_key.get("/v1/notifications/none").status_code,
                              lambda code: code == 401)  # fmt: skip
            assert gone == 401
        settings_key = admin.delete(f"/v1/keys/test-admin/{KEYS['admin'][1]}")
        assert settings_key.status_code == 409


def test_a_campaign_started_through_the_api_reaches_its_segment_only(
    api_worker: WorkerProcess, sandboxes: SandboxStack
) -> None:
    team = {"api-camp-1": "api", "api-camp-2": "api", "api-camp-3": "other"}
    with client(api_worker) as api:
        for user_id, value in team.items():
            set_up_user(api, user_id, sandboxes.webhook.url(f"/{user_id}"))
            changed = api.put(f"/v1/users/{user_id}/attributes",
                              json={"attributes": {"team": value, "name": user_id}})  # fmt: skip
            assert changed.status_code == 202, changed.text
            shown = eventually(
                lambda: api.get(f"/v1/users/{user_id}/attributes").json(),  # noqa: B023
                lambda shown: bool(shown["attributes"].get("team")),
            )
            assert shown["attributes"]["team"] == value
        campaign = {"campaign_id": "api-camp", "segment": 'team == "api"',
                    "title": "Hi {name}", "body": "News", "channels": ["webhook"],
                    "throttle_per_second": 100}  # fmt: skip
        bad = api.post("/v1/campaigns", json={**campaign, "segment": "team ==="})
        assert bad.status_code == 400 and "segment" in bad.json()["message"], bad.text
        assert api.post("/v1/campaigns", json=campaign).status_code == 202
    sandboxes.wait_for(lambda got: all(sent_to(sandboxes, f"/api-camp-{i}") for i in (1, 2)))
    time.sleep(1.0)
    assert not sent_to(sandboxes, "/api-camp-3")
    assert [r["title"] for r in sent_to(sandboxes, "/api-camp-1")] == ["Hi api-camp-1"]
