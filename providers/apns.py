"""Apple Push Notification service over HTTP/2 with token (JWT, .p8 key) authentication.

aioapns does the protocol work (connection pool, h2 streams, JWT refresh every 30 minutes);
this module maps an ``OutboundMessage`` to an APNs request and Apple's answers to the error
vocabulary of ``providers.base``.
"""

from __future__ import annotations

import asyncio
import ssl
import uuid
from collections.abc import Callable
from typing import Any

from aioapns import APNs, NotificationRequest, PushType
from aioapns.common import NotificationResult
from aioapns.connection import APNsProductionClientProtocol
from aioapns.exceptions import ConnectionClosed, MaxAttemptsExceeded
from aioapns.exceptions import ConnectionError as ApnsConnectionError
from msgspec import UNSET

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

NAME = ProviderName.APNS

# Apple reasons that mean our side is misconfigured (key, team, topic), not the device.
_CONFIG_REASONS = frozenset(
    {
        "DeviceTokenNotForTopic",
        "TopicDisallowed",
        "BadTopic",
        "MissingTopic",
        "InvalidProviderToken",
        "ExpiredProviderToken",
        "MissingProviderToken",
        "BadCertificate",
        "BadCertificateEnvironment",
        "Forbidden",
    }
)
_DEAD_TOKEN_REASONS = frozenset({"BadDeviceToken", "Unregistered", "ExpiredToken"})
# aioapns sleeps 1 s between connection attempts; the pipeline retries too, so keep it short.
_MAX_CONNECTION_ATTEMPTS = 3


def classify(status: str, reason: str | None) -> ProviderError:
    """Translate an APNs ``(:status, reason)`` pair into the base error vocabulary."""
    code = f"{status} {reason or ''}".strip()
    if reason in _DEAD_TOKEN_REASONS:
        return InvalidRecipientError(NAME, code)
    if reason in _CONFIG_REASONS:
        return ConfigurationError(NAME, code)
    if status == "429":
        # Apple sends no Retry-After: it throttles pushes to one device token.
        return ThrottledError(NAME, code)
    if status.startswith("5"):
        return TransientError(NAME, code)
    return PermanentError(NAME, code)


