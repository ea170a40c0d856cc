"""SMS through the Twilio-compatible Messages REST API (aiohttp, HTTP Basic auth).

``segment_count`` is the carrier billing unit: a long text travels as several concatenated
segments, each paid for, so it is worth knowing before and after sending.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Mapping
from urllib.parse import quote, urlencode

import aiohttp
from pydantic import SecretStr

from config.settings import Settings
from providers.base import (
    ConfigurationError,
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

NAME = ProviderName.SMS
API_VERSION = "2010-04-01"

# GSM 03.38 default alphabet (without the escape character itself) ...
GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
# ... and its extension table, whose characters cost two septets (ESC + char).
GSM7_EXTENDED = frozenset("\f^{}\\[~]|€")
# Twilio error codes meaning "this number can never receive an SMS from you".
INVALID_NUMBER_CODES = frozenset({21211, 21217, 21614})


def segment_count(text: str) -> int:
    """How many SMS segments ``text`` is sent as (0 for an empty text).

    GSM-7 when every character is in the GSM alphabet: 160 septets fit in one message,
    153 per part once concatenated (the UDH takes the rest). Otherwise UCS-2: 70 UTF-16 code
    units, 67 per part. A two-unit character (GSM escape pair, UTF-16 surrogate pair) is
    never split across parts, so parts are filled greedily rather than by division.
    """
    if not text:
        return 0
    if all(ch in GSM7_BASIC or ch in GSM7_EXTENDED for ch in text):
        costs = [2 if ch in GSM7_EXTENDED else 1 for ch in text]
        single, part = 160, 153
    else:
        costs = [2 if ord(ch) > 0xFFFF else 1 for ch in text]
        single, part = 70, 67
    if sum(costs) <= single:
        return 1
    segments, used = 1, 0
    for cost in costs:
        if used + cost > part:
            segments, used = segments + 1, 0
        used += cost
    return segments


def sms_text(message: OutboundMessage) -> str:
    """What the handset shows: ``"title: body"``, or the body alone without a title."""
    return f"{message.title}: {message.body}" if message.title else message.body


def status_callback(base: str, message: OutboundMessage) -> str:
    """The StatusCallback URL: Twilio's status reports carry our ids back in the query."""
    query = urlencode(
        {"notification_id": message.notification_id, "delivery_id": message.delivery_id}
    )
    return f"{base}{'&' if '?' in base else '?'}{query}"


def classify_response(
    status: int, error: Mapping[str, object], retry_after: str | None
) -> ProviderError:
    """The provider error for a non-2xx Twilio answer (``error`` is its JSON body)."""
    twilio_code = error.get("code")
    code = f"twilio_{twilio_code}" if twilio_code is not None else f"http_{status}"
    detail = f"{status} {error.get('message') or ''}".strip()
    if status == 429:
        return ThrottledError(NAME, code, detail, retry_after=parse_retry_after(retry_after))
    if status >= 500:
        return TransientError(NAME, code, detail)
    if status in (401, 403, 404):  # credentials or account sid: our side is wrong
        return ConfigurationError(NAME, code, detail)
    if twilio_code in INVALID_NUMBER_CODES:
        return InvalidRecipientError(NAME, code, detail)
    return PermanentError(NAME, code, detail)


def _decode(raw: bytes) -> dict[str, object]:
    try:
        document = json.loads(raw)
    except ValueError:
        return {}
    return document if isinstance(document, dict) else {}


def _basic_auth(login: str, password: SecretStr) -> str:
    # Built by hand: aiohttp 3.14 deprecates BasicAuth/auth=, older ones lack its successor.
    token = base64.b64encode(f"{login}:{password.get_secret_value()}".encode()).decode()
    return f"Basic {token}"


class SmsProvider:
    """Sends through ``settings.sms_base_url``; ``start()`` before use, ``stop()`` after."""

    name = NAME

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        s = self._settings
        self._session = aiohttp.ClientSession(
            headers={"Authorization": _basic_auth(s.sms_account_sid, s.sms_auth_token)},
            timeout=aiohttp.ClientTimeout(total=s.provider_timeout_seconds),
        )

    async def stop(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    async def send(self, message: OutboundMessage) -> SendResult:
        s = self._settings
        if self._session is None:
            raise not_started(NAME)
        if not s.sms_account_sid:
            raise ConfigurationError(NAME, "no_account_sid", "NOTIFY_SMS_ACCOUNT_SID is empty")
        url = (
            f"{s.sms_base_url.rstrip('/')}/{API_VERSION}/Accounts/"
            f"{quote(s.sms_account_sid, safe='')}/Messages.json"
        )
        form = {"To": message.address, "From": s.sms_from_number, "Body": sms_text(message)}
        if s.sms_status_callback_url:
            form["StatusCallback"] = status_callback(s.sms_status_callback_url, message)
        try:
            async with self._session.post(url, data=form) as response:
                if 200 <= response.status < 300:
                    return SendResult(
                        NAME,
                        await self._message_sid(response),
                        segments=segment_count(form["Body"]),
                    )
                document = _decode(await response.read())
                raise classify_response(
                    response.status, document, response.headers.get("Retry-After")
                )
        except TimeoutError as exc:
            raise TransientError(NAME, "timeout", url) from exc
        except aiohttp.InvalidURL as exc:
            raise ConfigurationError(NAME, "invalid_url", str(exc)) from exc
        except aiohttp.ClientError as exc:
            raise TransientError(NAME, "connection", f"{type(exc).__name__}: {exc}") from exc

    @staticmethod
    async def _message_sid(response: aiohttp.ClientResponse) -> str | None:
        # The SMS is accepted at this point: an unreadable body must not turn into an error,
        # since a retry would text the user twice.
        try:
            sid = _decode(await response.read()).get("sid")
        except (aiohttp.ClientError, TimeoutError):
            log.warning("sms: accepted (%s) but the response body was unreadable", response.status)
            return None
        return sid if isinstance(sid, str) else None
