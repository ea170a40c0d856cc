"""SmtpProvider against the aiosmtpd sandbox, over real sockets."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import pytest

from config.settings import Settings
from providers.base import (
    ConfigurationError,
    InvalidRecipientError,
    OutboundMessage,
    PermanentError,
    ProviderError,
    TransientError,
)
from providers.sandboxes.smtp import SmtpSandbox
from providers.smtp import SmtpProvider

pytestmark = pytest.mark.integration


def make_settings(**fields: object) -> Settings:
    # model_validate: sandboxes hand over dict[str, object], which Settings(**...) can't type.
    return Settings.model_validate(fields)


def message(address: str = "ada@example.com", n: int = 1, **extra: object) -> OutboundMessage:
    fields: dict[str, object] = {
        "delivery_id": f"d-{n}",
        "notification_id": f"n-{n}",
        "user_id": "u-1",
        "channel": "email",
        "address": address,
        "title": "Your order shipped",
        "body": "It is on its way.",
        "category": "orders",
    }
    fields.update(extra)
    return OutboundMessage(**fields)  # type: ignore[arg-type]


@pytest.fixture
async def sandbox() -> AsyncIterator[SmtpSandbox]:
    box = SmtpSandbox()
    await box.start()
    yield box
    await box.stop()


@pytest.fixture
async def provider(sandbox: SmtpSandbox) -> AsyncIterator[SmtpProvider]:
    smtp = SmtpProvider(
        make_settings(**sandbox.settings_overrides(), email_from="Notify <no-reply@notify.test>")
    )
    await smtp.start()
    yield smtp
    await smtp.stop()


async def test_mail_is_multipart_alternative_with_headers(
    sandbox: SmtpSandbox, provider: SmtpProvider
) -> None:
    result = await provider.send(
        message(title="<b>Sale</b> & more", body="Line one\nline <two>\n\nSecond paragraph")
    )

    assert result.provider == "smtp"
    [mail] = sandbox.received
    assert mail["sandbox"] == "smtp"
    assert mail["address"] == "ada@example.com"
    assert mail["from"] == "no-reply@notify.test"  # envelope sender: bare address
    assert mail["content_type"] == "multipart/alternative"
    headers = mail["headers"]
    assert headers["From"] == "Notify <no-reply@notify.test>"
    assert headers["To"] == "ada@example.com"
    assert headers["Subject"] == "<b>Sale</b> & more"
    assert headers["Message-ID"] == result.provider_message_id
    assert result.provider_message_id and result.provider_message_id.endswith("@notify.test>")
    assert headers["X-Notification-ID"] == "n-1" == mail["notification_id"]
    assert headers["X-Delivery-ID"] == "d-1" == mail["delivery_id"]
    assert headers["List-Unsubscribe"] == "<mailto:no-reply@notify.test?subject=unsubscribe>"
    assert mail["title"] == "<b>Sale</b> & more"
    assert mail["body"] == "Line one\nline <two>\n\nSecond paragraph"
    assert "<two>" in mail["text"]
    # The HTML part escapes everything that came from the notification.
    assert "<h1>&lt;b&gt;Sale&lt;/b&gt; &amp; more</h1>" in mail["html"]
    assert "<p>Line one<br>line &lt;two&gt;</p><p>Second paragraph</p>" in mail["html"]
    assert "<two>" not in mail["html"]


async def test_one_click_unsubscribe_and_single_line_subject(sandbox: SmtpSandbox) -> None:
    settings = make_settings(
        **sandbox.settings_overrides(), email_unsubscribe_url="https://notify.test/unsub"
    )
    smtp = SmtpProvider(settings)
    await smtp.start()
    try:
        await smtp.send(message(title="Two\r\nlines"))
    finally:
        await smtp.stop()
    headers = sandbox.received[0]["headers"]
    assert headers["Subject"] == "Two lines"
    assert headers["List-Unsubscribe"].startswith(
        "<https://notify.test/unsub?user_id=u-1&category=orders>, <mailto:"
    )
    assert headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


@pytest.mark.parametrize(
    ("code", "text", "error"),
    [
        (550, "5.1.1 User unknown", InvalidRecipientError),
        (550, "No such user here", InvalidRecipientError),
        (553, "5.1.3 Bad destination mailbox address syntax", InvalidRecipientError),
        (550, "5.7.1 Message rejected as spam", PermanentError),
        (552, "5.2.2 Mailbox full", PermanentError),
        (450, "4.2.1 Mailbox busy, try later", TransientError),
        (421, "4.3.0 Service shutting down", TransientError),
    ],
)
async def test_rcpt_replies_are_classified(
    sandbox: SmtpSandbox, provider: SmtpProvider, code: int, text: str, error: type[ProviderError]
) -> None:
    sandbox.faults["bad@example.com"] = (code, text)

    with pytest.raises(error) as raised:
        await provider.send(message("bad@example.com"))

    assert type(raised.value) is error
    assert raised.value.code == f"smtp_{code}"
    assert sandbox.rejected[0]["status"] == code
    # The pool recovers: the next mail goes through (on a new connection after a 421).
    await provider.send(message("good@example.com", n=2))
    assert [m["address"] for m in sandbox.received] == ["good@example.com"]


async def test_malformed_address_fails_before_the_network(
    sandbox: SmtpSandbox, provider: SmtpProvider
) -> None:
    for address in ["not-an-address", "a@b.com\r\nRCPT TO:<x@y.com>", "a@b.com, c@d.com"]:
        with pytest.raises(InvalidRecipientError):
            await provider.send(message(address))
    assert sandbox.connections == 0


async def test_sequential_sends_reuse_one_connection(
    sandbox: SmtpSandbox, provider: SmtpProvider
) -> None:
    for n in range(10):
        await provider.send(message(f"user{n}@example.com", n=n))

    assert len(sandbox.received) == 10
    assert sandbox.connections == 1
    assert {m["connection"] for m in sandbox.received} == {1}


async def test_concurrent_sends_share_a_bounded_pool(sandbox: SmtpSandbox) -> None:
    smtp = SmtpProvider(make_settings(**sandbox.settings_overrides(), smtp_pool_size=3))
    await smtp.start()
    try:
        results = await asyncio.gather(
            *(smtp.send(message(f"user{n}@example.com", n=n)) for n in range(20))
        )
    finally:
        await smtp.stop()

    assert len({r.provider_message_id for r in results}) == 20
    assert sorted(m["delivery_id"] for m in sandbox.received) == sorted(f"d-{n}" for n in range(20))
    assert 1 <= sandbox.connections <= 3


async def test_reconnects_after_the_server_drops_the_connection(
    sandbox: SmtpSandbox, provider: SmtpProvider
) -> None:
    await provider.send(message(n=1))
    sandbox.drop_connections()

    await provider.send(message(n=2))  # stale pooled connection: reconnect, no error

    assert [m["delivery_id"] for m in sandbox.received] == ["d-1", "d-2"]
    assert sandbox.connections == 2


async def test_login_when_credentials_are_configured() -> None:
    box = SmtpSandbox(username="mailer", password="s3cret")
    await box.start()
    try:
        good = SmtpProvider(make_settings(**box.settings_overrides()))
        await good.start()
        await good.send(message())
        await good.stop()
        assert box.received[0]["login"] == "mailer"

        bad = SmtpProvider(make_settings(**{**box.settings_overrides(), "smtp_password": "wrong"}))
        await bad.start()
        with pytest.raises(ConfigurationError):
            await bad.send(message(n=2))
        await bad.stop()
    finally:
        await box.stop()
    assert len(box.received) == 1


async def test_unreachable_server_is_transient() -> None:
    with socket.socket() as probe:  # a port nobody listens on once closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    smtp = SmtpProvider(make_settings(smtp_host="127.0.0.1", smtp_port=port))
    await smtp.start()
    try:
        with pytest.raises(TransientError) as raised:
            await smtp.send(message())
    finally:
        await smtp.stop()
    assert raised.value.code == "connection"


async def test_stalled_server_times_out_as_transient(sandbox: SmtpSandbox) -> None:
    sandbox.delays["slow@example.com"] = 5.0
    smtp = SmtpProvider(make_settings(**sandbox.settings_overrides(), provider_timeout_seconds=0.3))
    await smtp.start()
    try:
        with pytest.raises(TransientError) as raised:
            await smtp.send(message("slow@example.com"))
        assert raised.value.code == "timeout"
        # The timed-out connection was discarded; the slot reconnects and works.
        await smtp.send(message(n=2))
    finally:
        await smtp.stop()
    # The 250 to DATA comes after the sandbox recorded the mail: no waiting needed.
    assert [m["delivery_id"] for m in sandbox.received] == ["d-2"]
    assert sandbox.connections == 2
