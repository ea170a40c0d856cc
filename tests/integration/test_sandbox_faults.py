"""Fault injection in every sandbox, seen through the real provider clients, and the stack's
fault endpoint (HTTP and ``inject()``)."""

from __future__ import annotations

import asyncio
import random
import secrets
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest

from providers.apns import ApnsProvider
from providers.base import (
    InvalidRecipientError,
    OutboundMessage,
    Provider,
    ProviderError,
    ThrottledError,
    TransientError,
)
from providers.fcm import FcmProvider
from providers.sandboxes.apns import ApnsSandbox
from providers.sandboxes.fcm import FcmSandbox
from providers.sandboxes.sms import SmsSandbox
from providers.sandboxes.smtp import SmtpSandbox
from providers.sandboxes.stack import SandboxStack
from providers.sandboxes.webhook import WebhookSandbox
from providers.sms import SmsProvider
from providers.smtp import SmtpProvider
from providers.webhook import WebhookProvider
from tests.integration.provider_helpers import (
    MessageBuilder,
    apns_token,
    fcm_token,
    make_settings,
    running,
)

pytestmark = pytest.mark.integration


@dataclass
class Rig:
    """One sandbox, the provider client talking to it, and what to send and inject."""

    name: str
    sandbox: Any
    provider: Provider
    message: MessageBuilder
    new_address: Callable[[], str]
    key: Callable[[str], str]  # how the sandbox keys (and records) an address
    transient: Any  # a fault the client reports as TransientError, without retrying itself
    throttle: Any  # a 429 fault; None for SMTP, which has none


def _rig(name: str, tmp_path: Path) -> tuple[Any, Callable[[Any], Provider], dict[str, Any]]:
    text = {"title": "Fault drill", "body": "Only a test"}
    if name == "apns":
        return ApnsSandbox(tmp_path / "apns"), ApnsProvider, dict(
            message=MessageBuilder("push", n=None, platform="ios", **text),
            new_address=apns_token, key=str,
            transient=(503, "ServiceUnavailable"), throttle=(429, "TooManyRequests"),
        )  # fmt: skip
    if name == "fcm":
        # 429 is FCM's only transient answer that firebase-admin does not retry by itself.
        return FcmSandbox(tmp_path / "fcm"), FcmProvider, dict(
            message=MessageBuilder("push", n=None, platform="android", **text),
            new_address=fcm_token, key=str,
            transient=(429, "QUOTA_EXCEEDED"), throttle=(429, "QUOTA_EXCEEDED"),
        )  # fmt: skip
    if name == "smtp":
        return SmtpSandbox(), SmtpProvider, dict(
            message=MessageBuilder("email", n=None, **text),
            new_address=lambda: f"user-{secrets.token_hex(4)}@example.com", key=str.lower,
            transient=(450, "4.2.1 Mailbox busy"), throttle=None,
        )  # fmt: skip
    if name == "sms":
        return SmsSandbox(), SmsProvider, dict(
            message=MessageBuilder("sms", n=None, **text),
            new_address=lambda: f"+1555{secrets.randbelow(10**7):07d}", key=str,
            transient=(503, 20503), throttle=(429, 20429),
        )  # fmt: skip
    hooks = WebhookSandbox()
    return hooks, WebhookProvider, dict(
        message=MessageBuilder("webhook", n=None, **text),
        new_address=lambda: hooks.url(f"/hooks/{secrets.token_hex(4)}"),
        key=lambda url: urlsplit(url).path, transient=503, throttle=429,
    )  # fmt: skip


@pytest.fixture(params=["apns", "fcm", "smtp", "sms", "webhook"])
async def rig(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Rig]:
    sandbox, client, spec = _rig(request.param, tmp_path)
    async with (
        running(sandbox),  # started before the provider's settings are asked of it
        running(client(make_settings(**sandbox.settings_overrides()))) as provider,
    ):
        yield Rig(request.param, sandbox, provider, **spec)


def status_of(fault: Any) -> int:
    return int(fault[0] if isinstance(fault, tuple) else fault)


async def outcome(rig: Rig, message: OutboundMessage) -> ProviderError | None:
    """None when the message was delivered, else the classified error."""
    try:
        await rig.provider.send(message)
    except ProviderError as exc:
        return exc
    return None


