"""The e-mail a notification becomes: text and HTML alternatives, and the headers relays,
mail clients and the feedback webhook rely on. Pure: no I/O.

The message is written straight to RFC 5322 / MIME bytes instead of through
``email.message.EmailMessage``: the stdlib's header registry and generator took 1.7 ms of CPU
per e-mail (1,284 µs to build, 447 µs to flatten), most of an SMTP send's client cost, for a
message whose shape never changes. Both parts are quoted-printable, so the body is 7-bit
whatever the text; only a non-ASCII mailbox needs SMTPUTF8 (RFC 6531/6532). The tests parse
the output with the stdlib parser.
"""

from __future__ import annotations

import binascii
import html
import json
import re
import secrets
import time
from dataclasses import dataclass
from email.header import Header
from email.utils import formataddr, formatdate, make_msgid, parseaddr
from urllib.parse import quote

from config.settings import Settings
from providers.base import InvalidRecipientError, OutboundMessage, PermanentError, ProviderName
from providers.unsubscribe import UnsubscribeLinks

NAME = ProviderName.SMTP
CRLF = "\r\n"
# RFC 5322's limit is 998; staying well under it leaves room for relays that add a prefix.
_MAX_RAW_HEADER = 900

# Deliberately strict: one @, no whitespace, angle brackets, list separators or control
# characters. Anything else would be rejected by aiosmtplib or smuggle extra envelope syntax.
_ADDRESS = re.compile(r"^[^@\s<>,;\x00-\x1f\x7f]+@[^@\s<>,;\x00-\x1f\x7f]+$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True)
class RenderedEmail:
    message_id: str
    data: bytes  # the whole message, CRLF line endings
    smtputf8: bool  # the recipient's or the sender's address is not ASCII


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


def _list_unsubscribe(one_click: str | None, sender: str) -> str:
    """RFC 2369: the signed one-click link first (RFC 8058: clients POST it), then a mailto:
    for clients that only know that."""
    links = [f"<mailto:{sender}?subject={quote('unsubscribe')}>"]
    if one_click:
        links.insert(0, f"<{one_click}>")
    return ", ".join(links)


def _text_header(name: str, value: str) -> str:
    """``Name: value``: as is when short ASCII, else RFC 2047 encoded words folded at 78
    columns (what mail clients decode for display)."""
    if value.isascii() and len(value) <= _MAX_RAW_HEADER:
        return f"{name}: {value}"
    charset = "us-ascii" if value.isascii() else "utf-8"
    encoded = Header(value, charset, header_name=name).encode(linesep=CRLF)
    return f"{name}: {encoded}"


def _raw_header(name: str, value: str) -> str:
    """For machine-read values (ids, JSON, URLs): never folded or encoded when ASCII, since
    relays and the feedback webhook read them verbatim. A control character would end the
    header early (injection), so it fails the e-mail instead."""
    if _CONTROL.search(value):
        raise PermanentError(NAME, "invalid_header", f"{name} holds a control character")
    return _text_header(name, value)


def _qp_part(content_type: str, text: str) -> str:
    lines = text.replace("\r\n", "\n").replace("\r", "\n")
    body = binascii.b2a_qp(lines.encode("utf-8"), istext=True).decode("ascii")
    return (
        f'Content-Type: {content_type}; charset="utf-8"{CRLF}'
        f"Content-Transfer-Encoding: quoted-printable{CRLF}{CRLF}"
        f"{body.replace(chr(10), CRLF)}{CRLF}"
    )


class EmailRenderer:
    """Renders deliveries for one configuration; what depends only on the settings (the From
    header, the Message-ID domain) is worked out once."""

    def __init__(self, settings: Settings) -> None:
        self._links = UnsubscribeLinks(settings)
        name, address = parseaddr(settings.email_from)
        self.sender = address or settings.email_from
        self._domain = self.sender.rpartition("@")[2] or None
        # formataddr encodes a non-ASCII display name (RFC 2047) and quotes specials.
        self._from = f"From: {formataddr((name, self.sender), charset='utf-8')}"
        self._unsubscribe_post = (
            "List-Unsubscribe-Post: List-Unsubscribe=One-Click" if self._links.enabled else None
        )

    def render(self, message: OutboundMessage) -> RenderedEmail:
        """The multipart/alternative e-mail for one delivery; raises on a bad address."""
        if not _ADDRESS.match(message.address):
            raise InvalidRecipientError(NAME, "invalid_address", repr(message.address))
        # Header values must be single-line: a newline in a title would be header injection.
        subject = " ".join(message.title.split()) or " ".join(message.body.split())[:78]
        message_id = make_msgid(domain=self._domain)
        # SendGrid's SMTP API: unique args come back in every event webhook call (delivered,
        # bounce, open ...), which is how agents/feedback.py ties an event to its delivery.
        unique_args = {
            "notification_id": message.notification_id,
            "delivery_id": message.delivery_id,
            "user_id": message.user_id,
        }
        # The link mutes the e-mail's category for its user (api/erasure.py honours it).
        one_click = (
            self._links.url(message.user_id, message.category, time.time())
            if self._links.enabled
            else None
        )
        unsubscribe = _list_unsubscribe(one_click, self.sender)
        boundary = f"=_{secrets.token_hex(16)}"  # "=_" never occurs in quoted-printable
        headers = [
            self._from,
            f"To: {message.address}",
            _text_header("Subject", subject),
            f"Date: {formatdate(usegmt=True)}",
            f"Message-ID: {message_id}",
            _raw_header("X-Notification-ID", message.notification_id),
            _raw_header("X-Delivery-ID", message.delivery_id),
            _raw_header("X-SMTPAPI", json.dumps({"unique_args": unique_args})),
            _raw_header("List-Unsubscribe", unsubscribe),
            *([self._unsubscribe_post] if self._unsubscribe_post else []),
            # RFC 3834: tells vacation responders not to answer a notification.
            "Auto-Submitted: auto-generated",
            "MIME-Version: 1.0",
            f'Content-Type: multipart/alternative; boundary="{boundary}"',
        ]
        if message.html:
            # A template's own HTML, with its text part (written, or made from the HTML).
            text, markup = message.body, message.html
        else:
            text = f"{message.title}\n\n{message.body}" if message.title else message.body
            markup = _render_html(message.title, message.body)
        document = (
            CRLF.join(headers)
            + f"{CRLF}{CRLF}--{boundary}{CRLF}"
            + _qp_part("text/plain", text)
            + f"--{boundary}{CRLF}"
            + _qp_part("text/html", markup)
            + f"--{boundary}--{CRLF}"
        )
        # RFC 6531: a non-ASCII mailbox on either end needs SMTPUTF8 and raw UTF-8 headers.
        utf8 = not (message.address.isascii() and self.sender.isascii())
        return RenderedEmail(message_id, document.encode("utf-8" if utf8 else "ascii"), utf8)
