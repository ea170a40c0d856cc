"""Signed JSON POSTs to subscriber webhooks and to the in-app inbox service.

The receiver authenticates us with ``X-Notify-Signature``: an HMAC-SHA256 over
``f"{timestamp}.{body}"``. Putting the timestamp inside the MAC lets it reject replays of an
old, validly signed request; ``verify`` does both checks.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from datetime import UTC, datetime

import aiohttp
from yarl import URL

from config.settings import Settings
from providers.base import (
    InvalidRecipientError,
    OutboundMessage,
    PermanentError,
    ProviderError,
    ProviderName,
    SendResult,
    ThrottledError,
    TransientError,
    not_started,
)
from providers.http_retry import parse_retry_after

log = logging.getLogger(__name__)

NAME = ProviderName.WEBHOOK
SIGNATURE_HEADER = "X-Notify-Signature"
TIMESTAMP_HEADER = "X-Notify-Timestamp"
# Lets receivers deduplicate our at-least-once retries.
DELIVERY_HEADER = "X-Notify-Delivery-ID"
_PREFIX = "sha256="


def _as_bytes(value: str | bytes) -> bytes:
    return value.encode() if isinstance(value, str) else value


def sign(secret: str | bytes, timestamp: int | str, body: str | bytes) -> str:
    """``"sha256=" + hex(HMAC-SHA256(secret, f"{timestamp}.{body}"))``."""
    mac = hmac.new(_as_bytes(secret), f"{timestamp}.".encode() + _as_bytes(body), hashlib.sha256)
    return _PREFIX + mac.hexdigest()


def verify(
    secret: str | bytes,
    timestamp: int | str,
    body: str | bytes,
    signature: str,
    *,
    tolerance_seconds: float | None = 300.0,
    now: float | None = None,
) -> bool:
    """True when ``signature`` is ours for this body and the timestamp is fresh enough.

    ``tolerance_seconds=None`` skips the freshness check (e.g. re-verifying a stored request).
    """
    try:
        ts = int(timestamp)
    except (TypeError, ValueError):
        return False
    if tolerance_seconds is not None:
        current = time.time() if now is None else now
        if abs(current - ts) > tolerance_seconds:
            return False
    # Constant-time comparison: a byte-by-byte compare would leak the signature by timing.
    return hmac.compare_digest(sign(secret, ts, body), signature)


def build_payload(message: OutboundMessage, sent_at: datetime | None = None) -> bytes:
    """The exact bytes that are signed and sent."""
    moment = sent_at or datetime.now(UTC)
    document = {
        "notification_id": message.notification_id,
        "delivery_id": message.delivery_id,
        "user_id": message.user_id,
        "channel": message.channel,
        "title": message.title,
        "body": message.body,
        "data": dict(message.data),
        "category": message.category,
        "sent_at": moment.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
    }
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()


def classify_status(
    status: int, retry_after: str | None, detail: str = "", provider: str = NAME
) -> ProviderError:
    """The provider error for a non-2xx answer."""
    code = f"http_{status}"
    if status == 429:
        return ThrottledError(provider, code, detail, retry_after=parse_retry_after(retry_after))
    if status >= 500 or status == 408:
        return TransientError(provider, code, detail)
    if status in (404, 410):  # the subscriber endpoint is gone
        return InvalidRecipientError(provider, code, detail)
    return PermanentError(provider, code, detail)


def _check_url(address: str, provider: str = NAME) -> URL:
    try:
        url = URL(address)
    except (TypeError, ValueError) as exc:
        raise InvalidRecipientError(provider, "invalid_url", repr(address)) from exc
    if url.scheme not in ("http", "https") or not url.host:
        raise InvalidRecipientError(provider, "invalid_url", repr(address))
    return url


class WebhookProvider:
    """POSTs to ``message.address`` (subscriber URL, or inbox URL for ``in_app``)."""

    name: ProviderName = NAME

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._secret = settings.webhook_signing_secret.get_secret_value().encode()
        self._session: aiohttp.ClientSession | None = None
        self._timeout = settings.webhook_timeout_seconds

    def payload(self, message: OutboundMessage) -> bytes:
        return build_payload(message)

    async def start(self) -> None:
        if not self._secret:
            log.warning("webhook: NOTIFY_WEBHOOK_SIGNING_SECRET is empty; signatures are useless")
        timeout = aiohttp.ClientTimeout(total=self._timeout)
        self._session = aiohttp.ClientSession(
            timeout=timeout, headers={"User-Agent": "notify-webhook/1"}
        )

    async def stop(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    async def send(self, message: OutboundMessage) -> SendResult:
        name = self.name
        url = _check_url(message.address, name)
        if self._session is None:
            raise not_started(name)
        body = self.payload(message)
        timestamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            TIMESTAMP_HEADER: timestamp,
            SIGNATURE_HEADER: sign(self._secret, timestamp, body),
            DELIVERY_HEADER: message.delivery_id,
        }
        try:
            # No redirects: following one would re-send the signed body to a host the
            # subscriber did not register.
            async with self._session.post(
                url, data=body, headers=headers, allow_redirects=False
            ) as response:
                if 200 <= response.status < 300:
                    return SendResult(name, response.headers.get("X-Request-Id"))
                detail = (await response.content.read(512)).decode(errors="replace")
                raise classify_status(
                    response.status, response.headers.get("Retry-After"), detail, name
                )
        except TimeoutError as exc:
            raise TransientError(name, "timeout", str(url)) from exc
        except aiohttp.InvalidURL as exc:
            raise InvalidRecipientError(name, "invalid_url", str(exc)) from exc
        except aiohttp.ClientError as exc:
            raise TransientError(name, "connection", f"{type(exc).__name__}: {exc}") from exc


class CallbackProvider(WebhookProvider):
    """Status callbacks to callers (agents/callbacks.py): the same signed POST, whose body is
    the status document the status agent wrote (the delivery's ``body``), and whose
    ``X-Notify-Delivery-ID`` is the callback's own id, stable across retries and re-reads, for
    the caller to deduplicate. A client of its own (its own connection pool and timeout), so
    callers' endpoints share nothing with the users' webhooks."""

    name = ProviderName.CALLBACK

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self._timeout = settings.callback_timeout_seconds

    def payload(self, message: OutboundMessage) -> bytes:
        return message.body.encode()
