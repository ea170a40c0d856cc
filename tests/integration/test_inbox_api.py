"""The in-app inbox through the HTTP API on a running worker: a notification sent through the
API appears on the user's open live stream (Server-Sent Events, read with aiohttp's client),
the inbox lists it unread, mark read and archive change what the inbox shows, and a stream
reconnecting with ``Last-Event-ID`` is sent what it missed, and a rebalance ends the streams of
the users whose partition moved, whose next request is redirected to the new owner. One broker
and one worker for the module (a second joins in the last test); each test has its own users."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from yarl import URL

from api.keys import new_key
from providers.sandboxes.stack import SandboxStack
from scripts.embedded_broker import EmbeddedBroker, free_port
from scripts.worker_process import WorkerProcess, settings_env
from streams.partitioning import partition_for
from tests.integration.pipeline_harness import PARTITIONS, start_worker, worker_settings

pytestmark = pytest.mark.integration

KEYS = {scope: new_key(f"inbox-{scope}") for scope in ("send", "read")}
ENTRIES = [{"id": f"inbox-{s}", "sha256": h, "scopes": [s]} for s, (_, h) in KEYS.items()]


def auth(scope: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {KEYS[scope][0]}"}


@dataclass
class Cluster:
    worker: WorkerProcess
    values: dict[str, Any]  # the worker's settings, for a second one
    tmp: Path


@pytest.fixture(scope="module")
def cluster(sandboxes: SandboxStack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    tmp = tmp_path_factory.mktemp("inbox-api")
    with EmbeddedBroker(log_path=tmp / "broker.log") as bootstrap:
        values = worker_settings(
            bootstrap,
            sandboxes,
            tmp / "data",
            api_keys=json.dumps(ENTRIES),
            inbox_stream_heartbeat_seconds=1.0,
        )
        worker = start_worker(values, tmp / "worker.log")
        yield Cluster(worker, values, tmp)
        worker.stop()


@pytest.fixture
async def http(cluster: Cluster) -> AsyncIterator[aiohttp.ClientSession]:
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(cluster.worker.web_url, timeout=timeout) as session:
        yield session


async def send_in_app(http: aiohttp.ClientSession, user_id: str, title: str) -> str:
    body = {"user_id": user_id, "title": title, "body": "in the app", "channels": ["in_app"]}
    async with http.post("/v1/notifications", json=body, headers=auth("send")) as answer:
        assert answer.status == 202, await answer.text()
        notification_id: str = (await answer.json())["notification_id"]
    return notification_id


async def inbox(http: aiohttp.ClientSession, user_id: str, **query: str) -> dict[str, Any]:
    url = f"/v1/users/{user_id}/inbox"
    async with http.get(url, params=query, headers=auth("read")) as answer:
        assert answer.status == 200, await answer.text()
        shown: dict[str, Any] = await answer.json()
    return shown


async def act(http: aiohttp.ClientSession, path: str) -> None:
    async with http.post(path, headers=auth("send")) as answer:
        assert answer.status == 202, await answer.text()


async def until(
    read: Callable[[], Awaitable[dict[str, Any]]], holds: Callable[[dict[str, Any]], bool]
) -> dict[str, Any]:
    """Re-read until ``holds`` (the action is applied by the owner after the 202); the
    session's 30 s timeout bounds it."""
    for _ in range(150):
        value = await read()
        if holds(value):
            return value
        await asyncio.sleep(0.2)
    return value


async def next_event(stream: aiohttp.ClientResponse) -> tuple[int, dict[str, Any]]:
    """The next event's id and data (comments skipped)."""
    fields: dict[str, str] = {}
    async for raw in stream.content:
        line = raw.decode().rstrip("\n")
        if line == "" and "data" in fields:
            return int(fields["id"]), orjson.loads(fields["data"])
        elif line and not line.startswith(":"):
            name, _, value = line.partition(": ")
            fields[name] = value
    raise AssertionError("the stream ended before an event")


async def next_change(stream: aiohttp.ClientResponse) -> dict[str, Any]:
    """The data of the next ``change`` event (messages, heartbeats and comments skipped)."""
    fields: dict[str, str] = {}
    async for raw in stream.content:
        line = raw.decode().rstrip("\n")
        if line == "":
            if fields.get("event") == "change":
                assert "id" not in fields  # a change keeps the last message's id
                return dict(orjson.loads(fields["data"]))
            fields = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(": ")
            fields[name] = value
    raise AssertionError("the stream ended before a change")


async def test_a_message_is_streamed_listed_unread_then_read_then_archived(
    http: aiohttp.ClientSession,
) -> None:
    user = "inbox-user-1"
    path = f"/v1/users/{user}/inbox/stream"
    async with http.get(path) as refused:
        assert refused.status == 401
    async with http.get(path, headers=auth("read")) as stream:
        assert stream.status == 200
        assert stream.headers["Content-Type"].startswith("text/event-stream")
        assert (await stream.content.readline()).startswith(b"retry: ")  # open: now send
        async with http.get("/metrics", headers=auth("read")) as scraped:
            assert "\nnotify_inbox_streams 1.0\n" in await scraped.text()
        notification_id = await send_in_app(http, user, "Your order shipped")
        event_id, data = await next_event(stream)
        assert (data["notification_id"], data["title"]) == (notification_id, "Your order shipped")
        assert (data["id"], data["read"], data["archived"]) == (event_id, False, False)

        listed = await inbox(http, user)
        assert listed["unread"] == 1
        assert [(m["notification_id"], m["read"]) for m in listed["messages"]] == [
            (notification_id, False)
        ]
        # Read on another device: the open stream is told, with the unread count after it.
        await act(http, f"/v1/users/{user}/inbox/{notification_id}/read")
        change = await asyncio.wait_for(next_change(stream), 30)
        assert change == {"action": "read", "notification_id": notification_id, "unread": 0}
    read = await inbox(http, user)
    assert read["unread"] == 0 and read["messages"][0]["read"] is True

    await act(http, f"/v1/users/{user}/inbox/{notification_id}/archive")
    gone = await until(lambda: inbox(http, user), lambda page: not page["messages"])
    assert gone["messages"] == []
    kept = await inbox(http, user, include_archived="true")
    assert [(m["notification_id"], m["archived"]) for m in kept["messages"]] == [
        (notification_id, True)
    ]


