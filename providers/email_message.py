"""The e-mail a notification becomes: text and HTML alternatives, and the headers relays,
mail clients and the feedback webhook rely on. Pure: no I/O."""

from __future__ import annotations

import html
import json
import re
from email import policy
from email.headerregistry import BaseHeader, HeaderRegistry, UnstructuredHeader
from email.message import EmailMessage
from email.utils import formatdate, make_msgid, parseaddr
from urllib.parse import quote, urlencode

from config.settings import Settings
from providers.base import InvalidRecipientError, OutboundMessage

NAME = "smtp"

# Deliberately strict: one @, no whitespace, angle brackets, list separators or control
# characters. Anything else would be rejected by aiosmtplib or smuggle extra envelope syntax.
_ADDRESS = re.compile(r"^[^@\s<>,;\x00-\x1f\x7f]+@[^@\s<>,;\x00-\x1f\x7f]+$")


class _WideHeader(UnstructuredHeader, BaseHeader):
    """Folded at white space within SMTP's 998-character line limit, never into RFC 2047
    encoded words: relays and mail clients read these values (JSON, URLs) without decoding,
    and the default 78-column policy encodes any longer word."""

    def fold(self, *, policy: policy.Policy) -> str:
        return super().fold(policy=policy.clone(max_line_length=998))


_HEADERS = HeaderRegistry()
for _name in ("x-smtpapi", "x-notification-id", "x-delivery-id", "list-unsubscribe"):
    _HEADERS.map_to_type(_name, _WideHeader)
_POLICY = policy.default.clone(header_factory=_HEADERS)


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
    mail = EmailMessage(policy=_POLICY)
    mail["From"] = settings.email_from
    mail["To"] = message.address
    mail["Subject"] = subject
    mail["Date"] = formatdate(usegmt=True)
    mail["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2] or None)
    mail["X-Notification-ID"] = message.notification_id
    mail["X-Delivery-ID"] = message.delivery_id
    # SendGrid's SMTP API: unique args come back in every event webhook call (delivered,
    # bounce, open ...), which is how agents/feedback.py ties an event to its delivery.
    unique_args = {
        "notification_id": message.notification_id,
        "delivery_id": message.delivery_id,
        "user_id": message.user_id,
    }
    mail["X-SMTPAPI"] = json.dumps({"unique_args": unique_args})
    mail["List-Unsubscribe"] = _list_unsubscribe(message, settings, sender)
    if settings.email_unsubscribe_url:
        mail["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    # RFC 3834: tells vacation responders not to answer a notification.
    mail["Auto-Submitted"] = "auto-generated"
    text = f"{message.title}\n\n{message.body}" if message.title else message.body
    mail.set_content(text)
    mail.add_alternative(_render_html(message.title, message.body), subtype="html")
    return mail