async def test_fails_n_times_then_succeeds(rig: Rig) -> None:
    address = rig.new_address()
    rig.sandbox.fail_times[rig.key(address)] = (2, rig.transient)
    before = time.time()

    first, second = [await outcome(rig, rig.message(address)) for _ in range(2)]
    result = await rig.provider.send(rig.message(address))  # the retry gets through

    assert isinstance(first, TransientError) and isinstance(second, TransientError)
    assert result.provider == rig.name
    assert [r["address"] for r in rig.sandbox.received] == [rig.key(address)]
    assert rig.sandbox.fail_times == {}
    assert len(rig.sandbox.rejected) == 2
    for refusal in rig.sandbox.rejected:
        assert refusal["address"] == rig.key(address)
        assert refusal["status"] == status_of(rig.transient)
        assert refusal["reason"]
        assert before <= refusal["received_at"] <= rig.sandbox.received[0]["received_at"]


async def test_fault_rate_follows_the_seed(rig: Rig) -> None:
    rig.sandbox.fault_rate = (0.5, rig.transient)
    rig.sandbox.plan.random.seed(7)
    draws = random.Random(7)
    expected = [draws.random() < 0.5 for _ in range(12)]

    errors = [await outcome(rig, rig.message(rig.new_address())) for _ in expected]

    assert [error is not None for error in errors] == expected
    assert all(isinstance(error, TransientError) for error in errors if error is not None)
    assert any(expected) and not all(expected)  # the seed gives a mix, so both paths ran
    assert len(rig.sandbox.rejected) == sum(expected)
    assert len(rig.sandbox.received) == len(expected) - sum(expected)


async def test_latency_holds_every_answer_back(rig: Rig) -> None:
    await rig.provider.send(rig.message(rig.new_address()))  # warm: connection, OAuth token
    rig.sandbox.latency_seconds = 0.3
    started, clock = time.time(), time.monotonic()

    await rig.provider.send(rig.message(rig.new_address()))

    # A lower bound on purpose: the behaviour under test is a delay, and a slow machine can
    # only make it longer.
    assert time.monotonic() - clock >= 0.3
    # received_at is when the request arrived, not when the delayed answer went out.
    assert started <= rig.sandbox.received[-1]["received_at"] < started + 0.3


@pytest.mark.parametrize("rig", ["apns", "fcm", "sms", "webhook"], indirect=True)
async def test_throttling_surfaces_retry_after(rig: Rig) -> None:
    address = rig.new_address()
    rig.sandbox.retry_after = 9
    rig.sandbox.fail_times[rig.key(address)] = (1, rig.throttle)

    throttled = await outcome(rig, rig.message(address))
    await rig.provider.send(rig.message(address))

    assert isinstance(throttled, ThrottledError)
    # APNs throttles per device token and sends no Retry-After; the others say 9 s.
    assert throttled.retry_after == (None if rig.name == "apns" else 9.0)
    assert [r["status"] for r in rig.sandbox.rejected] == [429]
    assert len(rig.sandbox.received) == 1


@pytest.mark.parametrize("rig", ["smtp"], indirect=True)
@pytest.mark.parametrize(
    ("fault", "error"),
    [
        ((421, "4.3.2 Service shutting down"), TransientError),
        ((450, "4.2.1 Mailbox busy"), TransientError),
        ((550, "5.1.1 User unknown"), InvalidRecipientError),
    ],
)
async def test_smtp_rcpt_faults(rig: Rig, fault: tuple[int, str], error: type[Exception]) -> None:
    address = rig.new_address()
    rig.sandbox.fail_times[address] = (1, fault)

    failed = await outcome(rig, rig.message(address))
    await rig.provider.send(rig.message(address))

    assert type(failed) is error
    assert [r["status"] for r in rig.sandbox.rejected] == [fault[0]]
    # 421 ends the session, so the second mail needed a new connection; the others reuse it.
    assert rig.sandbox.connections == (2 if fault[0] == 421 else 1)


async def smtp_command(reader: asyncio.StreamReader, writer: Any, line: str) -> bytes:
    """Send one command and return the last line of its (possibly multi-line) reply."""
    writer.write(line.encode() + b"\r\n")
    while (reply := await reader.readline())[3:4] == b"-":
        pass
    return reply


