"""Signed one-click unsubscribe links (RFC 8058). Pure: no I/O, no faust.

A token names who is unsubscribing from what (user id, a category or a channel) and until when
the link is good; an HMAC-SHA256 over exactly those bytes, keyed by
``NOTIFY_UNSUBSCRIBE_SECRET``, is the whole authorisation: the mail client POSTs the link with
no credentials of its own, so a link nobody signed, or one edited to name another user, must
not verify. Both halves are base64url without padding, joined by a dot, so a token is one path
segment: ``<payload>.<signature>``.

The payload is a compact JSON array ``[user_id, category, channel, expires_at]`` (channel
empty when the link mutes a category): no PII beyond the user id the API already carries.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from dataclasses import dataclass

import msgspec

from config.errors import NotifyError
from config.settings import Settings

PATH = "/v1/unsubscribe/"
_MAX_TOKEN_CHARS = 2048  # far above any real token: a longer one is refused before decoding


class UnsubscribeTokenError(NotifyError):
    """A token that must not be honoured; ``code`` says why (the API's error code)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class BadSignature(UnsubscribeTokenError):
    """Not signed with our key, edited, or not a token at all."""

    def __init__(self) -> None:
        super().__init__("bad_signature", "the unsubscribe link is not valid")


class ExpiredLink(UnsubscribeTokenError):
    def __init__(self) -> None:
        super().__init__("expired_link", "the unsubscribe link has expired")


@dataclass(frozen=True, slots=True)
class UnsubscribeClaim:
    """What a verified link asks for: mute ``category`` (or, when set, the whole ``channel``)."""

    user_id: str
    category: str
    channel: str
    expires_at: int  # epoch seconds


_Payload = tuple[str, str, str, int]
_DECODER = msgspec.json.Decoder(_Payload)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(secret: bytes, payload: bytes) -> bytes:
    return hmac.new(secret, payload, hashlib.sha256).digest()


def sign(secret: bytes, claim: UnsubscribeClaim) -> str:
    payload = msgspec.json.encode([claim.user_id, claim.category, claim.channel, claim.expires_at])
    return f"{_b64(payload)}.{_b64(_mac(secret, payload))}"


def verify(secret: bytes, token: str, now: float) -> UnsubscribeClaim:
    """The claim of a token signed with ``secret`` and not expired at ``now``; raises
    BadSignature or ExpiredLink. The signature is checked (in constant time) before the
    payload is decoded, so nothing unsigned is ever parsed."""
    if not secret or len(token) > _MAX_TOKEN_CHARS or token.count(".") != 1:
        raise BadSignature()
    encoded, _, signature = token.partition(".")
    try:
        payload, mac = _unb64(encoded), _unb64(signature)
    except (binascii.Error, ValueError):
        raise BadSignature() from None
    if not hmac.compare_digest(mac, _mac(secret, payload)):
        raise BadSignature()
    try:
        user_id, category, channel, expires_at = _DECODER.decode(payload)
    except msgspec.DecodeError:
        raise BadSignature() from None  # signed by us, so never: but never trusted blindly
    if expires_at < now:
        raise ExpiredLink()
    return UnsubscribeClaim(user_id, category, channel, expires_at)


class UnsubscribeLinks:
    """The links one configuration signs: none without a public URL and a secret."""

    def __init__(self, settings: Settings) -> None:
        self._base = settings.public_base_url.rstrip("/")
        self._secret = settings.unsubscribe_secret.get_secret_value().encode()
        self._lifetime = settings.unsubscribe_link_days * 86400

    @property
    def enabled(self) -> bool:
        return bool(self._base and self._secret)

    def url(self, user_id: str, category: str, now: float, channel: str = "") -> str:
        claim = UnsubscribeClaim(user_id, category, channel, int(now + self._lifetime))
        return f"{self._base}{PATH}{sign(self._secret, claim)}"

    def verify(self, token: str, now: float) -> UnsubscribeClaim:
        return verify(self._secret, token, now)
