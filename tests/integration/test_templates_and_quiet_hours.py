"""Templates, quiet hours and daily caps through a running worker on the real broker, to the
provider sandboxes: a template upserted on the ``templates`` topic and rendered per locale,
a request held through the night on a stepped clock (``NOTIFY_CLOCK_FILE``) and released when
the window opens, a daily cap counted in the user's own day."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import orjson
import pytest

from config.clock import step_clock
from providers.sandboxes.stack import SandboxStack
from scripts.worker_process import WorkerProcess
from scripts.workload import (
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
from tests.integration.pipeline_harness import PARTITIONS, delivery_events

pytestmark = pytest.mark.integration

LISBON = ZoneInfo("Europe/Lisbon")

TEMPLATE_V1 = {
    "template_id": "order_shipped",
    "version": 1,
    "default_locale": "en",
    "locales": {"en": {"push": {"title": "v1", "body": "v1"}}},
}
TEMPLATE = {
    "template_id": "order_shipped",
    "version": 2,
    "default_locale": "en",
    "locales": {
        "en": {
            "push": {"title": "Order {{ order_id }} shipped", "body": "Hi {{ user.name }}"},
            "email": {
                "subject": "Your order {{ order_id }}",
                "html": "<p>Hello <b>{{ user.name }}</b>, order {{ order_id }} is on its way."
                "</p><p><a href='https://x.test/{{ order_id }}'>Track it</a></p>",
            },
            "sms": {"text": "Order {{ order_id }} shipped"},
        },
        "pt": {
            "push": {"title": "Pedido {{ order_id }} enviado", "body": "Olá {{ user.name }}"},
            "email": {
                "subject": "O seu pedido {{ order_id }}",
                "html": "<p>Olá {{ user.name }}</p>",
                "text": "Olá {{ user.name }}, o pedido {{ order_id }} vai a caminho.",
            },
            "sms": {"text": "Pedido {{ order_id }} enviado"},
        },
        "pt-BR": {"push": {"title": "Seu pedido {{ order_id }} foi enviado", "body": "Oi"}},
    },
}
MISSING_VARIABLE = {
    "template_id": "needs_code",
    "version": 1,
    "locales": {"en": {"push": {"title": "Code", "body": "Your code is {{ code }}"}}},
}


async def user_views(web_url: str, user_id: str, ready: Callable[[dict[str, Any]], bool]) -> None:
    """Poll ``/users/<id>/`` until ``ready`` holds (control topics and requests are consumed
    independently: a request must not be resolved before its user's set-up)."""
    deadline = time.monotonic() + 60
    async with aiohttp.ClientSession() as session:
        while True:
            async with session.get(f"{web_url}/users/{user_id}/") as response:
                snapshot = await response.json() if response.status == 200 else {}
            if ready(snapshot):
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"user {user_id} not set up: {snapshot}")
            await asyncio.sleep(0.1)


def set_up(broker: str, worker: WorkerProcess, users: list[User], extra: list[Any]) -> None:
    asyncio.run(setup_users(broker, users))
    asyncio.run(produce(broker, extra))
    for user in users:

        def loaded(snapshot: dict[str, Any], user: User = user) -> bool:
            return (
                len(snapshot.get("devices", ())) == len(user.devices)
                and "email" in snapshot.get("contacts", {})
                and bool(snapshot.get("attributes"))
            )

        asyncio.run(user_views(worker.web_url, user.user_id, loaded))


def control(topic: str, value: dict[str, Any]) -> tuple[str, bytes, bytes]:
    return topic, value["user_id"].encode(), orjson.dumps(value)


def template_record(value: dict[str, Any]) -> tuple[str, bytes, bytes]:
    return topics.TEMPLATES, value["template_id"].encode(), orjson.dumps(value)


def by_address(records: list[dict[str, Any]], nid: str) -> dict[str, dict[str, Any]]:
    return {r["address"]: r for r in records if r["notification_id"] == nid}


