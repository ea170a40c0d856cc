"""The API's middleware on a bare aiohttp app: keys, scopes, request ids, JSON for every
failure (the router's 404 and 405 too, and a bug's 500 without its message)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from api.errors import ApiError
from api.guard import REQUEST_ID, SWEEP_SECONDS, ApiGate
from api.keys import ApiKey, KeyRing, Scope, new_key
from api.openapi import ApiSpec, Operation

READER, READER_HASH = new_key("reader")
WRITER, WRITER_HASH = new_key("writer")


async def ok(request: web.Request) -> web.Response:
    return web.json_response({"ok": True})


async def refuse(request: web.Request) -> web.Response:
    raise ApiError(409, "conflict", "already there")


async def crash(request: web.Request) -> web.Response:
    raise RuntimeError("secret detail of a bug")


@pytest.fixture
async def client() -> AsyncIterator[TestClient[web.Request, web.Application]]:
    spec = ApiSpec("t", "1")
    spec.add(Operation("POST", "/v1/things", Scope.SEND, "make"))
    spec.add(Operation("GET", "/v1/things/{id}", Scope.READ, "read"))
    keys = KeyRing.from_json(json.dumps([
        {"id": "reader", "sha256": READER_HASH, "scopes": ["read"]},
        {"id": "writer", "sha256": WRITER_HASH, "scopes": ["send"], "rate_per_second": 3},
    ]))  # fmt: skip
    gate = ApiGate(keys, spec, default_rate=100)
    app = web.Application(middlewares=[gate.middleware])
    app.router.add_post("/v1/things", ok)
    app.router.add_get("/v1/things/{id}", refuse)
    app.router.add_get("/healthz", ok)
    app.router.add_get("/operator", crash)
    async with TestClient(TestServer(app)) as test_client:
        yield test_client


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_keys_and_scopes(client: TestClient[web.Request, web.Application]) -> None:
    assert (await client.post("/v1/things")).status == 401
    assert (await client.post("/v1/things", headers=bearer(READER))).status == 403
    assert (await client.post("/v1/things", headers=bearer(WRITER))).status == 200
    assert (await client.get("/healthz")).status == 200  # no key needed
    # Not an API operation: reading needs 'read', changing anything needs 'admin'.
    assert (await client.delete("/operator", headers=bearer(WRITER))).status == 403


async def test_every_failure_is_json_with_the_request_id(
    client: TestClient[web.Request, web.Application],
) -> None:
    refused = await client.get("/v1/things/1", headers={**bearer(READER), REQUEST_ID: "abc-1"})
    assert refused.status == 409 and refused.headers[REQUEST_ID] == "abc-1"
    assert await refused.json() == {"error": "conflict", "message": "already there",
                                    "request_id": "abc-1"}  # fmt: skip
    missing = await client.get("/nowhere", headers=bearer(READER))
    assert missing.status == 404 and (await missing.json())["error"] == "not_found"
    crashed = await client.get("/operator", headers=bearer(READER))
    body = await crashed.text()
    assert crashed.status == 500 and "secret detail" not in body
    assert json.loads(body)["request_id"] == crashed.headers[REQUEST_ID]
    # A request id that is not a plain token is replaced, not echoed.
    odd = await client.get("/healthz", headers={REQUEST_ID: "x" * 65})
    assert odd.headers[REQUEST_ID] != "x" * 65


async def test_a_key_over_its_rate_hears_429(
    client: TestClient[web.Request, web.Application],
) -> None:
    codes = [(await client.post("/v1/things", headers=bearer(WRITER))).status for _ in range(6)]
    assert codes[:3] == [200, 200, 200] and 429 in codes[3:], codes


def test_buckets_of_keys_gone_quiet_are_dropped_and_a_busy_one_keeps_its_state() -> None:
    now = [0.0]
    gate = ApiGate(KeyRing.from_json("[]"), ApiSpec("t", "1"), default_rate=100,
                   clock=lambda: now[0])  # fmt: skip
    for number in range(1000):  # keys seen once (rotated, revoked, one-off scripts)
        gate.charge(ApiKey(f"k{number}", frozenset({Scope.SEND}), None, None))
    assert gate.tracked_keys == 1000
    busy = ApiKey("busy", frozenset({Scope.SEND}), 3.0, None)
    now[0] = SWEEP_SECONDS - 0.1
    for _ in range(3):  # its whole bucket, just before the sweep
        gate.charge(busy)
    now[0] = SWEEP_SECONDS
    with pytest.raises(ApiError) as over:  # the sweep ran: only the refilled buckets went
        gate.charge(busy)
    assert over.value.status == 429
    assert gate.tracked_keys == 1
    # A dropped bucket was a full one: a key seen again starts where it would have been.
    now[0] = 2 * SWEEP_SECONDS + 1
    for _ in range(3):
        gate.charge(busy)
    assert gate.tracked_keys == 1