async def test_smtp_421_hangs_up_after_the_reply() -> None:
    async with running(SmtpSandbox()) as box:
        box.faults["down@example.com"] = (421, "4.3.2 Service shutting down")
        box.faults["busy@example.com"] = (450, "4.2.1 Mailbox busy")
        reader, writer = await asyncio.open_connection(box.host, box.port)
        await reader.readline()  # greeting
        await smtp_command(reader, writer, "EHLO client.test")
        await smtp_command(reader, writer, "MAIL FROM:<a@example.com>")
        assert (await smtp_command(reader, writer, "RCPT TO:<busy@example.com>")).startswith(b"450")
        assert (await smtp_command(reader, writer, "RCPT TO:<down@example.com>")).startswith(b"421")
        assert await asyncio.wait_for(reader.read(), 5) == b""  # the server closed the channel
        writer.close()


# --------------------------------------------------------------------- the sandbox stack


@pytest.fixture
def stack(sandboxes: SandboxStack) -> Iterator[SandboxStack]:
    # The stack is shared by the whole session: leave it as found (clear() keeps retry_after).
    retry_after = {name: box.retry_after for name, box in sandboxes.sandboxes.items()}
    sandboxes.clear()
    yield sandboxes
    sandboxes.clear()
    for name, seconds in retry_after.items():
        sandboxes.inject(name, retry_after=seconds)


async def test_stack_http_fault_endpoint(stack: SandboxStack) -> None:
    base = f"http://127.0.0.1:{stack.inspect_port}"
    number = "+15557654321"
    message = MessageBuilder("sms", number, title="Code", body="123456")
    settings = make_settings(**stack.settings_overrides())
    async with aiohttp.ClientSession() as http, running(SmsProvider(settings)) as sms:

        async def post(path: str, body: Any) -> tuple[int, Any]:
            async with http.post(f"{base}{path}", json=body) as response:
                ok = response.content_type == "application/json"
                return response.status, await (response.json() if ok else response.text())

        status, plan = await post(
            "/faults/sms", {"address": number, "fault": [429, 20429], "times": 1}
        )
        assert status == 200 and plan["fail_times"] == {number: [1, [429, 20429]]}
        assert (await post("/faults/sms", {"retry_after": 9}))[1]["retry_after"] == 9
        with pytest.raises(ThrottledError) as throttled:
            await sms.send(message())
        await sms.send(message(n=2))

        async with http.get(f"{base}/rejected.json") as response:
            [refusal] = await response.json()
        async with http.get(f"{base}/received.json") as response:
            [delivered] = await response.json()
        bad = [
            await post("/faults/sms", {"fault": [429, 20429]}),  # neither address nor rate
            await post("/faults/sms", {"address": number, "fault": [429]}),  # wrong shape
            await post("/faults/sms", {"adress": number}),  # unknown key
            await post("/faults/sms", ["clear"]),
            await post("/faults/pager", {"clear": True}),
        ]
        cleared = await post("/faults/sms", {"clear": True})

    assert throttled.value.retry_after == 9.0
    assert (refusal["sandbox"], refusal["address"], refusal["status"]) == ("sms", number, 429)
    assert refusal["reason"] and refusal["received_at"] <= delivered["received_at"]
    assert (delivered["address"], delivered["delivery_id"]) == (number, "d-2")
    assert [status for status, _ in bad] == [400, 400, 400, 400, 404]
    assert cleared[1]["fail_times"] == {} and cleared[1]["fault_rate"] is None


async def test_stack_inject_from_python(stack: SandboxStack) -> None:
    path = "/hooks/flaky"
    plan = stack.inject("webhook", address=path, fault=503, times=2)
    stack.inject("webhook", latency_seconds=0.2)
    stack.inject("fcm", rate=0.25, fault=[503, "UNAVAILABLE"], seed=3)
    message = MessageBuilder("webhook", stack.webhook.url(path), title="t", body="b")
    async with running(WebhookProvider(make_settings(**stack.settings_overrides()))) as hook:
        for _ in range(2):
            with pytest.raises(TransientError):
                await hook.send(message())
        await hook.send(message())

    assert plan["fail_times"] == {path: (2, 503)}
    assert stack.webhook.plan.latency_seconds == 0.2  # what holding answers back is tested above
    assert [(r["sandbox"], r["status"]) for r in stack.rejected()] == [("webhook", 503)] * 2
    assert [r["address"] for r in stack.received()] == [path]
    assert stack.fcm.fault_rate == (0.25, (503, "UNAVAILABLE"))
    with pytest.raises(ValueError):
        stack.inject("webhook", fault=503)  # a fault for whom?
    with pytest.raises(KeyError):
        stack.inject("pager", clear=True)
    stack.clear()
    assert stack.webhook.plan.describe()["latency_seconds"] == 0
    assert stack.fcm.fault_rate is None