def test_templates_render_per_locale_with_fallback_and_reject_a_missing_variable(
    broker: str, sandboxes: SandboxStack, workers: Callable[..., WorkerProcess]
) -> None:
    worker = workers()
    users = make_users(3, sandboxes.webhook.url(""), opt_out_rate=0.0, first=80_000)
    locales = dict(zip((u.user_id for u in users), ("pt-BR", "pt", "fr"), strict=True))
    names = dict(zip((u.user_id for u in users), ("Ana", "Rui", "Zoé"), strict=True))
    attributes = [
        control(
            topics.USER_ATTRIBUTES,
            {"user_id": uid, "attributes": {"locale": locale, "name": names[uid]}},
        )
        for uid, locale in locales.items()
    ]
    set_up(broker, worker, users, attributes)
    # v1, then v2, then v1 again (a stale copy): v2 is what renders.
    stored = [template_record(t) for t in (TEMPLATE_V1, TEMPLATE, TEMPLATE_V1, MISSING_VARIABLE)]
    asyncio.run(produce(broker, stored))
    changelog = "notify-templates-changelog"
    asyncio.run(read_topic(broker, changelog, lambda ms: len(ms) >= 3, timeout=60))

    channels = ["push", "email", "sms"]
    requests = [
        {
            "notification_id": f"tpl-{i}",
            "user_id": user.user_id,
            "template_id": "order_shipped",
            "data": {"order_id": f"A{i}"},
            "channels": channels,
        }
        for i, user in enumerate(users)
    ]
    # The same user, template and content again (content dedup), and other content (sent).
    again = {**requests[1], "notification_id": "tpl-again"}
    other = {**requests[1], "notification_id": "tpl-other", "data": {"order_id": "B1"}}
    missing = {
        "notification_id": "tpl-missing",
        "user_id": users[0].user_id,
        "template_id": "needs_code",
        "channels": ["push"],
    }
    unknown = {**missing, "notification_id": "tpl-unknown", "template_id": "nope"}
    inline = {
        "notification_id": "tpl-inline",
        "user_id": users[2].user_id,
        "title": "Plain {x}",
        "body": "still {x}",
        "data": {"x": "works"},
        "channels": ["sms"],
    }
    asyncio.run(produce(broker, json_records(topics.REQUESTS, [*requests, missing, unknown])))
    # After the first: the repeat must find its content claim.
    delivery_events(broker, lambda evs: any(e["notification_id"] == "tpl-1" for e in evs))
    asyncio.run(produce(broker, json_records(topics.REQUESTS, [again, other, inline])))

    def per_user(user: User) -> int:
        return len(user.devices) + 2  # push to every device, one e-mail, one SMS

    expected = sum(per_user(u) for u in users) + per_user(users[1]) + 1
    received = sandboxes.wait_for(lambda rs: len(rs) >= expected, timeout=60)
    events = delivery_events(
        broker,
        lambda evs: (
            {"tpl-missing", "tpl-unknown", "tpl-again"}
            <= {e["notification_id"] for e in evs if e["status"] == "rejected"}
        ),
    )
    rejected = {e["notification_id"]: e["reason"] for e in events if e["status"] == "rejected"}
    assert rejected["tpl-missing"] == (
        "template_error: template 'needs_code' (en push.body): 'code' is undefined"
    )
    assert rejected["tpl-unknown"] == "template_error: unknown template 'nope'"
    assert rejected["tpl-again"] == "duplicate_content"
    assert set(rejected) == {"tpl-missing", "tpl-unknown", "tpl-again"}

    br, pt, fr = users
    # pt-BR: its own push part; e-mail and SMS from pt (pt-BR has none).
    got = by_address(received, "tpl-0")
    for token in br.devices:
        assert (got[token]["title"], got[token]["body"]) == ("Seu pedido A0 foi enviado", "Oi")
    assert got[br.email]["subject"] == "O seu pedido A0"
    assert got[br.email]["html"].strip() == "<p>Olá Ana</p>"
    assert got[br.email]["text"].strip() == "Olá Ana, o pedido A0 vai a caminho."
    assert got[br.phone]["body"] == "Pedido A0 enviado"
    # pt: every part its own.
    got = by_address(received, "tpl-1")
    for token in pt.devices:
        assert (got[token]["title"], got[token]["body"]) == ("Pedido A1 enviado", "Olá Rui")
    assert got[pt.phone]["body"] == "Pedido A1 enviado"
    assert by_address(received, "tpl-other")[pt.phone]["body"] == "Pedido B1 enviado"
    # fr: no such locale, the default (en) — version 2, not the stale v1 read after it. Its
    # HTML is escaped where a variable is and gets a text alternative made from it.
    got = by_address(received, "tpl-2")
    for token in fr.devices:
        assert (got[token]["title"], got[token]["body"]) == ("Order A2 shipped", "Hi Zoé")
    mail = got[fr.email]
    assert mail["subject"] == "Your order A2"
    assert "<b>Zoé</b>" in mail["html"]
    assert mail["text"].strip() == (
        "Hello Zoé, order A2 is on its way.\n\nTrack it (https://x.test/A2)"
    )
    # Inline title and body still use {name} placeholders, untouched by templates.
    sms = by_address(received, "tpl-inline")[fr.phone]
    assert (sms["title"], sms["body"]) == ("Plain works", "still works")
    assert len(received) == expected


