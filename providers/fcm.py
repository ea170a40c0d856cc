"""Firebase Cloud Messaging (HTTP v1): firebase-admin builds, validates and encodes each message
and holds the service-account credential; the POST itself goes out over aiohttp.

Why not ``messaging.send_each_async``: firebase-admin's async path is httpx (behind its own
retry transport and auth flow), which cost 1,512 µs of client CPU per send here against 159 µs
for an aiohttp POST of the same size (``bench.provider_cost``), and was the largest single
provider cost in the pipeline's profile. Its built-in retries (four, with backoff, inside the
send) also held a lane's slot for seconds; here a 5xx or a dropped connection fails at once and
the pipeline's retry tiers schedule the next attempt without blocking anything.
"""

from __future__ import annotations

import asyncio
import json
import time
import warnings
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

import aiohttp
import firebase_admin
from firebase_admin import credentials, messaging
from google.auth import exceptions as auth_exceptions
from google.auth.transport import requests as google_requests
from msgspec import UNSET, UnsetType

from config.settings import Settings, get_settings
from config.vocabulary import Priority
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

NAME = ProviderName.FCM
T = TypeVar("T")
BATCH_LIMIT = 500  # what firebase-admin's send_each takes per call
_FCM_ERROR_TYPE = "type.googleapis.com/google.firebase.fcm.v1.FcmError"
# google.rpc canonical codes by HTTP status, for an error body without one (a proxy's page).
_STATUS_CODES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ABORTED",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
_CONFIG_CODES = frozenset(
    {
        "SENDER_ID_MISMATCH",
        "THIRD_PARTY_AUTH_ERROR",
        "APNS_AUTH_ERROR",
        "UNAUTHENTICATED",
        "PERMISSION_DENIED",
    }
)
_TRANSIENT_CODES = frozenset(
    {"UNAVAILABLE", "INTERNAL", "DEADLINE_EXCEEDED", "UNKNOWN", "ABORTED", "CANCELLED"}
)


def _json_object(raw: bytes) -> dict[str, Any]:
    """A response body as a JSON object; {} for anything else (a proxy's HTML page)."""
    try:
        parsed = json.loads(raw)
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def _error_body(raw: bytes) -> dict[str, Any]:
    error = _json_object(raw).get("error")
    return error if isinstance(error, dict) else {}


def _message_name(raw: bytes) -> str | None:
    """``projects/<p>/messages/<id>`` from a success body; None if FCM said something else."""
    name = _json_object(raw).get("name")
    return name if isinstance(name, str) else None


def _or_none(value: T | UnsetType) -> T | None:
    """A push option for firebase-admin, which takes None for "not set"."""
    return None if value is UNSET else value


def classify(status: int, raw_body: bytes, retry_after: str | None = None) -> ProviderError:
    """An FCM error response in the base vocabulary: by FCM's ``errorCode`` first, then the
    google.rpc status, then the HTTP status."""
    body = _error_body(raw_body)
    details = body.get("details", []) if isinstance(body.get("details"), list) else []
    fcm_code = next(
        (
            d.get("errorCode")
            for d in details
            if isinstance(d, dict) and d.get("@type") == _FCM_ERROR_TYPE
        ),
        None,
    )
    code = str(fcm_code or body.get("status") or _STATUS_CODES.get(status, "UNKNOWN"))
    text = str(body.get("message") or f"HTTP {status}")
    if code == "UNREGISTERED":
        return InvalidRecipientError(NAME, code, text)
    if code == "INVALID_ARGUMENT":
        # Only a bad token condemns the address; any other invalid argument is our payload.
        about_token = "registration token" in text.lower() or any(
            v.get("field") == "message.token"
            for d in details
            if isinstance(d, dict)
            for v in d.get("fieldViolations", [])
            if isinstance(v, dict)
        )
        cls = InvalidRecipientError if about_token else PermanentError
        return cls(NAME, code, text)
    if code in ("QUOTA_EXCEEDED", "RESOURCE_EXHAUSTED"):
        return ThrottledError(NAME, code, text, retry_after=parse_retry_after(retry_after))
    if code in _CONFIG_CODES:
        return ConfigurationError(NAME, code, text)
    if code in _TRANSIENT_CODES or status >= 500:
        return TransientError(NAME, code, text)
    return PermanentError(NAME, code, text)


