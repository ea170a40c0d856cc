"""WebhookProvider against the signature-checking sandbox, over real HTTP."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from datetime import datetime

import pytest

from providers.base import (
    InvalidRecipientError,
    PermanentError,
    ProviderError,
    ThrottledError,
    TransientError,
)
from providers.sandboxes.webhook import WebhookSandbox
from providers.webhook import WebhookProvider, sign, verify
from tests.integration.provider_helpers import MessageBuilder, closed_port, make_settings, running

pytestmark = pytest.mark.integration

message = MessageBuilder(
    "webhook",
    title="Build failed",
    body="main is red — see the log",
    data={"build": "1234", "branch": "main"},
    category="ci",
)


@pytest.fixture
async def sandbox() -> AsyncIterator[WebhookSandbox]:
    async with running(WebhookSandbox()) as box:
        yield box


@pytest.fixture
async def provider(sandbox: WebhookSandbox) -> AsyncIterator[WebhookProvider]:
    async with running(WebhookProvider(make_settings(**sandbox.settings_overrides()))) as hook:
        yield hook


async def test_signed_json_post(sandbox: WebhookSandbox, provider: WebhookProvider) -> None:
    before = int(time.time())
    result = await provider.send(message(sandbox.url("/hooks/acme?src=notify")))

    [hook] = sandbox.received
    assert result.provider == "webhook"
    assert result.provider_message_id == hook["request_id"]
    assert hook["sandbox"] == "webhook"
    assert hook["address"] == "/hooks/acme"
    assert hook["query"] == "src=notify"
    payload = hook["payload"]
    assert set(payload) == {
        "notification_id", "delivery_id", "user_id", "channel", "title", "body", "data",
        "category", "sent_at",
    }  # fmt: skip
    assert payload["data"] == {"build": "1234", "branch": "main"}
    assert payload["body"] == "main is red — see the log"
    assert (payload["channel"], payload["category"], payload["user_id"]) == ("webhook", "ci", "u-1")
    assert datetime.fromisoformat(payload["sent_at"]).timestamp() >= before
    assert (hook["title"], hook["notification_id"], hook["delivery_id"]) == (
        "Build failed",
        "n-1",
        "d-1",
    )
    headers = hook["headers"]
    assert headers["Content-Type"] == "application/json"
    assert headers["X-Notify-Delivery-ID"] == "d-1"
    timestamp = headers["X-Notify-Timestamp"]
    assert before <= int(timestamp) <= time.time()
    # The signature covers exactly the bytes on the wire, prefixed by the timestamp.
    assert headers["X-Notify-Signature"] == sign(sandbox.secret, timestamp, hook["raw"])
    assert verify(sandbox.secret, timestamp, hook["raw"], headers["X-Notify-Signature"])
    assert json.loads(hook["raw"]) == payload


async def test_in_app_goes_to_the_inbox_url(sandbox: WebhookSandbox) -> None:
    settings = make_settings(**sandbox.settings_overrides())
    async with running(WebhookProvider(settings)) as hook:
        await hook.send(message(settings.inapp_url, channel="in_app"))
    [record] = sandbox.received
    assert record["address"] == "/inbox"
    assert record["channel"] == "in_app"


async def test_204_is_success(sandbox: WebhookSandbox, provider: WebhookProvider) -> None:
    sandbox.faults["/quiet"] = 204

    result = await provider.send(message(sandbox.url("/quiet")))

    assert result.provider_message_id == sandbox.received[0]["request_id"]
    assert sandbox.received[0]["status"] == 204


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (404, InvalidRecipientError),
        (410, InvalidRecipientError),
        (400, PermanentError),
        (422, PermanentError),
        (500, TransientError),
        (502, TransientError),
        (429, ThrottledError),
    ],
)
async def test_error_statuses_are_classified(
    sandbox: WebhookSandbox, provider: WebhookProvider, status: int, error: type[ProviderError]
) -> None:
    sandbox.faults["/broken"] = status

    with pytest.raises(error) as raised:
        await provider.send(message(sandbox.url("/broken")))

    assert type(raised.value) is error
    assert raised.value.code == f"http_{status}"
    assert sandbox.rejected[0]["status"] == status


async def test_throttling_carries_retry_after(
    sandbox: WebhookSandbox, provider: WebhookProvider
) -> None:
    sandbox.faults["/busy"] = 429
    sandbox.retry_after = 30

    with pytest.raises(ThrottledError) as raised:
        await provider.send(message(sandbox.url("/busy")))

    assert raised.value.retry_after == 30.0


async def test_wrong_secret_is_rejected_by_the_receiver(sandbox: WebhookSandbox) -> None:
    settings = make_settings(webhook_signing_secret="not-the-shared-secret")
    async with running(WebhookProvider(settings)) as hook:
        with pytest.raises(PermanentError) as raised:
            await hook.send(message(sandbox.url("/hooks/acme")))
    assert raised.value.code == "http_401"
    assert sandbox.received == []
    assert sandbox.rejected[0]["reason"] == "bad signature"


async def test_invalid_url_is_invalid_recipient(provider: WebhookProvider) -> None:
    for address in ["ftp://example.com/hook", "not a url", "http:///nohost"]:
        with pytest.raises(InvalidRecipientError):
            await provider.send(message(address))


async def test_unreachable_endpoint_is_transient(provider: WebhookProvider) -> None:
    with pytest.raises(TransientError) as raised:
        await provider.send(message(f"http://127.0.0.1:{closed_port()}/hook"))

    assert raised.value.code == "connection"


async def test_slow_endpoint_times_out_as_transient(sandbox: WebhookSandbox) -> None:
    sandbox.delays["/slow"] = 5.0
    settings = make_settings(**sandbox.settings_overrides(), webhook_timeout_seconds=0.3)
    async with running(WebhookProvider(settings)) as hook:
        with pytest.raises(TransientError) as raised:
            await hook.send(message(sandbox.url("/slow")))
    assert raised.value.code == "timeout"
