"""E-mail over SMTP with aiosmtplib, through a small pool of long-lived connections.

Opening an SMTP session costs several round trips (greeting, EHLO, maybe STARTTLS and AUTH),
so connections are kept open and handed to one send at a time. Replies are translated into
the provider vocabulary of ``providers.base``: 4xx → transient, 5xx → permanent, dead mailbox
→ invalid recipient.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import logging
import re
from email.message import EmailMessage
from email.utils import formatdate, make_msgid, parseaddr
from urllib.parse import quote, urlencode

import aiosmtplib

from config.settings import Settings
from providers.base import (
    ConfigurationError,
    InvalidRecipientError,
    OutboundMessage,
    PermanentError,
    ProviderError,
    SendResult,
    TransientError,
)

log = logging.getLogger(__name__)

NAME = "smtp"

# Reply codes that are about the recipient's mailbox (RFC 5321 §4.2.3) ...
_MAILBOX_CODES = frozenset({550, 551, 553})
# ... and wording / enhanced codes (RFC 3463 X.1.x = addressing status) saying it is dead,
# as opposed to a policy refusal (spam, 5.7.x) that also comes back as 550.
_DEAD_MAILBOX = re.compile(
    r"\b5\.1\.\d{1,3}\b|user unknown|unknown user|no such (user|mailbox)|mailbox not found"
    r"|mailbox unavailable|does not exist|invalid (mailbox|recipient)|unrouteable address",
    re.IGNORECASE,
)
# Deliberately strict: one @, no whitespace, angle brackets, list separators or control
# characters. Anything else would be rejected by aiosmtplib or smuggle extra envelope syntax.
_ADDRESS = re.compile(r"^[^@\s<>,;\x00-\x1f\x7f]+@[^@\s<>,;\x00-\x1f\x7f]+$")
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


def _render_html(title: str, body: str) -> str:
    paragraphs = "".join(
        f"<p>{html.escape(chunk).replace(chr(10), '<br>')}</p>"
        for chunk in re.split(r"\n\s*\n", body.strip())
        if chunk
    )
    heading = f"<h1>{html.escape(title)}</h1>" if title else ""
    return (
        '<!DOCTYPE html><html><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title></head><body>{heading}{paragraphs}</body></html>"
    )


def _list_unsubscribe(message: OutboundMessage, settings: Settings, sender: str) -> str:
    links = [f"<mailto:{sender}?subject={quote('unsubscribe')}>"]
    if settings.email_unsubscribe_url:
        query = urlencode({"user_id": message.user_id, "category": message.category})
        sep = "&" if "?" in settings.email_unsubscribe_url else "?"
        links.insert(0, f"<{settings.email_unsubscribe_url}{sep}{query}>")
    return ", ".join(links)


def build_email(message: OutboundMessage, settings: Settings) -> EmailMessage:
    """The multipart/alternative e-mail for one delivery (pure; raises on a bad address)."""
    if not _ADDRESS.match(message.address):
        raise InvalidRecipientError(NAME, "invalid_address", repr(message.address))
    sender = parseaddr(settings.email_from)[1] or settings.email_from
    # Header values must be single-line; a newline in a title would otherwise be an error
    # (or, with a lax policy, header injection).
    subject = " ".join(message.title.split()) or " ".join(message.body.split())[:78]
    mail = EmailMessage()
    mail["From"] = settings.email_from
    mail["To"] = message.address
    mail["Subject"] = subject
    mail["Date"] = formatdate(usegmt=True)
    mail["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2] or None)
    mail["X-Notification-ID"] = message.notification_id
    mail["X-Delivery-ID"] = message.delivery_id
    mail["List-Unsubscribe"] = _list_unsubscribe(message, settings, sender)
    if settings.email_unsubscribe_url:
        mail["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    # RFC 3834: tells vacation responders not to answer a notification.
    mail["Auto-Submitted"] = "auto-generated"
    text = f"{message.title}\n\n{message.body}" if message.title else message.body
    mail.set_content(text)
    mail.add_alternative(_render_html(message.title, message.body), subtype="html")
    return mail


class SmtpProvider:
    """Sends e-mail through ``settings.smtp_host``; ``start()`` before use, ``stop()`` after."""

    name = NAME

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._sender = parseaddr(settings.email_from)[1] or settings.email_from
        self._idle: asyncio.Queue[aiosmtplib.SMTP] | None = None
        self._clients: list[aiosmtplib.SMTP] = []
        self._busy: set[int] = set()  # id() of clients lent to a running send

    async def start(self) -> None:
        # Connections are opened lazily by the first sends: a mail server that is down at
        # start-up must not stop the worker, only fail (and retry) the e-mails. LIFO lends
        # the connection used last (open, warm) first, so a trickle of mail keeps one
        # connection busy instead of opening all of them round-robin.
        self._idle = asyncio.LifoQueue()
        self._clients = [self._new_client() for _ in range(self._settings.smtp_pool_size)]
        for client in self._clients:
            self._idle.put_nowait(client)

    async def stop(self) -> None:
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

    async def send(self, message: OutboundMessage) -> SendResult:
        mail = build_email(message, self._settings)
        if self._idle is None:
            raise RuntimeError("SmtpProvider.send() before start()")
        idle = self._idle
        client = await idle.get()  # one connection per concurrent send
        self._busy.add(id(client))
        try:
            await self._deliver(client, mail, message.address)
        except Exception as exc:
            # Anything but a refused envelope (auth, greeting, I/O) leaves the session in an
            # unknown state: drop it, the next send on this slot reconnects.
            if not isinstance(exc, _ENVELOPE_REFUSALS):
                client.close()
            raise _translate(exc) from exc
        finally:
            self._busy.discard(id(client))
            idle.put_nowait(client)
        return SendResult(provider=NAME, provider_message_id=mail["Message-ID"])

    async def _deliver(self, client: aiosmtplib.SMTP, mail: EmailMessage, to: str) -> None:
        reused = client.is_connected
        if not reused:
            await client.connect()
        try:
            await client.send_message(mail, sender=self._sender, recipients=[to])
        except aiosmtplib.SMTPServerDisconnected:
            if not reused:
                raise
            # A pooled connection can die while idle (server idle timeout, restart) before we
            # notice. No 250 came back, so one fresh try is right; the rare duplicate (mail
            # taken but the reply lost) is within the pipeline's at-least-once contract.
            log.info("smtp: pooled connection was dropped, reconnecting")
            client.close()
            await client.connect()
            await client.send_message(mail, sender=self._sender, recipients=[to])

    def _new_client(self) -> aiosmtplib.SMTP:
        s = self._settings
        login = bool(s.smtp_username)
        return aiosmtplib.SMTP(
            hostname=s.smtp_host,
            port=s.smtp_port,
            username=s.smtp_username if login else None,
            password=s.smtp_password.get_secret_value() if login else None,
            # False really means plain text: None would upgrade whenever offered, which
            # fails against a server with an untrusted certificate.
            start_tls=s.smtp_start_tls,
            timeout=s.provider_timeout_seconds,
        )
