"""FcmProvider (firebase-admin messages and credentials, aiohttp POSTs) against FcmSandbox,
over real HTTP on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from config.settings import Settings
from providers.base import (
    ConfigurationError,
    InvalidRecipientError,
    OutboundMessage,
    PermanentError,
    Provider,
    ProviderError,
    SendResult,
    ThrottledError,
    TransientError,
)
from providers.fcm import FcmProvider
from providers.sandboxes.fcm import FcmSandbox
from tests.integration.provider_helpers import MessageBuilder, make_settings, running
from tests.integration.provider_helpers import fcm_token as registration_token

pytestmark = pytest.mark.integration

message = MessageBuilder(
    "push", n=None, title="Your order shipped", body="It arrives Tuesday", platform="android"
)


async def send_all(
    provider: FcmProvider, messages: list[OutboundMessage]
) -> list[SendResult | BaseException]:
    """Concurrent sends, each outcome (a result or the error) in the messages' order."""
    return await asyncio.gather(*(provider.send(m) for m in messages), return_exceptions=True)


@pytest.fixture
async def sandbox(tmp_path: Path) -> AsyncIterator[FcmSandbox]:
    async with running(FcmSandbox(tmp_path / "fcm")) as box:
        yield box


@pytest.fixture
async def provider(sandbox: FcmSandbox) -> AsyncIterator[FcmProvider]:
    async with running(FcmProvider(make_settings(**sandbox.settings_overrides()))) as p:
        yield p


def test_provider_satisfies_protocol() -> None:
    assert isinstance(FcmProvider(Settings()), Provider)


async def test_high_priority_message_reaches_sandbox_with_v1_fields(
    provider: FcmProvider, sandbox: FcmSandbox
) -> None:
    token = registration_token()
    msg = message(
        token,
        priority="high",
        collapse_key="order-42",
        ttl_seconds=600,
        data={"deep_link": "app://orders/42"},
    )
    before = time.time()

    result = await provider.send(msg)

    assert len(sandbox.received) == 1
    got = sandbox.received[0]
    assert got["sandbox"] == "fcm"
    assert got["address"] == token
    assert (got["title"], got["body"]) == ("Your order shipped", "It arrives Tuesday")
    assert got["notification_id"] == msg.notification_id
    assert got["delivery_id"] == msg.delivery_id
    assert got["received_at"] >= before
    payload = got["payload"]
    assert payload["android"] == {"priority": "high", "ttl": "600s", "collapse_key": "order-42"}
    assert payload["data"] == {
        "deep_link": "app://orders/42",
        "notification_id": msg.notification_id,
        "delivery_id": msg.delivery_id,
    }
    assert payload["apns"]["headers"]["apns-priority"] == "10"
    assert payload["apns"]["headers"]["apns-collapse-id"] == "order-42"
    assert "authorization" not in got["headers"]
    assert got["headers"]["x-firebase-client"].startswith("fire-admin-python/")
    assert sandbox.tokens_issued == 1  # the OAuth grant went to the sandbox's token_uri
    assert result.provider == "fcm"
    assert result.provider_message_id is not None
    assert result.provider_message_id.startswith(f"projects/{sandbox.project_id}/messages/")


@pytest.mark.parametrize("priority", ["normal", "low"])
async def test_non_high_priority_is_normal_and_optional_fields_omitted(
    provider: FcmProvider, sandbox: FcmSandbox, priority: str
) -> None:
    await provider.send(message(registration_token(), priority=priority))

    payload = sandbox.received[0]["payload"]
    assert payload["android"] == {"priority": "normal"}
    assert payload["apns"]["headers"] == {"apns-priority": "5"}


async def test_token_is_fetched_once_and_reused(provider: FcmProvider, sandbox: FcmSandbox) -> None:
    for _ in range(3):
        await provider.send(message(registration_token()))

    assert len(sandbox.received) == 3
    assert sandbox.tokens_issued == 1


@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        ((404, "UNREGISTERED"), InvalidRecipientError),
        ((400, "INVALID_ARGUMENT"), InvalidRecipientError),
        ((429, "QUOTA_EXCEEDED"), ThrottledError),
        ((403, "SENDER_ID_MISMATCH"), ConfigurationError),
        # 401: one fresh OAuth token and one more try before giving up.
        ((401, "THIRD_PARTY_AUTH_ERROR"), ConfigurationError),
    ],
)
async def test_injected_fault_maps_to_error_class(
    provider: FcmProvider,
    sandbox: FcmSandbox,
    fault: tuple[int, str],
    expected: type[ProviderError],
) -> None:
    token = registration_token()
    sandbox.faults[token] = fault

    with pytest.raises(ProviderError) as caught:
        await provider.send(message(token))

    assert type(caught.value) is expected
    assert caught.value.code == fault[1]
    assert sandbox.received == []
    assert {r["address"] for r in sandbox.rejected} == {token}


async def test_quota_exceeded_carries_retry_after(
    provider: FcmProvider, sandbox: FcmSandbox
) -> None:
    token = registration_token()
    sandbox.faults[token] = (429, "QUOTA_EXCEEDED")
    sandbox.retry_after = 17

    with pytest.raises(ThrottledError) as caught:
        await provider.send(message(token))

    assert caught.value.retry_after == 17.0


