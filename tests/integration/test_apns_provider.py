"""ApnsProvider (aioapns, unmodified) against ApnsSandbox over real HTTP/2 + TLS on 127.0.0.1."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from config.settings import Settings
from providers.apns import ApnsProvider
from providers.base import (
    ConfigurationError,
    InvalidRecipientError,
    PermanentError,
    Provider,
    ProviderError,
    SendResult,
    ThrottledError,
    TransientError,
)
from providers.sandboxes.apns import ApnsSandbox, generate_apns_material
from tests.integration.provider_helpers import MessageBuilder, make_settings, running
from tests.integration.provider_helpers import apns_token as device_token

pytestmark = pytest.mark.integration

message = MessageBuilder(
    "push", n=None, title="Your order shipped", body="It arrives Tuesday", platform="ios"
)


@pytest.fixture
async def sandbox(tmp_path: Path) -> AsyncIterator[ApnsSandbox]:
    async with running(ApnsSandbox(tmp_path / "apns")) as box:
        yield box


@pytest.fixture
async def provider(sandbox: ApnsSandbox) -> AsyncIterator[ApnsProvider]:
    async with running(ApnsProvider(make_settings(**sandbox.settings_overrides()))) as p:
        yield p


def test_provider_satisfies_protocol() -> None:
    assert isinstance(ApnsProvider(Settings()), Provider)


async def test_high_priority_alert_reaches_sandbox_with_apple_headers(
    provider: ApnsProvider, sandbox: ApnsSandbox
) -> None:
    token = device_token()
    msg = message(
        token,
        priority="high",
        collapse_key="order-42",
        ttl_seconds=600,
        data={"deep_link": "app://orders/42"},
    )
    before = int(time.time())

    result = await provider.send(msg)

    assert len(sandbox.received) == 1
    got = sandbox.received[0]
    assert got["sandbox"] == "apns"
    assert got["address"] == token
    assert (got["title"], got["body"]) == ("Your order shipped", "It arrives Tuesday")
    assert got["notification_id"] == msg.notification_id
    assert got["delivery_id"] == msg.delivery_id
    assert got["received_at"] >= before
    headers = got["headers"]
    assert headers["apns-priority"] == "10"
    assert headers["apns-push-type"] == "alert"
    assert headers["apns-collapse-id"] == "order-42"
    assert headers["apns-topic"] == sandbox.topic
    assert before + 600 <= int(headers["apns-expiration"]) <= int(time.time()) + 600
    assert "authorization" not in headers  # verified by the sandbox, not recorded
    assert got["payload"]["aps"] == {
        "alert": {"title": "Your order shipped", "body": "It arrives Tuesday"},
        "sound": "default",
    }
    assert got["payload"]["deep_link"] == "app://orders/42"
    assert result == SendResult(provider="apns", provider_message_id=headers["apns-id"])


@pytest.mark.parametrize("priority", ["normal", "low"])
async def test_non_high_priority_is_5_and_optional_headers_are_omitted(
    provider: ApnsProvider, sandbox: ApnsSandbox, priority: str
) -> None:
    await provider.send(message(device_token(), priority=priority))

    headers = sandbox.received[0]["headers"]
    assert headers["apns-priority"] == "5"
    assert "apns-collapse-id" not in headers
    assert "apns-expiration" not in headers


async def test_concurrent_sends_share_the_connection_and_all_arrive(
    provider: ApnsProvider, sandbox: ApnsSandbox
) -> None:
    messages = [message(device_token()) for _ in range(50)]

    results = await asyncio.gather(*(provider.send(m) for m in messages))

    assert {r.provider_message_id for r in results} == {
        r["headers"]["apns-id"] for r in sandbox.received
    }
    assert sorted(r["delivery_id"] for r in sandbox.received) == sorted(
        m.delivery_id for m in messages
    )


@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        ((410, "Unregistered"), InvalidRecipientError),
        ((400, "BadDeviceToken"), InvalidRecipientError),
        ((400, "DeviceTokenNotForTopic"), ConfigurationError),
        ((429, "TooManyRequests"), ThrottledError),
        ((500, "InternalServerError"), TransientError),
        ((503, "ServiceUnavailable"), TransientError),
        ((400, "BadCollapseId"), PermanentError),
        ((413, "PayloadTooLarge"), PermanentError),
    ],
)
async def test_injected_fault_maps_to_error_class(
    provider: ApnsProvider,
    sandbox: ApnsSandbox,
    fault: tuple[int, str],
    expected: type[ProviderError],
) -> None:
    token = device_token()
    sandbox.faults[token] = fault

    with pytest.raises(ProviderError) as caught:
        await provider.send(message(token))

    assert type(caught.value) is expected
    assert caught.value.code == f"{fault[0]} {fault[1]}"
    assert sandbox.received == []
    assert [(r["status"], r["reason"]) for r in sandbox.rejected] == [fault]


async def test_fault_on_one_token_does_not_disturb_others(
    provider: ApnsProvider, sandbox: ApnsSandbox
) -> None:
    dead, alive = device_token(), device_token()
    sandbox.faults[dead] = (410, "Unregistered")

    outcomes = await asyncio.gather(
        provider.send(message(dead)), provider.send(message(alive)), return_exceptions=True
    )

    assert isinstance(outcomes[0], InvalidRecipientError)
    assert isinstance(outcomes[1], SendResult)
    assert [r["address"] for r in sandbox.received] == [alive]


async def test_malformed_token_is_refused_by_sandbox_as_bad_device_token(
    provider: ApnsProvider, sandbox: ApnsSandbox
) -> None:
    with pytest.raises(InvalidRecipientError, match="BadDeviceToken"):
        await provider.send(message("not-a-token"))


async def test_wrong_topic_is_a_configuration_error(sandbox: ApnsSandbox) -> None:
    settings = make_settings(**{**sandbox.settings_overrides(), "apns_topic": "com.other.app"})
    async with running(ApnsProvider(settings)) as provider:
        with pytest.raises(ConfigurationError, match="DeviceTokenNotForTopic"):
            await provider.send(message(device_token()))


async def test_jwt_signed_with_foreign_key_is_rejected(
    sandbox: ApnsSandbox, tmp_path: Path
) -> None:
    foreign, _ = generate_apns_material(tmp_path / "foreign")
    settings = make_settings(**{**sandbox.settings_overrides(), "apns_key_file": foreign.key_file})
    async with running(ApnsProvider(settings)) as provider:
        with pytest.raises(ConfigurationError, match="403 InvalidProviderToken"):
            await provider.send(message(device_token()))
    assert sandbox.received == []


async def test_unreachable_server_is_transient(sandbox: ApnsSandbox) -> None:
    await sandbox.stop()  # nothing listens on its port any more
    settings = make_settings(**sandbox.settings_overrides(), provider_timeout_seconds=0.5)
    async with running(ApnsProvider(settings)) as provider:
        with pytest.raises(TransientError):
            await provider.send(message(device_token()))


async def test_untrusted_server_certificate_is_transient_not_silent(
    sandbox: ApnsSandbox,
) -> None:
    # No apns_ca_file: the system store does not trust the sandbox CA, so TLS must fail.
    settings = make_settings(
        **{**sandbox.settings_overrides(), "apns_ca_file": None, "provider_timeout_seconds": 0.5}
    )
    async with running(ApnsProvider(settings)) as provider:
        with pytest.raises(TransientError):
            await provider.send(message(device_token()))
    assert sandbox.received == []


async def test_missing_key_is_a_configuration_error_at_start() -> None:
    with pytest.raises(ConfigurationError):
        await ApnsProvider(Settings(apns_key_file=None)).start()