def local(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=LISBON).timestamp()


async def status_of(web_url: str, nid: str) -> dict[str, Any]:
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{web_url}/notifications/{nid}/") as response:
            return dict(await response.json())


def test_quiet_hours_hold_until_the_window_opens_and_the_cap_counts_the_users_day(
    broker: str, sandboxes: SandboxStack, workers: Callable[..., WorkerProcess], tmp_path: Path
) -> None:
    clock = tmp_path / "clock"
    step_clock(clock, local("2026-12-01T23:30:00"))
    worker = workers(clock_file=clock)
    sleeper, capped = make_users(2, sandboxes.webhook.url(""), opt_out_rate=0.0, first=81_000)
    every = {c: True for c in ("push", "email", "sms", "webhook", "in_app")}
    extra = [
        control(
            topics.USER_ATTRIBUTES,
            {"user_id": u.user_id, "attributes": {"timezone": "Europe/Lisbon"}},
        )
        for u in (sleeper, capped)
    ]
    set_up(broker, worker, [sleeper, capped], extra)
    # After the set-up's own preferences record: quiet hours for push and SMS, and a cap.
    quiet = {"start": "22:00", "end": "07:00"}
    prefs = [
        control(
            topics.PREFERENCES,
            {"user_id": sleeper.user_id, "channels": every, "quiet_hours": {"push": quiet}},
        ),
        control(topics.PREFERENCES, {"user_id": capped.user_id, "channels": every, "daily_cap": 2}),
    ]
    asyncio.run(produce(broker, prefs))
    asyncio.run(
        user_views(worker.web_url, sleeper.user_id, lambda s: bool(s["preferences"]["quiet_hours"]))
    )
    asyncio.run(
        user_views(worker.web_url, capped.user_id, lambda s: s["preferences"]["daily_cap"] == 2)
    )

    def request(nid: str, user: User, channels: list[str], **extra: Any) -> dict[str, Any]:
        return {
            "notification_id": nid,
            "user_id": user.user_id,
            "title": nid,
            "body": nid,
            "channels": channels,
            **extra,
        }

    night = [
        request("night", sleeper, ["push", "email"]),  # e-mail now, push in the morning
        request("reset", sleeper, ["push"], category="security"),  # passes
        request("fraud", sleeper, ["push"], priority="high"),  # passes
        *(request(f"cap-{i}", capped, ["email"]) for i in range(3)),  # the third is capped
    ]
    asyncio.run(produce(broker, json_records(topics.REQUESTS, night)))
    events = delivery_events(
        broker,
        lambda evs: (
            {("night", "held"), ("cap-2", "capped")}
            <= {(e["notification_id"], e["status"]) for e in evs}
            and sum(e["status"] == "sent" for e in evs) >= 1 + 2 * len(sleeper.devices) + 2
        ),
    )
    held = next(e for e in events if e["status"] == "held")
    assert float(held["reason"]) == pytest.approx(local("2026-12-02T07:00:00"))
    capped_event = next(e for e in events if e["status"] == "capped")
    assert (capped_event["notification_id"], capped_event["reason"]) == (
        "cap-2",
        "daily cap of 2 reached",
    )
    arrived = {(r["notification_id"], r["address"]) for r in sandboxes.received()}
    assert ("night", sleeper.email) in arrived
    assert not {a for a in arrived if a[0] == "night" and a[1] in sleeper.devices}
    for token in sleeper.devices:
        assert {("reset", token), ("fraud", token)} <= arrived
    status = asyncio.run(status_of(worker.web_url, "night"))
    assert status["holding"] is True and status["status"] in ("accepted", "partially_sent")
    assert asyncio.run(status_of(worker.web_url, "cap-2"))["status"] == "capped"

    # Morning in Lisbon: the push goes out; and a new day for the capped user.
    step_clock(clock, local("2026-12-02T07:00:01"))
    morning = [request("cap-3", capped, ["email"])]
    asyncio.run(produce(broker, json_records(topics.REQUESTS, morning)))
    wanted = {("night", t) for t in sleeper.devices} | {("cap-3", capped.email)}
    sandboxes.wait_for(
        lambda rs: wanted <= {(r["notification_id"], r["address"]) for r in rs}, timeout=60
    )
    events = delivery_events(broker, lambda evs: any(e["status"] == "released" for e in evs))
    released = next(e for e in events if e["status"] == "released")
    assert (released["reason"], released["deliveries"]) == ("push", len(sleeper.devices))

    def settled(nid: str) -> dict[str, Any]:
        deadline = time.monotonic() + 30
        while True:
            status = asyncio.run(status_of(worker.web_url, nid))
            if status["status"] == "sent" or time.monotonic() > deadline:
                return status
            time.sleep(0.1)

    status = settled("night")
    assert status["status"] == "sent" and status["holding"] is False
    assert status["expected"] == 1 + len(sleeper.devices)
    # Each arrived once.
    pairs = [(r["notification_id"], r["address"]) for r in sandboxes.received()]
    assert len(pairs) == len(set(pairs))


