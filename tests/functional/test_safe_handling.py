"""No record stops an agent (agents/safe.py, agents/dead_letter.py) and a crashed agent comes
back (agents/supervision.py), under test_context() with in-memory channels."""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import faust
import orjson
import pytest
from aiokafka.errors import MessageSizeTooLargeError
from faust.exceptions import ProducerSendError
from faust.types.agents import AgentTestWrapperT

from agents import dead_letter
from agents.counters import FAILURES
from agents.supervision import STUCK_AFTER_SECONDS, RestartingSupervisor
from app import Pipeline, build_app
from config.settings import Settings
from streams.deliveries import DeliveryEvent
from streams.faust_types import Agent, Channel, Event, Stream
from streams.topics import Topics
from tables import status
from tests.functional.conftest import (
    Recorder,
    channel_topics,
    eventually,
    make_settings,
    sent,
    values,
)

# One of each shape a producer (or a bug) can write, for every consumed topic.
GARBAGE: dict[str, bytes | None] = {
    "tombstone": None,
    "binary": os.urandom(256),
    "nested": b"[" * 100_000 + b"]" * 100_000,
    "not an object": b'["a", "list"]',
    "wrong types": orjson.dumps({"user_id": ["u1"], "notification_id": 7, "title": {}}),
    "huge": b'{"pad": "' + b"x" * 1_100_000 + b'"}',
}


@pytest.fixture(autouse=True)
def counters() -> None:
    FAILURES.reset()


def req(nid: str) -> bytes:
    return orjson.dumps({"notification_id": nid, "user_id": "u1", "title": "t", "body": "b"})


def reasons(channel: Channel) -> list[str]:
    return [dict(e.headers)["x-dlq-reason"].decode() for e in sent(channel)]


async def test_every_shape_of_garbage_on_the_intake_is_dead_lettered(pipeline: Pipeline) -> None:
    dlq = pipeline.topics.requests_dlq
    async with pipeline.agents["resolve"].test_context() as agent:
        for i, raw in enumerate(GARBAGE.values()):
            await agent.put(raw, key=None if raw is None else b"u1")
            await agent.put(req(f"ok-{i}"), key=b"u1")
        await eventually(lambda: len(sent(pipeline.topics.delivery_events)) == len(GARBAGE))
    assert len(sent(dlq)) == len(GARBAGE)
    why = dict(zip(GARBAGE, reasons(dlq), strict=True))
    assert why["tombstone"] == "empty message"
    assert why["binary"].startswith("malformed JSON")
    assert why["nested"].startswith("record is 200000 bytes")
    assert why["not an object"] == "expected a JSON object, got list"
    assert why["wrong types"] == "Expected `str`, got `array` - at `$.user_id`"
    assert why["huge"].startswith("record is 1100011 bytes, larger than the 65536-byte limit")
    accepted = [e["notification_id"] for e in values(pipeline.topics.delivery_events)]
    assert accepted == [f"ok-{i}" for i in range(len(GARBAGE))]
    assert FAILURES.invalid_records["resolve_requests"] == len(GARBAGE)


async def test_a_record_too_large_to_copy_is_dead_lettered_truncated(pipeline: Pipeline) -> None:
    huge = GARBAGE["huge"]
    assert huge is not None
    async with pipeline.agents["resolve"].test_context() as agent:
        await agent.put(huge, key=b"u1")
        await eventually(lambda: len(sent(pipeline.topics.requests_dlq)) == 1)
    [letter] = sent(pipeline.topics.requests_dlq)
    headers = dict(letter.headers)
    assert headers[dead_letter.TRUNCATED_HEADER] == str(len(huge)).encode()
    assert letter.value == huge[: dead_letter.PREFIX_BYTES]
    assert headers[dead_letter.SOURCE_HEADER].endswith(b":0:0")
    assert FAILURES.dead_letters_truncated["<channel>"] == 1


async def test_garbage_on_the_control_topics_is_dead_lettered(pipeline: Pipeline) -> None:
    dlq = pipeline.topics.control_dlq
    kinds = ["user-preferences", "device-registrations", "user-contacts", "user-suppressions"]
    async with pipeline.agents["control"].test_context() as agent:
        for kind in kinds:
            for raw in GARBAGE.values():
                await agent.put(raw, key=b"u1", headers={"x-control-kind": kind.encode()})
        await agent.put(b"{}", key=b"u1", headers={"x-control-kind": b"\xff\xfe"})
        await agent.put(
            orjson.dumps({"user_id": "u1", "email": "u1@example.com"}),
            key=b"u1",
            headers={"x-control-kind": b"user-contacts"},
        )
    # A tombstone on a control topic is an erasure's (agents/erasure.py): nothing to apply,
    # nothing wrong either.
    assert len(sent(dlq)) == len(kinds) * (len(GARBAGE) - 1) + 1
    assert reasons(dlq)[-1].startswith("unknown kind")
    assert all(r.split(":")[0] in kinds for r in reasons(dlq)[:-1])
    assert dict(pipeline.tables.contacts["u1"]) == {"email": "u1@example.com"}


