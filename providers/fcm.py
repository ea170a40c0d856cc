"""Firebase Cloud Messaging (HTTP v1) through firebase-admin's async path (send_each_async).

Each provider owns a named firebase_admin App so that several can live in one process (one per
worker, per test, per project) and be torn down independently.
"""

from __future__ import annotations

import asyncio
import email.utils
import time
import uuid
import warnings
from collections.abc import Sequence
from typing import Any

import firebase_admin
import httpx
from firebase_admin import credentials, exceptions, messaging
from google.auth import exceptions as auth_exceptions
from google.auth.transport import requests as google_requests

from config.settings import Settings, get_settings
from providers.base import (
    ConfigurationError,
    InvalidRecipientError,
    OutboundMessage,
    PermanentError,
    ProviderError,
    SendResult,
    ThrottledError,
    TransientError,
)
from providers.coalesce import Coalescer

BATCH_LIMIT = 500  # send_each_async refuses more
_FCM_ERROR_TYPE = "type.googleapis.com/google.firebase.fcm.v1.FcmError"
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


def _response_of(error: exceptions.FirebaseError) -> httpx.Response | None:
    # FCM-specific errors built on the httpx path carry the response only on their cause.
    response = error.http_response
    if response is None and isinstance(error.cause, httpx.HTTPStatusError):
        response = error.cause.response
    return response if isinstance(response, httpx.Response) else None