class ApnsProvider:
    """``Provider`` for APNs. ``ApnsProvider(settings)``; ``await start()`` inside the loop."""

    name = NAME

    def __init__(self, settings: Settings | None = None) -> None:
        self._settings = settings or get_settings()
        self._client: APNs | None = None
        # Sends that timed out keep running shielded until aioapns resolves them (see send()).
        self._orphans: set[asyncio.Task[NotificationResult]] = set()

    async def start(self) -> None:
        s = self._settings
        if s.apns_key_file is None or not s.apns_key_id or not s.apns_team_id:
            raise ConfigurationError(
                NAME,
                "missing_credentials",
                "apns_key_file, apns_key_id and apns_team_id are required",
            )
        try:
            key = s.apns_key_file.read_text()
        except OSError as exc:
            raise ConfigurationError(NAME, "unreadable_key", str(exc)) from exc
        # aioapns uses whatever SSLContext it is given; ours trusts apns_ca_file (the sandbox
        # CA) when set, else the system store, and offers ALPN "h2" as Apple expects.
        tls = ssl.create_default_context(cafile=str(s.apns_ca_file) if s.apns_ca_file else None)
        tls.set_alpn_protocols(["h2"])
        # APNs() must be built inside the running loop: its pool captures get_event_loop().
        client = APNs(
            key=key,
            key_id=s.apns_key_id,
            team_id=s.apns_team_id,
            topic=s.apns_topic,
            ssl_context=tls,
            max_connection_attempts=_MAX_CONNECTION_ATTEMPTS,
            err_func=_ignore_error,  # we classify failures ourselves; aioapns would just log them
        )
        # aioapns 4.0 has no host/port argument: the pool dials
        # ``pool.protocol_class.APNS_SERVER`` / ``.APNS_PORT`` (class attributes chosen by
        # use_sandbox) and sends APNS_SERVER as the ``host`` header. Giving *this* pool a
        # subclass with our host and port is the narrowest override: no monkey-patching of
        # aioapns classes, nothing shared with other clients in the process, and TLS hostname
        # checking stays on (server_hostname defaults to the host we dial).
        client.pool.protocol_class = type(
            "ConfiguredApnsProtocol",
            (APNsProductionClientProtocol,),
            {"APNS_SERVER": s.apns_host, "APNS_PORT": s.apns_port},
        )
        self._client = client

    async def stop(self) -> None:
        for task in list(self._orphans):
            task.cancel()
        if self._orphans:
            await asyncio.gather(*self._orphans, return_exceptions=True)
        if self._client is not None:
            self._client.pool.close()
            self._client = None

    def _adopt(self, task: asyncio.Task[NotificationResult]) -> None:
        """Keep an abandoned send alive until aioapns resolves it; stop() cancels leftovers."""
        self._orphans.add(task)
        task.add_done_callback(_discard_orphan(self._orphans))

    def build_request(self, message: OutboundMessage) -> NotificationRequest:
        """The APNs request for one message (public so that it can be inspected in tests)."""
        payload: dict[str, Any] = {
            **message.data,
            "aps": aps_dictionary(message),
            # Custom keys beside "aps" reach the app; these let it report opens/receipts.
            "notification_id": message.notification_id,
            "delivery_id": message.delivery_id,
        }
        return NotificationRequest(
            device_token=message.address,
            message=payload,
            # A fresh apns-id per attempt, never one derived from the delivery: aioapns keys
            # in-flight requests by apns-id, so a retry overlapping a timed-out attempt with
            # the same id would orphan that attempt's future. The payload carries delivery_id.
            notification_id=str(uuid.uuid4()),
            time_to_live=message.ttl_seconds,  # aioapns turns it into apns-expiration = now + ttl
            priority=10 if message.priority == Priority.HIGH else 5,
            collapse_key=message.collapse_key,
            push_type=PushType.ALERT,
            apns_topic=self._settings.apns_topic,
        )

    async def send(self, message: OutboundMessage) -> SendResult:
        if self._client is None:
            raise not_started(NAME)
        request = self.build_request(message)
        # Shielded: cancelling aioapns mid-request leaves a cancelled future in its table, and
        # the late reply then raises InvalidStateError inside data_received, which tears down
        # the whole connection (and makes aioapns resend everything in flight on it).
        task = asyncio.ensure_future(self._client.send_notification(request))
        try:
            result = await asyncio.wait_for(
                asyncio.shield(task), self._settings.provider_timeout_seconds
            )
        except asyncio.CancelledError:
            self._adopt(task)
            raise
        except TimeoutError as exc:
            self._adopt(task)
            timeout = self._settings.provider_timeout_seconds
            raise TransientError(NAME, "timeout", f"no answer in {timeout}s") from exc
        except (MaxAttemptsExceeded, ConnectionClosed, ApnsConnectionError, OSError) as exc:
            raise TransientError(NAME, "connection", repr(exc)) from exc
        if result.is_successful:
            return SendResult(provider=NAME, provider_message_id=result.notification_id)
        raise classify(result.status, result.description)


DoneCallback = Callable[["asyncio.Task[NotificationResult]"], None]


async def _ignore_error(request: NotificationRequest, result: NotificationResult) -> None:
    return None


def _discard_orphan(tasks: set[asyncio.Task[NotificationResult]]) -> DoneCallback:
    def done(task: asyncio.Task[NotificationResult]) -> None:
        tasks.discard(task)
        if not task.cancelled():
            task.exception()  # retrieved, so asyncio does not log "never retrieved"

    return done


def aps_dictionary(message: OutboundMessage) -> dict[str, Any]:
    """Apple's ``aps`` from the request's push options: sound, badge, mutable-content (lets a
    notification service extension attach the image), content-available (wakes the app)."""
    push = message.push
    aps: dict[str, Any] = {
        "alert": {"title": message.title, "body": message.body},
        "sound": "default" if push.sound is UNSET else push.sound,
    }
    if push.badge is not UNSET:
        aps["badge"] = push.badge
    if push.mutable_content or push.image is not UNSET:
        aps["mutable-content"] = 1
    if push.content_available:
        aps["content-available"] = 1
    return aps