async def test_a_reconnecting_stream_gets_what_it_missed_and_heartbeats_meanwhile(
    http: aiohttp.ClientSession,
) -> None:
    user = "inbox-user-2"
    first = await send_in_app(http, user, "First")
    listed = await until(lambda: inbox(http, user), lambda page: bool(page["messages"]))
    seen = listed["messages"][0]["id"]
    missed = await send_in_app(http, user, "While away")
    await until(lambda: inbox(http, user), lambda page: len(page["messages"]) == 2)
    await act(http, f"/v1/users/{user}/inbox/read-all")
    # Applied before the stream opens: once open, the stream would be sent it as a change.
    await until(lambda: inbox(http, user), lambda page: page["unread"] == 0)
    headers = {**auth("read"), "Last-Event-ID": str(seen)}
    async with http.get(f"/v1/users/{user}/inbox/stream", headers=headers) as stream:
        event_id, data = await next_event(stream)
        assert (event_id, data["notification_id"]) == (seen + 1, missed)
        # Idle, it says it is alive (every second here): a comment EventSource ignores.
        assert await stream.content.readline() == b": heartbeat\n"
        live = await send_in_app(http, user, "Live")
        event_id, data = await next_event(stream)
        assert (event_id, data["notification_id"]) == (seen + 2, live)
    assert first != missed
    page = await until(lambda: inbox(http, user), lambda page: page["unread"] == 1)
    assert page["unread"] == 1  # read-all covered the first two, not the live one


async def opened(stream: aiohttp.ClientResponse) -> None:
    """Read the stream's opening (its reconnect delay and a comment): it is now subscribed."""
    assert stream.status == 200, await stream.text()
    assert (await stream.content.readline()).startswith(b"retry: ")
    assert await stream.content.readline() == b": connected\n"
    assert await stream.content.readline() == b"\n"


async def test_a_rebalance_ends_the_streams_of_moved_users_and_redirects_them(
    http: aiohttp.ClientSession, cluster: Cluster
) -> None:
    # One user per partition, so that whichever partitions move, some stream is on one.
    users: dict[int, str] = {}
    for n in range(1000):
        users.setdefault(partition_for(f"inbox-move-{n}", PARTITIONS), f"inbox-move-{n}")
    streams = {}
    for user in users.values():
        streams[user] = await http.get(f"/v1/users/{user}/inbox/stream", headers=auth("read"))
        await opened(streams[user])
    second_port = free_port()
    second = WorkerProcess(
        settings_env({**cluster.values, "web_port": second_port, "data_dir": cluster.tmp / "d2"}),
        cluster.tmp / "second.log",
    )
    second.launch()  # the group rebalances as it joins, before it is ready
    try:
        moved = await until_moved(http, list(users.values()))
        assert moved and len(moved) < len(users)  # the second worker took some, not all
        assert {URL(location).port for location in moved.values()} == {second_port}
        for user in moved:  # ended by the first worker: EventSource would reconnect now
            rest = await streams[user].content.read()  # to its end
            assert set(rest.split(b"\n\n")) <= {b": heartbeat", b""}, rest
        stayed = next(user for user in users.values() if user not in moved)
        notification_id = await send_in_app(http, stayed, "Still here")
        _, data = await next_event(streams[stayed])  # still open, and still fed
        assert data["notification_id"] == notification_id
        for stream in streams.values():
            stream.close()
        user, location = next(iter(moved.items()))
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as elsewhere:
            there = await open_once_owned(elsewhere, location)
            try:
                await opened(there)  # the new owner serves it, and feeds it
                notification_id = await send_in_app(http, user, "After the move")
                _, data = await next_event(there)
            finally:
                there.close()
        assert data["notification_id"] == notification_id
    finally:
        second.kill()  # its partitions go back to the first worker; no state to keep


async def open_once_owned(session: aiohttp.ClientSession, url: str) -> aiohttp.ClientResponse:
    """The stream at ``url``, retried as its Retry-After says while that worker answers 503: the
    old owner may redirect before the new one has learnt the group's final assignment."""
    for _ in range(30):
        answer = await session.get(url, headers=auth("read"))
        if answer.status != 503:
            return answer
        assert answer.headers["Retry-After"] == "1", answer.headers
        answer.close()
        await asyncio.sleep(1.0)
    raise AssertionError(f"{url} answered 503 for 30 s")


async def until_moved(http: aiohttp.ClientSession, users: list[str]) -> dict[str, str]:
    """The users whose stream the first worker now redirects, with where to, once any is."""
    moved: dict[str, str] = {}
    for _ in range(150):
        for user in users:
            path = f"/v1/users/{user}/inbox/stream"
            async with http.get(path, headers=auth("read"), allow_redirects=False) as answer:
                if answer.status == 307:
                    moved[user] = answer.headers["Location"]
        if moved:
            return moved
        await asyncio.sleep(0.2)
    return moved