async def test_server_errors_are_transient_at_once(
    provider: FcmProvider, sandbox: FcmSandbox
) -> None:
    # No retries inside the send: the pipeline's retry tiers schedule the next attempt, so a
    # failing FCM never holds a lane's slot through a backoff.
    unavailable, internal, fine = (registration_token() for _ in range(3))
    sandbox.faults[unavailable] = (503, "UNAVAILABLE")
    sandbox.faults[internal] = (500, "INTERNAL")

    results = await send_all(provider, [message(unavailable), message(internal), message(fine)])

    assert [type(r) for r in results] == [TransientError, TransientError, SendResult]
    assert [r.code for r in results[:2]] == ["UNAVAILABLE", "INTERNAL"]  # type: ignore[union-attr]
    assert [r["address"] for r in sandbox.received] == [fine]
    # The sends are concurrent, so the sandbox may see the two failing ones in either order.
    assert sorted(r["address"] for r in sandbox.rejected) == sorted([unavailable, internal])


async def test_a_refused_access_token_is_refreshed_once(
    provider: FcmProvider, sandbox: FcmSandbox
) -> None:
    await provider.send(message(registration_token()))
    sandbox.revoke_access_tokens()

    await provider.send(message(registration_token()))

    assert len(sandbox.received) == 2
    assert sandbox.tokens_issued == 2
    assert [r["status"] for r in sandbox.rejected] == [401]


async def test_send_many_goes_500_at_a_time_and_keeps_order(
    provider: FcmProvider, sandbox: FcmSandbox
) -> None:
    tokens = [registration_token() for _ in range(503)]
    dead = {tokens[3], tokens[501]}
    for token in dead:
        sandbox.faults[token] = (404, "UNREGISTERED")

    results = await provider.send_many([message(t) for t in tokens])

    assert len(results) == 503
    for token, result in zip(tokens, results, strict=True):
        assert isinstance(result, InvalidRecipientError if token in dead else SendResult)
    assert len(sandbox.received) == 501
    assert {r["address"] for r in sandbox.received} == set(tokens) - dead


async def test_non_string_data_is_stringified(provider: FcmProvider, sandbox: FcmSandbox) -> None:
    await provider.send(message(registration_token(), data={"count": 3}))

    assert sandbox.received[0]["payload"]["data"]["count"] == "3"


async def test_invalid_non_token_argument_is_permanent_not_recipient(
    provider: FcmProvider,
) -> None:
    # firebase-admin validates fields (here a negative TTL) locally: a PermanentError for the
    # message, never an InvalidRecipientError that would delete the token.
    results = await send_all(provider, [message(registration_token(), ttl_seconds=-1)])

    assert type(results[0]) is PermanentError


async def test_two_providers_coexist_and_stop_independently(sandbox: FcmSandbox) -> None:
    settings = make_settings(**sandbox.settings_overrides())
    async with running(FcmProvider(settings)) as second:
        async with running(FcmProvider(settings)) as first:
            await first.send(message(registration_token()))

        await second.send(message(registration_token()))
    assert len(sandbox.received) == 2
    assert sandbox.tokens_issued == 2  # one credential each


async def test_wrong_project_is_a_configuration_error(sandbox: FcmSandbox) -> None:
    settings = make_settings(
        **{**sandbox.settings_overrides(), "fcm_project_id": "someone-elses-project"}
    )
    async with running(FcmProvider(settings)) as provider:
        with pytest.raises(ConfigurationError, match="SENDER_ID_MISMATCH"):
            await provider.send(message(registration_token()))


async def test_service_account_key_unknown_to_token_endpoint_is_a_configuration_error(
    sandbox: FcmSandbox, tmp_path: Path
) -> None:
    info = json.loads(sandbox.credentials_file.read_text())
    info["private_key"] = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        .decode()
    )
    forged = tmp_path / "forged.json"
    forged.write_text(json.dumps(info))
    settings = make_settings(**{**sandbox.settings_overrides(), "fcm_credentials_file": forged})
    async with running(FcmProvider(settings)) as provider:
        with pytest.raises(ConfigurationError, match="invalid_grant"):
            await provider.send(message(registration_token()))
    assert sandbox.tokens_issued == 0


async def test_unreachable_endpoint_is_transient(sandbox: FcmSandbox) -> None:
    async with running(FcmProvider(make_settings(**sandbox.settings_overrides()))) as provider:
        await provider.send(message(registration_token()))  # token fetched while it was up
        await sandbox.stop()
        with pytest.raises(TransientError, match="UNAVAILABLE"):
            await provider.send(message(registration_token()))


async def test_unreachable_token_endpoint_is_transient(sandbox: FcmSandbox) -> None:
    settings = make_settings(**sandbox.settings_overrides())
    await sandbox.stop()
    async with running(FcmProvider(settings)) as provider:
        with pytest.raises(TransientError):
            await provider.send(message(registration_token()))


async def test_missing_credentials_is_a_configuration_error_at_start() -> None:
    with pytest.raises(ConfigurationError):
        await FcmProvider(Settings(fcm_credentials_file=None)).start()


async def test_concurrent_sends_get_their_own_outcomes(
    provider: FcmProvider, sandbox: FcmSandbox
) -> None:
    tokens = [registration_token() for _ in range(6)]
    sandbox.faults[tokens[2]] = (404, "UNREGISTERED")

    outcomes = await asyncio.gather(
        *(provider.send(message(t)) for t in tokens), return_exceptions=True
    )

    assert isinstance(outcomes[2], InvalidRecipientError)
    assert all(isinstance(o, SendResult) for i, o in enumerate(outcomes) if i != 2)
    assert sorted(r["address"] for r in sandbox.received) == sorted(tokens[:2] + tokens[3:])
    assert sandbox.tokens_issued == 1  # concurrent sends share one token refresh
