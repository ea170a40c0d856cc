"""Signed one-click unsubscribe tokens (providers/unsubscribe.py)."""

from __future__ import annotations

import base64

import pytest
from pydantic import SecretStr

from config.settings import Settings
from providers.unsubscribe import (
    BadSignature,
    ExpiredLink,
    UnsubscribeClaim,
    UnsubscribeLinks,
    sign,
    verify,
)

KEY = b"k" * 32
CLAIM = UnsubscribeClaim("user-42", "promo", "", 2_000_000_000)


def test_a_signed_token_verifies_to_its_claim_and_is_one_url_segment() -> None:
    token = sign(KEY, CLAIM)
    assert "/" not in token and "=" not in token and "+" not in token
    assert verify(KEY, token, now=1_900_000_000) == CLAIM


def test_an_expired_link_is_refused() -> None:
    with pytest.raises(ExpiredLink):
        verify(KEY, sign(KEY, CLAIM), now=2_000_000_001)


@pytest.mark.parametrize(
    "tamper",
    [
        lambda t: sign(b"other key", CLAIM),
        # Another user's id under the same signature.
        lambda t: (
            base64.urlsafe_b64encode(b'["user-43","promo","",2000000000]').rstrip(b"=").decode()
            + "."
            + t.split(".")[1]
        ),
        lambda t: t[:-2] + ("AA" if not t.endswith("AA") else "BB"),
        lambda t: t.replace(".", ""),
        lambda t: t + ".x",
        lambda t: "!!!." + t.split(".")[1],
        lambda t: "x" * 5000,
        lambda t: "",
    ],
)
def test_a_token_not_signed_as_it_is_is_refused(tamper: object) -> None:
    token = tamper(sign(KEY, CLAIM))  # type: ignore[operator]
    with pytest.raises(BadSignature):
        verify(KEY, token, now=1.0)


def test_nothing_verifies_without_a_secret() -> None:
    with pytest.raises(BadSignature):
        verify(b"", sign(b"", CLAIM), now=1.0)


def test_links_sit_under_the_public_url_and_last_the_configured_days() -> None:
    settings = Settings(
        public_base_url="https://notify.example.com/",
        unsubscribe_secret=SecretStr("s"),
        unsubscribe_link_days=2,
    )
    links = UnsubscribeLinks(settings)
    url = links.url("u 1", "orders", now=1000.0)
    assert url.startswith("https://notify.example.com/v1/unsubscribe/")
    claim = links.verify(url.rsplit("/", 1)[1], now=1000.0)
    assert claim == UnsubscribeClaim("u 1", "orders", "", 1000 + 2 * 86400)
    assert not UnsubscribeLinks(Settings(public_base_url="https://x")).enabled