class FcmProvider:
    """``Provider`` for FCM. ``FcmProvider(settings)``; ``await start()`` inside the loop."""

    name = NAME

    def __init__(self, settings: Settings | None = None) -> None:
        self._settings = settings or get_settings()
        self._credential: Any = None  # google-auth service-account credentials
        self._auth_request: google_requests.Request | None = None
        self._session: aiohttp.ClientSession | None = None
        self._url = ""
        self._token_lock = asyncio.Lock()
        self._headers = {
            "Content-Type": "application/json; charset=UTF-8",
            "X-GOOG-API-FORMAT-VERSION": "2",
            "X-FIREBASE-CLIENT": f"fire-admin-python/{firebase_admin.__version__}",
        }

    async def start(self) -> None:
        s = self._settings
        if s.fcm_credentials_file is None:
            raise ConfigurationError(NAME, "missing_credentials", "fcm_credentials_file is unset")
        try:
            certificate = credentials.Certificate(str(s.fcm_credentials_file))
        except (OSError, ValueError) as exc:
            raise ConfigurationError(NAME, "bad_credentials", str(exc)) from exc
        project = s.fcm_project_id or certificate.project_id
        if not project:
            raise ConfigurationError(NAME, "no_project", "no fcm_project_id and none in the key")
        # firebase-admin's scopes; the token URI comes from the key file (the sandbox's own).
        self._credential = certificate.get_credential()
        self._auth_request = google_requests.Request()
        self._url = f"{s.fcm_endpoint.rstrip('/')}/v1/projects/{project}/messages:send"
        timeout = aiohttp.ClientTimeout(total=s.provider_timeout_seconds)
        self._session = aiohttp.ClientSession(timeout=timeout, headers=self._headers)

    async def stop(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()
        if self._auth_request is not None:
            self._auth_request.session.close()
            self._auth_request = None

    def build_message(self, message: OutboundMessage) -> messaging.Message:
        """The FCM v1 message for one delivery (public so that it can be inspected in tests)."""
        high = message.priority == Priority.HIGH
        push = message.push
        data = {str(k): str(v) for k, v in message.data.items()}
        data["notification_id"] = message.notification_id
        data["delivery_id"] = message.delivery_id
        apns_headers = {"apns-priority": "10" if high else "5"}
        if message.collapse_key:
            apns_headers["apns-collapse-id"] = message.collapse_key
        if message.ttl_seconds is not None:
            apns_headers["apns-expiration"] = str(int(time.time()) + message.ttl_seconds)
        with warnings.catch_warnings():
            # firebase-admin >= 7.5 deprecates Message.token in favour of Message.fid (Firebase
            # Installation IDs). Our addresses are registration tokens, which FCM v1 still takes
            # as ``token``; moving to FIDs needs the apps to register FIDs first.
            warnings.filterwarnings("ignore", "Message.token is deprecated", DeprecationWarning)
            return messaging.Message(
                token=message.address,
                notification=messaging.Notification(
                    title=message.title, body=message.body, image=_or_none(push.image)
                ),
                data=data,
                android=messaging.AndroidConfig(
                    priority="high" if high else "normal",
                    ttl=message.ttl_seconds,
                    collapse_key=message.collapse_key,
                    notification=messaging.AndroidNotification(sound=_or_none(push.sound)),
                ),
                # FCM relays to APNs for iOS tokens: same priority, collapse id, expiry and aps.
                apns=messaging.APNSConfig(
                    headers=apns_headers,
                    payload=messaging.APNSPayload(
                        aps=messaging.Aps(
                            badge=_or_none(push.badge),
                            sound="default" if push.sound is UNSET else push.sound,
                            mutable_content=bool(push.mutable_content) or None,
                            content_available=bool(push.content_available) or None,
                        )
                    ),
                ),
            )

    async def send(self, message: OutboundMessage) -> SendResult:
        """One delivery: encode (firebase-admin), POST, classify the answer."""
        if self._session is None:
            raise not_started(NAME)
        try:
            # The v1 JSON, sent without firebase-admin's blocking HTTP client (pinned:
            # patches/private_api.py).
            encoded = messaging._MessagingService.encode_message(  # noqa: SLF001
                self.build_message(message)
            )
        except ValueError as exc:  # firebase-admin's own field validation
            raise PermanentError(NAME, "invalid_message", str(exc)) from exc
        body = json.dumps({"message": encoded}, separators=(",", ":")).encode()
        token = await self._token()
        status, raw, headers = await self._post(body, token)
        if status == 401:
            # The token was revoked or expired early: one fresh token, one more try.
            token = await self._token(stale=token)
            status, raw, headers = await self._post(body, token)
        if status == 200:
            return SendResult(provider=NAME, provider_message_id=_message_name(raw))
        raise classify(status, raw, headers.get("Retry-After"))

    async def send_many(
        self, messages: Sequence[OutboundMessage]
    ) -> list[SendResult | ProviderError]:
        """Many messages (a notification's devices, a segment's tokens), ``BATCH_LIMIT`` in
        flight at a time like firebase-admin's ``send_each``; one result or classified error
        per message, in order. FCM v1 has no multi-message request: ``send_each`` too is one
        POST per message, so the lanes simply ``send()`` each delivery as it comes."""
        outcomes: list[SendResult | ProviderError] = []
        for start in range(0, len(messages), BATCH_LIMIT):
            chunk = messages[start : start + BATCH_LIMIT]
            sent = await asyncio.gather(*(self.send(m) for m in chunk), return_exceptions=True)
            for outcome in sent:
                if isinstance(outcome, BaseException) and not isinstance(outcome, ProviderError):
                    raise outcome
                outcomes.append(outcome)
        return outcomes

    async def _post(self, body: bytes, token: str) -> tuple[int, bytes, Mapping[str, str]]:
        if self._session is None:  # send() checked it; the stop may have come since
            raise ConfigurationError(NAME, "not_started")
        try:
            async with self._session.post(
                self._url, data=body, headers={"Authorization": f"Bearer {token}"}
            ) as response:
                return response.status, await response.read(), response.headers
        except TimeoutError as exc:
            raise TransientError(NAME, "DEADLINE_EXCEEDED", self._url) from exc
        except aiohttp.ClientError as exc:
            raise TransientError(NAME, "UNAVAILABLE", f"{type(exc).__name__}: {exc}") from exc

    async def _token(self, stale: str | None = None) -> str:
        """A valid OAuth access token; refreshed in a worker thread (google-auth's refresh is a
        blocking ``requests`` call) when it is missing, about to expire (google-auth's
        ``valid`` allows 3m45s) or the one FCM just refused (``stale``)."""
        credential = self._credential
        if credential.valid and credential.token != stale:
            return str(credential.token)
        async with self._token_lock:
            if credential.valid and credential.token != stale:  # another send refreshed it
                return str(credential.token)
            try:
                await asyncio.to_thread(credential.refresh, self._auth_request)
            except auth_exceptions.RefreshError as exc:
                if getattr(exc, "retryable", False):
                    raise TransientError(NAME, "token_refresh", str(exc)) from exc
                raise ConfigurationError(NAME, "token_refresh", str(exc)) from exc
            except auth_exceptions.TransportError as exc:
                raise TransientError(NAME, "token_transport", str(exc)) from exc
        return str(credential.token)
