"""SmsProvider against the Twilio look-alike sandbox, over real HTTP."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from urllib.parse import parse_qs, urlsplit

import pytest

from providers.base import (
    ConfigurationError,
    InvalidRecipientError,
    PermanentError,
    ProviderError,
    ThrottledError,
    TransientError,
)
from providers.sandboxes.sms import SmsSandbox
from providers.sms import SmsProvider
from tests.integration.provider_helpers import MessageBuilder, closed_port, make_settings, running

pytestmark = pytest.mark.integration

message = MessageBuilder("sms", "+15551234567", title="Code", body="Your login code is 123456")


@pytest.fixture
async def sandbox() -> AsyncIterator[SmsSandbox]:
    async with running(SmsSandbox()) as box:
        yield box


@pytest.fixture
async def provider(sandbox: SmsSandbox) -> AsyncIterator[SmsProvider]:
    settings = make_settings(**sandbox.settings_overrides(), sms_from_number="+15550001111")
    async with running(SmsProvider(settings)) as sms:
        yield sms


async def test_posts_twilio_form_with_basic_auth(
    sandbox: SmsSandbox, provider: SmsProvider
) -> None:
    result = await provider.send(message())

    [sms] = sandbox.received
    assert result.provider == "sms"
    assert result.provider_message_id == sms["sid"]
    assert sms["sid"].startswith("SM") and len(sms["sid"]) == 34
    assert sms["sandbox"] == "sms"
    assert sms["address"] == "+15551234567"
    assert sms["form"]["To"] == "+15551234567"
    assert sms["form"]["From"] == "+15550001111"
    assert sms["form"]["Body"] == "Code: Your login code is 123456"
    assert (sms["title"], sms["body"]) == ("Code", "Your login code is 123456")
    assert sms["segments"] == 1
    assert sms["headers"]["Content-Type"].startswith("application/x-www-form-urlencoded")
    expected = base64.b64encode(f"{sandbox.account_sid}:{sandbox.auth_token}".encode()).decode()
    assert sms["headers"]["Authorization"] == f"Basic {expected}"
    callback = urlsplit(sms["status_callback"])
    assert callback._replace(query="").geturl() == sandbox.status_callback_url
    assert parse_qs(callback.query) == {"notification_id": ["n-1"], "delivery_id": ["d-1"]}
    assert (sms["notification_id"], sms["delivery_id"]) == ("n-1", "d-1")


async def test_body_alone_without_title_and_segments_counted(
    sandbox: SmsSandbox, provider: SmsProvider
) -> None:
    await provider.send(message(title="", body="€" * 81))  # 162 septets: two parts

    [sms] = sandbox.received
    assert sms["form"]["Body"] == "€" * 81
    assert sms["segments"] == 2


async def test_no_status_callback_when_not_configured(sandbox: SmsSandbox) -> None:
    overrides = {**sandbox.settings_overrides(), "sms_status_callback_url": ""}
    async with running(SmsProvider(make_settings(**overrides))) as sms:
        await sms.send(message())
    assert "StatusCallback" not in sandbox.received[0]["form"]
    assert sandbox.received[0]["delivery_id"] is None


@pytest.mark.parametrize(
    ("fault", "error", "code"),
    [
        ((400, 21211), InvalidRecipientError, "twilio_21211"),
        ((400, 21614), InvalidRecipientError, "twilio_21614"),
        ((400, 21610), PermanentError, "twilio_21610"),  # unsubscribed: not a dead number
        ((400, None), PermanentError, "http_400"),
        ((500, None), TransientError, "http_500"),
        ((503, 20503), TransientError, "twilio_20503"),
        ((429, 20429), ThrottledError, "twilio_20429"),
    ],
)
async def test_error_answers_are_classified(
    sandbox: SmsSandbox,
    provider: SmsProvider,
    fault: tuple[int, int | None],
    error: type[ProviderError],
    code: str,
) -> None:
    sandbox.faults["+15559990000"] = fault

    with pytest.raises(error) as raised:
        await provider.send(message("+15559990000"))

    assert type(raised.value) is error
    assert raised.value.code == code
    assert sandbox.rejected[0]["status"] == fault[0]
    assert sandbox.received == []


async def test_throttling_carries_retry_after(sandbox: SmsSandbox, provider: SmsProvider) -> None:
    sandbox.faults["+15559990000"] = (429, 20429)
    sandbox.retry_after = 7

    with pytest.raises(ThrottledError) as raised:
        await provider.send(message("+15559990000"))

    assert raised.value.retry_after == 7.0


async def test_malformed_number_is_invalid_recipient(provider: SmsProvider) -> None:
    with pytest.raises(InvalidRecipientError):
        await provider.send(message("555-CALL-NOW"))


async def test_bad_credentials_are_configuration_errors(sandbox: SmsSandbox) -> None:
    settings = make_settings(**{**sandbox.settings_overrides(), "sms_auth_token": "nope"})
    async with running(SmsProvider(settings)) as sms:
        with pytest.raises(ConfigurationError) as raised:
            await sms.send(message())
    assert raised.value.code == "twilio_20003"


async def test_unreachable_api_is_transient() -> None:
    api = f"http://127.0.0.1:{closed_port()}"
    settings = make_settings(sms_base_url=api, sms_account_sid="AC1")
    async with running(SmsProvider(settings)) as sms:
        with pytest.raises(TransientError) as raised:
            await sms.send(message())
    assert raised.value.code == "connection"


async def test_slow_api_times_out_as_transient(sandbox: SmsSandbox) -> None:
    sandbox.delays["+15551234567"] = 5.0
    settings = make_settings(**sandbox.settings_overrides(), provider_timeout_seconds=0.3)
    async with running(SmsProvider(settings)) as sms:
        with pytest.raises(TransientError) as raised:
            await sms.send(message())
    assert raised.value.code == "timeout"


async def test_missing_account_sid_is_configuration_error() -> None:
    async with running(SmsProvider(make_settings(sms_account_sid=""))) as sms:
        with pytest.raises(ConfigurationError):
            await sms.send(message())