async def template_version(web_url: str, template_id: str) -> int | None:
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{web_url}/templates/{template_id}/") as response:
            return int((await response.json())["version"]) if response.status == 200 else None


def test_every_worker_holds_every_template_and_follows_its_new_versions(
    broker: str, sandboxes: SandboxStack, workers: Callable[..., WorkerProcess], tmp_path: Path
) -> None:
    first = workers()
    second = workers(data_dir=tmp_path / "second-data")
    users = make_users(16, sandboxes.webhook.url(""), opt_out_rate=0.0, first=82_000)
    assert {partition_for(u.user_id, PARTITIONS) for u in users} == set(range(PARTITIONS))
    asyncio.run(setup_users(broker, users))
    asyncio.run(wait_for_users(first.web_url, users))

    def held_by_both(version: int) -> None:
        deadline = time.monotonic() + 60
        for worker in (first, second):
            while asyncio.run(template_version(worker.web_url, "order_shipped")) != version:
                assert time.monotonic() < deadline, f"{worker.web_url} lacks version {version}"
                time.sleep(0.1)

    # The second worker holds the templates partition as a standby: it learns of a template,
    # and of each new version, from the changelog the owner writes.
    for version, title in ((1, "first"), (2, "second")):
        sms = {"text": f"{title} {{{{ order_id }}}}"}
        template = {**TEMPLATE_V1, "version": version, "locales": {"en": {"sms": sms}}}
        asyncio.run(produce(broker, [template_record(template)]))
        held_by_both(version)
        requests = [
            {"notification_id": f"v{version}-{u.user_id}", "user_id": u.user_id,
             "template_id": "order_shipped", "data": {"order_id": "7"}, "channels": ["sms"]}
            for u in users
        ]  # fmt: skip
        asyncio.run(produce(broker, json_records(topics.REQUESTS, requests)))

        def arrived(records: list[dict[str, Any]], prefix: str = f"v{version}-") -> bool:
            return sum(str(r["notification_id"]).startswith(prefix) for r in records) >= len(users)

        received = sandboxes.wait_for(arrived, timeout=60)
        bodies = {r["body"] for r in received if r["notification_id"].startswith(f"v{version}-")}
        assert bodies == {f"{title} 7"}