async def test_garbage_delivery_events_get_their_own_dead_letter_topic(pipeline: Pipeline) -> None:
    good = DeliveryEvent(notification_id="n1", user_id="u1", status="accepted", at=1.0)
    bad_types = orjson.dumps({"notification_id": "n1", "user_id": "u1", "status": 1, "at": "x"})
    async with pipeline.agents["status"].test_context() as agent:
        for raw in [*GARBAGE.values(), bad_types]:
            await agent.put(raw, key=b"n1")
        await agent.put(good.to_json(), key=b"n1")
    assert len(sent(pipeline.topics.delivery_events_dlq)) == len(GARBAGE) + 1
    last = reasons(pipeline.topics.delivery_events_dlq)[-1]
    assert last == "Expected `str`, got `int` - at `$.status`"
    recorded = status.get(pipeline.tables.status, "n1")
    assert recorded is not None and recorded["status"] == "pending"


class Refusing(Recorder):
    """A channel that refuses what ``refuse`` picks, as a producer refuses a record too large
    (aiokafka raises MessageSizeTooLargeError at send time; Faust wraps it)."""

    def __init__(self, app: faust.App, refuse: Callable[[Event], bool]) -> None:
        super().__init__(app)
        self.refuse = refuse

    async def put(self, value: Event) -> None:
        if self.refuse(value):
            raise ProducerSendError(f"Error while sending: {MessageSizeTooLargeError()!r}")
        await super().put(value)


def refusing_pipeline(tmp_path: Path, **refused: Callable[[Any], bool]) -> Pipeline:
    def topics_for(app: faust.App, settings: Settings) -> Topics:
        topics = channel_topics(app, settings)
        swaps = {name: Refusing(app, refuse) for name, refuse in refused.items()}
        return Topics(**{**topics.__dict__, **swaps})

    built = build_app(make_settings(tmp_path), topics_for=topics_for)
    built.app.finalize()
    return built


async def test_an_outcome_the_producer_refuses_dead_letters_its_request(tmp_path: Path) -> None:
    pipeline = refusing_pipeline(
        tmp_path, delivery_events=lambda e: orjson.loads(e.value)["notification_id"] == "n-bad"
    )
    async with pipeline.agents["resolve"].test_context() as agent:
        for nid in ("n-bad", "n-ok"):
            await agent.put(req(nid), key=b"u1")
        await eventually(lambda: len(sent(pipeline.topics.delivery_events)) == 1)
    [reason] = reasons(pipeline.topics.requests_dlq)
    assert reason.startswith("internal error: ProducerSendError: Error while sending")
    assert [e["notification_id"] for e in values(pipeline.topics.delivery_events)] == ["n-ok"]
    assert FAILURES.internal_errors["resolve_requests"] == 1


async def test_a_dead_letter_the_broker_refuses_whole_is_written_truncated(
    tmp_path: Path,
) -> None:
    # As a broker whose message.max.bytes is below the producer's max_request_size would.
    pipeline = refusing_pipeline(tmp_path, requests_dlq=lambda e: len(e.value or b"") > 100_000)
    nested = GARBAGE["nested"]
    async with pipeline.agents["resolve"].test_context() as agent:
        await agent.put(nested, key=b"u1")
        await eventually(lambda: len(sent(pipeline.topics.requests_dlq)) == 1)
    [letter] = sent(pipeline.topics.requests_dlq)
    assert dict(letter.headers)[dead_letter.TRUNCATED_HEADER] == b"200000"
    assert letter.value == (nested or b"")[: dead_letter.PREFIX_BYTES]


async def test_a_whole_copy_the_broker_fails_later_is_written_truncated(
    pipeline: Pipeline,
) -> None:
    # Whole copies are not awaited (a linger per bad record); their future is watched. It fails
    # late when the broker refuses the batch (message.max.bytes below max_request_size).
    dlq = pipeline.topics.requests_dlq
    letter = dead_letter.Letter(
        "notification-requests:3:9", b"u1", b"x" * 100_000, {dead_letter.REASON_HEADER: b"why"}
    )
    async with pipeline.agents["resolve"].test_context():
        pending: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        dead_letter.watch(pending, dlq, letter)
        pending.set_exception(MessageSizeTooLargeError())
        await eventually(lambda: len(sent(dlq)) == 1)
    [written] = sent(dlq)
    assert dict(written.headers)[dead_letter.TRUNCATED_HEADER] == b"100000"
    assert dict(written.headers)[dead_letter.REASON_HEADER] == b"why"
    assert written.value == b"x" * dead_letter.PREFIX_BYTES and written.key == b"u1"
    assert FAILURES.produce_failures["<channel>"] == 1
    assert FAILURES.dead_letters_truncated["<channel>"] == 1


