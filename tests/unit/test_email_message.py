"""The hand-written MIME of providers/email_message.py, read back by the stdlib's parser."""

from __future__ import annotations

import email
import json
import time
from email import policy
from email.message import EmailMessage

import pytest
from pydantic import SecretStr

from config.settings import Settings
from providers.base import InvalidRecipientError, PermanentError
from providers.email_message import EmailRenderer
from providers.unsubscribe import UnsubscribeLinks
from tests.integration.provider_helpers import MessageBuilder

SETTINGS = Settings(email_from="Notify <no-reply@notify.test>")


outbound = MessageBuilder(
    "email",
    "ada@example.com",
    title="Your order shipped",
    body="It is on its way.",
    category="orders",
)


def parsed(data: bytes) -> EmailMessage:
    mail = email.message_from_bytes(data, policy=policy.default)
    assert isinstance(mail, EmailMessage)
    assert not mail.defects
    return mail


def parts(mail: EmailMessage) -> dict[str, str]:
    # The parser keeps the wire's CRLF line ends in decoded text.
    return {
        part.get_content_type(): part.get_content().replace("\r\n", "\n")
        for part in mail.iter_parts()
    }


def test_headers_and_both_alternatives_read_back() -> None:
    rendered = EmailRenderer(SETTINGS).render(outbound(body="Line one\nline <two>\n\nSecond"))
    assert b"\r\n" in rendered.data and b"\n" not in rendered.data.replace(b"\r\n", b"")
    assert not rendered.smtputf8
    mail = parsed(rendered.data)
    assert mail["From"] == "Notify <no-reply@notify.test>"
    assert mail["To"] == "ada@example.com"
    assert mail["Subject"] == "Your order shipped"
    assert mail["Message-ID"] == rendered.message_id
    assert rendered.message_id.endswith("@notify.test>")
    assert mail["X-Notification-ID"] == "n-1" and mail["X-Delivery-ID"] == "d-1"
    assert json.loads(mail["X-SMTPAPI"]) == {
        "unique_args": {"notification_id": "n-1", "delivery_id": "d-1", "user_id": "u-1"}
    }
    assert mail["List-Unsubscribe"] == "<mailto:no-reply@notify.test?subject=unsubscribe>"
    assert mail["List-Unsubscribe-Post"] is None
    assert mail["Auto-Submitted"] == "auto-generated"
    assert mail.get_content_type() == "multipart/alternative"
    contents = parts(mail)
    assert contents["text/plain"] == "Your order shipped\n\nLine one\nline <two>\n\nSecond"
    assert "<p>Line one<br>line &lt;two&gt;</p><p>Second</p>" in contents["text/html"]


def test_every_message_gets_its_own_id_and_boundary() -> None:
    renderer = EmailRenderer(SETTINGS)
    first, second = (parsed(renderer.render(outbound()).data) for _ in range(2))
    assert first["Message-ID"] != second["Message-ID"]
    assert first.get_boundary() != second.get_boundary()


def test_non_ascii_text_is_encoded_and_decodes_to_the_original() -> None:
    title = "Commande expédiée — 配達中 🚚"
    body = "Bonjour Zoë,\r\nvotre colis arrive.\rÀ bientôt = merci"
    mail = parsed(EmailRenderer(SETTINGS).render(outbound(title=title, body=body)).data)
    assert mail["Subject"] == title
    contents = parts(mail)
    expected = f"{title}\n\nBonjour Zoë,\nvotre colis arrive.\nÀ bientôt = merci"
    assert contents["text/plain"] == expected
    assert "Zoë" in contents["text/html"]


def test_long_lines_stay_within_smtp_limits_and_survive() -> None:
    title = " ".join(["word"] * 400)  # ~2,000 characters of subject
    body = "x" * 5000 + "\n.leading dot\nFrom the start"
    rendered = EmailRenderer(SETTINGS).render(outbound(title=title, body=body))
    assert max(len(line) for line in rendered.data.split(b"\r\n")) <= 998
    mail = parsed(rendered.data)
    assert mail["Subject"] == title
    assert parts(mail)["text/plain"] == f"{title}\n\n{body}"


def test_a_title_with_newlines_becomes_one_subject_line() -> None:
    mail = parsed(EmailRenderer(SETTINGS).render(outbound(title="Two\r\nlines")).data)
    assert mail["Subject"] == "Two lines"


def test_without_a_title_the_subject_is_the_start_of_the_body() -> None:
    mail = parsed(EmailRenderer(SETTINGS).render(outbound(title="", body="Hi\n" + "b" * 90)).data)
    assert mail["Subject"] == ("Hi " + "b" * 90)[:78]


def test_one_click_unsubscribe_is_a_signed_link_when_a_base_url_and_secret_are_set() -> None:
    settings = Settings(
        email_from="n@notify.test",
        public_base_url="https://x.test/",
        unsubscribe_secret=SecretStr("k" * 32),
    )
    mail = parsed(EmailRenderer(settings).render(outbound(user_id="u 7")).data)
    first, second = mail["List-Unsubscribe"].split(", ")
    assert second == "<mailto:n@notify.test?subject=unsubscribe>"
    assert first.startswith("<https://x.test/v1/unsubscribe/") and first.endswith(">")
    token = first[len("<https://x.test/v1/unsubscribe/") : -1]
    claim = UnsubscribeLinks(settings).verify(token, time.time())
    assert (claim.user_id, claim.category, claim.channel) == ("u 7", "orders", "")
    assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert mail["From"] == "n@notify.test"


def test_no_one_click_link_without_a_secret() -> None:
    settings = Settings(email_from="n@notify.test", public_base_url="https://x.test")
    mail = parsed(EmailRenderer(settings).render(outbound()).data)
    assert mail["List-Unsubscribe"] == "<mailto:n@notify.test?subject=unsubscribe>"
    assert mail["List-Unsubscribe-Post"] is None


def test_a_non_ascii_display_name_is_encoded() -> None:
    settings = Settings(email_from="Boutique Zoë <shop@notify.test>")
    mail = parsed(EmailRenderer(settings).render(outbound()).data)
    assert mail["From"] == "Boutique Zoë <shop@notify.test>"


def test_a_non_ascii_recipient_needs_smtputf8() -> None:
    rendered = EmailRenderer(SETTINGS).render(outbound(address="zoë@exämple.test"))
    assert rendered.smtputf8
    assert parsed(rendered.data)["To"] == "zoë@exämple.test"


def test_a_non_ascii_id_is_encoded_and_a_control_character_refused() -> None:
    renderer = EmailRenderer(SETTINGS)
    mail = parsed(renderer.render(outbound(notification_id="n-é")).data)
    assert mail["X-Notification-ID"] == "n-é"
    with pytest.raises(PermanentError, match="control character"):
        renderer.render(outbound(delivery_id="d-1\r\nBcc: eve@example.com"))


@pytest.mark.parametrize("address", ["", "no-at-sign", "a@b@c", "a b@example.com", "<a@b.c>"])
def test_a_malformed_address_is_an_invalid_recipient(address: str) -> None:
    with pytest.raises(InvalidRecipientError):
        EmailRenderer(SETTINGS).render(outbound(address=address))