def _retry_after(response: httpx.Response | None) -> float | None:
    value = response.headers.get("Retry-After") if response is not None else None
    if not value:
        return None
    if value.strip().isdigit():
        return float(value)
    try:
        return max(0.0, email.utils.parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def classify(error: exceptions.FirebaseError) -> ProviderError:
    """Translate a firebase-admin error into the base vocabulary, by FCM's errorCode first."""
    response = _response_of(error)
    body: dict[str, Any] = {}
    if response is not None:
        try:
            parsed = response.json()
            body = parsed.get("error", {}) if isinstance(parsed, dict) else {}
        except ValueError:
            pass
    details = body.get("details", []) if isinstance(body.get("details"), list) else []
    fcm_code = next(
        (
            d.get("errorCode")
            for d in details
            if isinstance(d, dict) and d.get("@type") == _FCM_ERROR_TYPE
        ),
        None,
    )
    code = fcm_code or error.code or "UNKNOWN"
    text = str(body.get("message") or error)
    if code == "UNREGISTERED":
        return InvalidRecipientError("fcm", code, text)
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
        return cls("fcm", code, text)
    if code in ("QUOTA_EXCEEDED", "RESOURCE_EXHAUSTED"):
        return ThrottledError("fcm", code, text, retry_after=_retry_after(response))
    if code in _CONFIG_CODES:
        return ConfigurationError("fcm", code, text)
    if code in _TRANSIENT_CODES:
        return TransientError("fcm", code, text)
    return PermanentError("fcm", code, text)


class FcmProvider:
    """``Provider`` for FCM. ``FcmProvider(settings)``; ``await start()`` inside the loop."""

    name = "fcm"

    def __init__(self, settings: Settings | None = None) -> None:
        self._settings = settings or get_settings()
        self.app_name = f"notify-fcm-{uuid.uuid4().hex}"
        self._app: firebase_admin.App | None = None
        self._service: Any = None
        self._auth_request: google_requests.Request | None = None
        self._token_lock = asyncio.Lock()
        self.coalescer: Coalescer[OutboundMessage, SendResult] = Coalescer(self.send_many)

    async def start(self) -> None:
        s = self._settings
        if s.fcm_credentials_file is None:
            raise ConfigurationError("fcm", "missing_credentials", "fcm_credentials_file is unset")
        try:
            cred = credentials.Certificate(str(s.fcm_credentials_file))
        except (OSError, ValueError) as exc:
            raise ConfigurationError("fcm", "bad_credentials", str(exc)) from exc
        options: dict[str, Any] = {"httpTimeout": s.provider_timeout_seconds}
        if s.fcm_project_id:
            options["projectId"] = s.fcm_project_id
        app = firebase_admin.initialize_app(cred, options, name=self.app_name)
        try:
            # Build the messaging service now, inside the running loop, so that its httpx
            # client belongs to it and so that we can point it at fcm_endpoint.
            service = messaging._get_messaging_service(app)
        except ValueError as exc:  # no project id anywhere
            firebase_admin.delete_app(app)
            raise ConfigurationError("fcm", "no_project", str(exc)) from exc
        # firebase-admin 7 has no emulator variable for messaging (only auth, database and
        # cloud tasks have one): the URL is the class constant _MessagingService.FCM_URL, copied
        # per app into ``_fcm_url`` when the service is built. Overwriting that copy points this
        # App alone at fcm_endpoint; other Apps and the class stay untouched. The OAuth token
        # URI needs nothing: google-auth takes it from the service-account file's token_uri.
        endpoint = s.fcm_endpoint.rstrip("/")
        service._fcm_url = f"{endpoint}/v1/projects/{service._project_id}/messages:send"
        self._app, self._service = app, service
        self._auth_request = google_requests.Request()

    async def stop(self) -> None:
        if self._app is None:
            return
        app, service, self._app, self._service = self._app, self._service, None, None
        # delete_app() closes the service with asyncio.run(aclose()), which fails inside a
        # running loop; so close the httpx client here, then delete from a worker thread where
        # asyncio.run() works (its aclose() is then a no-op on the closed client).
        await service._async_client.aclose()
        await asyncio.to_thread(firebase_admin.delete_app, app)
        if self._auth_request is not None:
            self._auth_request.session.close()
            self._auth_request = None

    def build_message(self, message: OutboundMessage) -> messaging.Message:
        """The FCM v1 message for one delivery (public so that it can be inspected in tests)."""
        high = message.priority == "high"
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
                    title=message.title, body=message.body, image=message.push.get("image")
                ),
                data=data,
                android=messaging.AndroidConfig(
                    priority="high" if high else "normal",
                    ttl=message.ttl_seconds,
                    collapse_key=message.collapse_key,
                    notification=messaging.AndroidNotification(sound=message.push.get("sound")),
                ),
                # FCM relays to APNs for iOS tokens: same priority, collapse id, expiry and aps.
                apns=messaging.APNSConfig(
                    headers=apns_headers,
                    payload=messaging.APNSPayload(
                        aps=messaging.Aps(
                            badge=message.push.get("badge"),
                            sound=message.push.get("sound", "default"),
                            mutable_content=bool(message.push.get("mutable_content")) or None,
                            content_available=bool(message.push.get("content_available")) or None,
                        )
                    ),
                ),
            )

    async def send(self, message: OutboundMessage) -> SendResult:
        """One delivery; concurrent sends share a ``send_each_async`` batch (providers.coalesce)."""
        return await self.coalescer.submit(message)

    async def send_many(
        self, messages: Sequence[OutboundMessage]
    ) -> list[SendResult | ProviderError]:
        """Send each message (in batches of 500); one result or classified error per message."""
        if self._app is None:
            raise ConfigurationError("fcm", "not_started")
        results: list[SendResult | ProviderError | None] = [None] * len(messages)
        pending: list[tuple[int, messaging.Message]] = []
        for i, outbound in enumerate(messages):
            fcm_message = self.build_message(outbound)
            try:
                # send_each_async encodes the whole batch up front and a single bad message
                # would fail all of them; encoding each first isolates the culprit.
                messaging._MessagingService.encode_message(fcm_message)
            except ValueError as exc:
                results[i] = PermanentError("fcm", "invalid_message", str(exc))
                continue
            pending.append((i, fcm_message))
        for start in range(0, len(pending), BATCH_LIMIT):
            chunk = pending[start : start + BATCH_LIMIT]
            sent = await self._send_batch([m for _, m in chunk])
            for (i, _), result in zip(chunk, sent, strict=True):
                results[i] = result
        return [r for r in results if r is not None]

    async def _send_batch(self, batch: list[messaging.Message]) -> list[SendResult | ProviderError]:
        try:
            await self._ensure_token()
            response = await messaging.send_each_async(batch, dry_run=False, app=self._app)
        except ProviderError as exc:
            return [exc] * len(batch)
        except exceptions.FirebaseError as exc:  # the batch as a whole failed
            return [classify(exc)] * len(batch)
        return [
            SendResult(provider="fcm", provider_message_id=r.message_id)
            if r.success
            else classify(r.exception)
            if isinstance(r.exception, exceptions.FirebaseError)
            else TransientError("fcm", "UNKNOWN", repr(r.exception))
            for r in response.responses
        ]

    async def _ensure_token(self) -> None:
        """Fetch the OAuth token in a worker thread before firebase-admin needs it.

        firebase-admin's async client lets google-auth refresh the token with a blocking
        ``requests`` call on the event loop; doing it here first keeps the loop free (the
        token lasts an hour, google-auth refreshes 3m45s early, and so do we: same ``valid``).
        """
        credential = self._app.credential.get_credential() if self._app else None
        if credential is None or credential.valid:
            return
        async with self._token_lock:
            if credential.valid:
                return
            try:
                await asyncio.to_thread(credential.refresh, self._auth_request)
            except auth_exceptions.RefreshError as exc:
                if getattr(exc, "retryable", False):
                    raise TransientError("fcm", "token_refresh", str(exc)) from exc
                raise ConfigurationError("fcm", "token_refresh", str(exc)) from exc
            except auth_exceptions.TransportError as exc:
                raise TransientError("fcm", "token_transport", str(exc)) from exc