async def test_a_whole_copy_is_counted_once_the_broker_has_it(pipeline: Pipeline) -> None:
    letter = dead_letter.Letter("t:0:1", None, b"{}", {})
    pending: asyncio.Future[object] = asyncio.get_running_loop().create_future()
    dead_letter.watch(pending, pipeline.topics.requests_dlq, letter)
    assert FAILURES.dead_letters["<channel>"] == 0
    pending.set_result(None)
    await asyncio.sleep(0)
    assert FAILURES.dead_letters["<channel>"] == 1


async def test_a_record_that_cannot_be_dead_lettered_is_logged_and_the_agent_moves_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dead_letter, "RETRY_BACKOFF_SECONDS", 0.0)
    pipeline = refusing_pipeline(tmp_path, requests_dlq=lambda e: True)
    async with pipeline.agents["resolve"].test_context() as agent:
        await agent.put(b"\xff garbage", key=b"u1")
        await agent.put(req("n-ok"), key=b"u1")
        await eventually(lambda: len(sent(pipeline.topics.delivery_events)) == 1)
    assert FAILURES.dead_letter_failures["<channel>"] == 1
    [lost] = [r for r in caplog.records if r.levelno == logging.CRITICAL]
    assert "LOST <internal>:0:0" in lost.getMessage() and "malformed JSON" in lost.getMessage()


# ----------------------------------------------------------------------------- restarts


def supervised_context(agent: Agent) -> AgentTestWrapperT:
    """test_context() puts faust's CrashingSupervisor in unless told otherwise: run the agent
    under the supervisor it was registered with. (Faust types the argument as an instance; it
    is used as a class, like ``supervisor_strategy=`` of ``app.agent``.)"""
    strategy: Any = agent.supervisor_strategy
    return agent.test_context(supervisor_strategy=strategy)


async def test_every_agent_registered_here_restarts_through_the_counting_supervisor(
    pipeline: Pipeline,
) -> None:
    for name in ("resolve", "resolve_low", "control", "status"):
        assert pipeline.agents[name].supervisor_strategy is RestartingSupervisor, name


async def test_a_crashed_agent_is_restarted_counted_and_keeps_consuming(
    pipeline: Pipeline, caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[bytes] = []

    async def fragile(stream: Stream) -> None:
        async for event in stream.events():
            if event.value == b"boom":
                raise RuntimeError("a bug outside any handler")
            seen.append(event.value)

    agent = pipeline.app.agent(
        pipeline.app.channel(), name="fragile", supervisor_strategy=RestartingSupervisor
    )(fragile)
    async with supervised_context(agent) as test:
        for value in (b"1", b"boom", b"2", b"boom", b"3"):
            await test.put(value, wait=False)
        await eventually(lambda: seen == [b"1", b"2", b"3"], timeout=5)
        # Both crashes were handled: no actor is stuck, however long after them the liveness
        # probe asks (agents/health.py). (Not agent_faults: test_context marks its wrapper
        # crashed at any actor error, which a worker's agents are not.)
        later = time.monotonic() + 10 * STUCK_AFTER_SECONDS
        supervisor = test.supervisor
        assert isinstance(supervisor, RestartingSupervisor)
        assert supervisor.stuck_actors(later) == []
    assert FAILURES.agent_restarts["fragile"] == 2
    restarts = [r.getMessage() for r in caplog.records if "restarting it" in r.getMessage()]
    assert len(restarts) == 2 and "a bug outside any handler" in restarts[0]


async def test_an_agent_crashing_as_it_starts_is_restarted_with_a_back_off_forever(
    pipeline: Pipeline,
) -> None:
    starts: list[float] = []

    async def doomed(stream: Stream) -> None:
        starts.append(asyncio.get_running_loop().time())
        raise RuntimeError("broken at start")

    agent = pipeline.app.agent(
        pipeline.app.channel(), name="doomed", supervisor_strategy=RestartingSupervisor
    )(doomed)
    async with supervised_context(agent):
        await eventually(lambda: len(starts) >= 5, timeout=8)
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    # Faust's own supervisor would wait for its 5 s poll here, then give up (SystemExit) past
    # 100 restarts a second; this one restarts at once, then backs off: 0.1, 0.2, 0.4 s...
    assert gaps[0] < 1.0
    assert gaps[1] < gaps[2] < gaps[3]
    assert FAILURES.agent_restarts["doomed"] >= 4
