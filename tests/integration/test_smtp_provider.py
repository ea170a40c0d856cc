"""SmtpProvider against the aiosmtpd sandbox, over real sockets."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable

import pytest

from providers.base import (
    ConfigurationError,
    InvalidRecipientError,
    PermanentError,
    ProviderError,
    SendResult,
    TransientError,
)
from providers.sandboxes.smtp import SmtpSandbox
from providers.smtp import SmtpProvider
from tests.integration.provider_helpers import MessageBuilder, closed_port, make_settings, running

pytestmark = pytest.mark.integration

message = MessageBuilder(
    "email",
    "ada@example.com",
    title="Your order shipped",
    body="It is on its way.",
    category="orders",
)


@pytest.fixture
async def sandbox() -> AsyncIterator[SmtpSandbox]:
    async with running(SmtpSandbox()) as box:
        yield box


@pytest.fixture
async def provider(sandbox: SmtpSandbox) -> AsyncIterator[SmtpProvider]:
    settings = make_settings(
        **sandbox.settings_overrides(), email_from="Notify <no-reply@notify.test>"
    )
    async with running(SmtpProvider(settings)) as smtp:
        yield smtp


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
        **sandbox.settings_overrides(),
        public_base_url="https://notify.test",
        unsubscribe_secret="s3cret",
    )
    async with running(SmtpProvider(settings)) as smtp:
        await smtp.send(message(title="Two\r\nlines"))
    headers = sandbox.received[0]["headers"]
    assert headers["Subject"] == "Two lines"
    assert headers["List-Unsubscribe"].startswith("<https://notify.test/v1/unsubscribe/")
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
    settings = make_settings(**sandbox.settings_overrides(), smtp_pool_size=3)
    async with running(SmtpProvider(settings)) as smtp:
        results = await asyncio.gather(
            *(smtp.send(message(f"user{n}@example.com", n=n)) for n in range(20))
        )

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
    async with running(SmtpSandbox(username="mailer", password="s3cret")) as box:
        async with running(SmtpProvider(make_settings(**box.settings_overrides()))) as good:
            await good.send(message())
        assert box.received[0]["login"] == "mailer"

        wrong = make_settings(**{**box.settings_overrides(), "smtp_password": "wrong"})
        async with running(SmtpProvider(wrong)) as bad:
            with pytest.raises(ConfigurationError):
                await bad.send(message(n=2))
    assert len(box.received) == 1


async def test_unreachable_server_is_transient() -> None:
    settings = make_settings(smtp_host="127.0.0.1", smtp_port=closed_port())
    async with running(SmtpProvider(settings)) as smtp:
        with pytest.raises(TransientError) as raised:
            await smtp.send(message())
    assert raised.value.code == "connection"


async def test_stalled_server_times_out_as_transient(sandbox: SmtpSandbox) -> None:
    sandbox.delays["slow@example.com"] = 5.0
    settings = make_settings(**sandbox.settings_overrides(), provider_timeout_seconds=0.3)
    async with running(SmtpProvider(settings)) as smtp:
        with pytest.raises(TransientError) as raised:
            await smtp.send(message("slow@example.com"))
        assert raised.value.code == "timeout"
        # The timed-out connection was discarded; the slot reconnects and works.
        await smtp.send(message(n=2))
    # The 250 to DATA comes after the sandbox recorded the mail: no waiting needed.
    assert [m["delivery_id"] for m in sandbox.received] == ["d-2"]
    assert sandbox.connections == 2


async def test_smtpapi_header_carries_the_ids_for_event_webhooks(
    sandbox: SmtpSandbox, provider: SmtpProvider
) -> None:
    long_id = "order-" + "7" * 190  # longer than a 78-column header line
    await provider.send(
        message(notification_id=long_id, delivery_id=f"{long_id}:email:1f2e", user_id="user-42")
    )

    [mail] = sandbox.received
    assert json.loads(mail["headers"]["X-SMTPAPI"]) == {
        "unique_args": {
            "notification_id": long_id,
            "delivery_id": f"{long_id}:email:1f2e",
            "user_id": "user-42",
        }
    }
    assert mail["headers"]["X-Notification-ID"] == long_id
    # The relay reads the header as JSON: folded at spaces, never RFC 2047-encoded, and no
    # line beyond SMTP's 998 characters.
    head = mail["raw"].split(b"\r\n\r\n")[0]
    assert b"X-SMTPAPI: {" in head and b"=?" not in head
    assert max(len(line) for line in mail["raw"].splitlines()) <= 998


# --------------------------------------------------------------------- primary / backup relay

COOL_DOWN = 0.3


@pytest.fixture
async def backup() -> AsyncIterator[SmtpSandbox]:
    async with running(SmtpSandbox()) as box:
        yield box


def with_backup(primary: SmtpSandbox, backup: SmtpSandbox) -> SmtpProvider:
    settings = make_settings(
        **primary.settings_overrides(),
        **backup.backup_overrides(),
        smtp_failover_threshold=3,
        smtp_failover_seconds=COOL_DOWN,
    )
    return SmtpProvider(settings)


async def send_until(
    smtp: SmtpProvider, n: int, done: Callable[[SendResult | ProviderError], bool]
) -> int:
    """Send mail ``n``, ``n + 1`` ... until ``done(outcome)`` and return the last ``n``: the
    circuit only changes state when a mail is sent, so this is how a test waits it out."""
    deadline = time.monotonic() + 10 * COOL_DOWN
    while True:
        try:
            outcome: SendResult | ProviderError = await smtp.send(message(n=n))
        except ProviderError as exc:
            outcome = exc
        if done(outcome):
            return n
        assert time.monotonic() < deadline, f"still {outcome!r} after {10 * COOL_DOWN} s"
        n += 1
        await asyncio.sleep(0.02)


@pytest.mark.parametrize("outage", ["421", "stopped"])
async def test_fails_over_to_the_backup_and_back_after_the_cool_down(
    sandbox: SmtpSandbox, backup: SmtpSandbox, outage: str
) -> None:
    async with running(with_backup(sandbox, backup)) as smtp:
        assert (await smtp.send(message(n=0))).provider == "smtp"
        if outage == "421":
            sandbox.fault_rate = (1.0, (421, "4.3.2 System shutting down"))
        else:
            await sandbox.stop()
        opened = 0.0
        for n in (1, 2, 3):  # the threshold: three relay failures in a row
            opened = time.monotonic()  # the third send opens the circuit
            with pytest.raises(TransientError):
                await smtp.send(message(n=n))
        assert (await smtp.send(message(n=4))).provider == "smtp-backup"
        if outage == "421":
            sandbox.fault_rate = None
        else:
            await sandbox.start()  # same port again
        last = await send_until(smtp, 5, lambda r: getattr(r, "provider", "") == "smtp")
        back_after = time.monotonic() - opened

    assert back_after >= COOL_DOWN  # the backup kept the mail for the whole cool-down
    assert [m["delivery_id"] for m in sandbox.received] == ["d-0", f"d-{last}"]
    assert [m["delivery_id"] for m in backup.received] == [f"d-{n}" for n in range(4, last)]
    assert len(sandbox.rejected) == (3 if outage == "421" else 0)


async def test_a_failed_probe_reopens_the_circuit_at_once(
    sandbox: SmtpSandbox, backup: SmtpSandbox
) -> None:
    sandbox.fault_rate = (1.0, (421, "4.3.2 System shutting down"))
    async with running(with_backup(sandbox, backup)) as smtp:
        for n in (1, 2, 3):
            with pytest.raises(TransientError):
                await smtp.send(message(n=n))
        probe = await send_until(smtp, 4, lambda r: isinstance(r, TransientError))
        # One failed probe is enough: no new run of three before the backup takes over again.
        after = await smtp.send(message(n=probe + 1))

    assert after.provider == "smtp-backup"
    assert len(sandbox.rejected) == 4
    assert [m["delivery_id"] for m in backup.received] == [
        f"d-{n}" for n in (*range(4, probe), probe + 1)
    ]


async def test_hard_bounces_do_not_count_towards_failover(
    sandbox: SmtpSandbox, backup: SmtpSandbox
) -> None:
    sandbox.faults["gone@example.com"] = (550, "5.1.1 User unknown")
    async with running(with_backup(sandbox, backup)) as smtp:
        for n in range(5):
            with pytest.raises(InvalidRecipientError):
                await smtp.send(message("gone@example.com", n=n))
        result = await smtp.send(message(n=5))

    assert result.provider == "smtp"
    assert backup.connections == 0
