"""E-mail over SMTP with aiosmtplib, through a small pool of long-lived connections per relay.

Opening an SMTP session costs several round trips (greeting, EHLO, maybe STARTTLS and AUTH),
so connections are kept open and handed to one send at a time. Replies are translated into
the provider vocabulary of ``providers.base``: 4xx → transient, 5xx → permanent, dead mailbox
→ invalid recipient.

With ``smtp_backup_host`` set, the primary relay sits behind a circuit breaker (the providers'
own, providers/breaker.py, configured as a run of failures and one probe): a run of
``smtp_failover_threshold`` relay failures (connection errors, timeouts, 4xx) sends mail to the
backup for ``smtp_failover_seconds``; then one mail probes the primary (half-open) and its
success moves mail back. 5xx replies are about the recipient or the message and say nothing
about the relay, so they neither count nor reset the run.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import Callable

import aiosmtplib

from config.settings import Settings
from providers.base import (
    ConfigurationError,
    InvalidRecipientError,
    OutboundMessage,
    PermanentError,
    ProviderError,
    ProviderName,
    SendResult,
    TransientError,
    not_started,
)
from providers.breaker import BreakerPolicy, CircuitBreaker
from providers.email_message import EmailRenderer, RenderedEmail

log = logging.getLogger(__name__)

NAME = ProviderName.SMTP
BACKUP_NAME = ProviderName.SMTP_BACKUP  # SendResult.provider when the backup relay took it

# Reply codes that are about the recipient's mailbox (RFC 5321 §4.2.3) ...
_MAILBOX_CODES = frozenset({550, 551, 553})
# ... and wording / enhanced codes (RFC 3463 X.1.x = addressing status) saying it is dead,
# as opposed to a policy refusal (spam, 5.7.x) that also comes back as 550.
_DEAD_MAILBOX = re.compile(
    r"\b5\.1\.\d{1,3}\b|user unknown|unknown user|no such (user|mailbox)|mailbox not found"
    r"|mailbox unavailable|does not exist|invalid (mailbox|recipient)|unrouteable address",
    re.IGNORECASE,
)
# Refusals of one envelope: aiosmtplib has sent RSET, so the session stays usable.
_ENVELOPE_REFUSALS = (
    aiosmtplib.SMTPRecipientsRefused,
    aiosmtplib.SMTPSenderRefused,
    aiosmtplib.SMTPDataError,
    ValueError,
)


def classify_reply(code: int, text: str) -> ProviderError:
    """Map one SMTP reply to the provider error the pipeline acts on."""
    detail = f"{code} {text}".strip()
    if 400 <= code < 500:
        return TransientError(NAME, f"smtp_{code}", detail)
    if code in _MAILBOX_CODES and _DEAD_MAILBOX.search(text):
        return InvalidRecipientError(NAME, f"smtp_{code}", detail)
    if code in (530, 534, 535, 538):  # authentication required / failed: our credentials
        return ConfigurationError(NAME, f"smtp_{code}", detail)
    return PermanentError(NAME, f"smtp_{code}", detail)


def _translate(exc: Exception) -> ProviderError:
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        first = exc.recipients[0]
        return classify_reply(first.code, first.message)
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        return classify_reply(exc.code, exc.message)
    if isinstance(exc, aiosmtplib.SMTPNotSupported):
        return PermanentError(NAME, "not_supported", str(exc))
    if isinstance(exc, (aiosmtplib.SMTPTimeoutError, TimeoutError)):
        return TransientError(NAME, "timeout", str(exc))
    if isinstance(exc, (aiosmtplib.SMTPException, OSError)):
        return TransientError(NAME, "connection", str(exc))
    if isinstance(exc, ValueError):  # aiosmtplib refusing an unsafe address
        return InvalidRecipientError(NAME, "invalid_address", str(exc))
    return TransientError(NAME, type(exc).__name__, str(exc))


class _Relay:
    """One SMTP server and its own pool of long-lived connections."""

    def __init__(self, name: str, host: str, port: int, settings: Settings) -> None:
        self.name, self.host, self.port = name, host, port
        self._settings = settings
        self._idle: asyncio.Queue[aiosmtplib.SMTP] | None = None
        self._clients: list[aiosmtplib.SMTP] = []
        self._busy: set[int] = set()  # id() of clients lent to a running send

    def open(self) -> None:
        # Connections are opened lazily by the first sends: a mail server that is down at
        # start-up must not stop the worker, only fail (and retry) the e-mails. LIFO lends
        # the connection used last (open, warm) first, so a trickle of mail keeps one
        # connection busy instead of opening all of them round-robin.
        self._idle = asyncio.LifoQueue()
        self._clients = [self._new_client() for _ in range(self._settings.smtp_pool_size)]
        for client in self._clients:
            self._idle.put_nowait(client)

    async def close(self) -> None:
        idle, self._idle = self._idle, None
        if idle is None:
            return
        for client in self._clients:
            if not client.is_connected:
                continue
            if id(client) not in self._busy:  # a polite QUIT only where no send is running
                with contextlib.suppress(aiosmtplib.SMTPException, OSError, TimeoutError):
                    await client.quit(timeout=self._settings.provider_timeout_seconds)
            client.close()
        self._clients = []

    async def send(self, mail: RenderedEmail, sender: str, to: str) -> None:
        """Hand ``mail`` to this relay; raises the provider error for what went wrong."""
        if self._idle is None:
            raise not_started(NAME)
        idle = self._idle
        client = await idle.get()  # one connection per concurrent send
        self._busy.add(id(client))
        try:
            await self._deliver(client, mail, sender, to)
        except Exception as exc:
            # Anything but a refused envelope (auth, greeting, I/O) leaves the session in an
            # unknown state: drop it, the next send on this slot reconnects.
            if not isinstance(exc, _ENVELOPE_REFUSALS):
                client.close()
            raise _translate(exc) from exc
        finally:
            self._busy.discard(id(client))
            idle.put_nowait(client)

    async def _deliver(
        self, client: aiosmtplib.SMTP, mail: RenderedEmail, sender: str, to: str
    ) -> None:
        reused = client.is_connected
        if not reused:
            await client.connect()
        try:
            await _transact(client, mail, sender, to)
        except aiosmtplib.SMTPServerDisconnected:
            if not reused:
                raise
            # A pooled connection can die while idle (server idle timeout, restart) before we
            # notice. No 250 came back, so one fresh try is right; the rare duplicate (mail
            # taken but the reply lost) is within the pipeline's at-least-once contract.
            log.info("%s: pooled connection was dropped, reconnecting", self.name)
            client.close()
            await client.connect()
            await _transact(client, mail, sender, to)

    def _new_client(self) -> aiosmtplib.SMTP:
        s = self._settings
        login = bool(s.smtp_username)
        return aiosmtplib.SMTP(
            hostname=self.host,
            port=self.port,
            username=s.smtp_username if login else None,
            password=s.smtp_password.get_secret_value() if login else None,
            # False really means plain text: None would upgrade whenever offered, which
            # fails against a server with an untrusted certificate.
            start_tls=s.smtp_start_tls,
            timeout=s.provider_timeout_seconds,
        )


async def _transact(client: aiosmtplib.SMTP, mail: RenderedEmail, sender: str, to: str) -> None:
    options = ["SMTPUTF8"] if mail.smtputf8 else None
    await client.sendmail(sender, [to], mail.data, mail_options=options)


def relay_breaker(
    threshold: int, cooldown_seconds: float, clock: Callable[[], float] = time.monotonic
) -> CircuitBreaker:
    """The primary relay's breaker: open after ``threshold`` consecutive relay failures (a
    window of that many calls, all failed), then one probe mail (the one trial). While it is
    open, mail goes to the backup instead of waiting."""
    policy = BreakerPolicy(
        failure_rate=1.0, window=threshold, open_seconds=cooldown_seconds, half_open_calls=1
    )
    return CircuitBreaker(f"{NAME}/primary", policy, clock)


class SmtpProvider:
    """Sends e-mail through ``smtp_host`` (or ``smtp_backup_host`` while the primary fails);
    ``start()`` before use, ``stop()`` after."""

    name = NAME

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._renderer = EmailRenderer(settings)
        self._primary = _Relay(NAME, settings.smtp_host, settings.smtp_port, settings)
        self._relays = [self._primary]
        self._circuit: CircuitBreaker | None = None
        if settings.smtp_backup_host:
            backup = settings.smtp_backup_host, settings.smtp_backup_port
            self._relays.append(_Relay(BACKUP_NAME, *backup, settings))
            threshold, cooldown = settings.smtp_failover_threshold, settings.smtp_failover_seconds
            self._circuit = relay_breaker(threshold, cooldown)

    def breaker_states(self) -> dict[str, str]:
        """The primary relay's circuit (``smtp/primary``), when there is a backup to fail over
        to (the provider's own breaker, ``smtp``, is reported by its GuardedProvider)."""
        return {self._circuit.name: self._circuit.state} if self._circuit is not None else {}

    async def start(self) -> None:
        for relay in self._relays:
            relay.open()

    async def stop(self) -> None:
        for relay in self._relays:
            await relay.close()

    async def send(self, message: OutboundMessage) -> SendResult:
        mail = self._renderer.render(message)
        permit = self._circuit.admit() if self._circuit else None
        primary = self._circuit is None or permit is not None
        relay = self._relays[0 if primary else -1]
        verdict: bool | None = None  # what this send says about the primary relay
        try:
            await relay.send(mail, self._renderer.sender, message.address)
            verdict = False
        except TransientError:  # connection, timeout, 4xx: the relay's trouble
            verdict = True
            raise
        finally:
            # A 5xx is about the recipient or the message: None, neither counted nor a reset.
            if permit is not None and self._circuit is not None:
                self._circuit.record(permit, verdict)
        return SendResult(provider=relay.name, provider_message_id=mail.message_id)
