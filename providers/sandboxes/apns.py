"""A local stand-in for Apple's push gateway: HTTP/2 over TLS, token (JWT) auth, Apple's replies.

It speaks the real protocol so that ``ApnsProvider`` runs aioapns unmodified against it: the
only difference from production is the host, the port and the CA that signed the server
certificate. Everything it needs (CA, server certificate, the .p8 signing key) is generated
fresh into a directory (``apns_material.py``) so that no secret ever lives in the repository.
"""

from __future__ import annotations

import asyncio
import json
import re
import ssl
import time
import uuid
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec
from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.events import ConnectionTerminated, DataReceived, RequestReceived, StreamEnded
from h2.exceptions import ProtocolError

from providers.sandboxes.apns_material import ApnsMaterial, generate_apns_material
from providers.sandboxes.faults import FaultInjectable, FaultPlan, integer, pair

__all__ = ["ApnsMaterial", "ApnsSandbox", "generate_apns_material"]

_TOKEN_RE = re.compile(r"[0-9a-fA-F]{64,}")
_PUSH_TYPES = frozenset(
    "alert background voip complication fileprovider mdm liveactivity location pushtotalk"
    " widgets controls".split()
)
_MAX_PAYLOAD = 4096  # Apple's limit for everything but VoIP
_TOKEN_MAX_AGE = 3600  # Apple rejects provider tokens older than an hour

ApnsFault = tuple[int, str]  # (HTTP status, Apple's reason), e.g. (410, "Unregistered")


class ApnsSandbox(FaultInjectable[ApnsFault]):
    """HTTP/2 + TLS server on 127.0.0.1 implementing ``POST /3/device/<token>`` like Apple.

    Faults (``plan``, see ``faults.py``) answer a device token with the ``(status, reason)``
    Apple would, e.g. ``(410, "Unregistered")`` or ``(429, "TooManyRequests")`` (Apple sends
    no Retry-After). ``delays`` and ``latency_seconds`` hold a response back. Accepted pushes
    land in ``received``; refused ones in ``rejected`` (same shape plus ``status``/``reason``).
    """

    def __init__(
        self, directory: Path, *, topic: str = "com.example.notify", port: int = 0
    ) -> None:
        self.directory = Path(directory)
        self.topic = topic
        self.host = "127.0.0.1"
        self.port = port
        self.plan: FaultPlan[ApnsFault] = FaultPlan(pair(integer, str))
        self.received: list[dict[str, Any]] = []
        self.rejected: list[dict[str, Any]] = []
        self.material: ApnsMaterial | None = None
        self._public_key: ec.EllipticCurvePublicKey | None = None
        self._server: asyncio.Server | None = None
        self.transports: set[asyncio.Transport] = set()

    async def start(self) -> None:
        self.material, signing_key = generate_apns_material(self.directory)
        self._public_key = signing_key.public_key()
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(self.material.cert_file, self.material.cert_key_file)
        tls.set_alpn_protocols(["h2"])
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _H2ServerProtocol(self), self.host, self.port, ssl=tls
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is None:
            return
        self._server.close()
        self.plan.release()
        # Server.close() leaves accepted connections open; a client must see them drop.
        for transport in list(self.transports):
            transport.close()
        await self._server.wait_closed()
        self._server = None

    def settings_overrides(self) -> dict[str, object]:
        """The ``Settings`` fields an ``ApnsProvider`` needs to talk to this sandbox."""
        assert self.material is not None, "start() the sandbox first"
        return {
            "apns_host": self.host,
            "apns_port": self.port,
            "apns_ca_file": self.material.ca_file,
            "apns_key_file": self.material.key_file,
            "apns_key_id": self.material.key_id,
            "apns_team_id": self.material.team_id,
            "apns_topic": self.topic,
        }

    def _check_auth(self, header: str | None) -> str | None:
        """Return Apple's 403 reason for a bad provider token, or None when it is good."""
        if not header:
            return "MissingProviderToken"
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            return "InvalidProviderToken"
        assert self.material is not None and self._public_key is not None
        try:
            if jwt.get_unverified_header(token).get("kid") != self.material.key_id:
                return "InvalidProviderToken"
            claims = jwt.decode(
                token, self._public_key, algorithms=["ES256"], options={"require": ["iss", "iat"]}
            )
        except jwt.PyJWTError:
            return "InvalidProviderToken"
        if claims["iss"] != self.material.team_id:
            return "InvalidProviderToken"
        if claims["iat"] < time.time() - _TOKEN_MAX_AGE:
            return "ExpiredProviderToken"
        return None

    def handle(
        self, headers: dict[str, str], body: bytes, arrived: float | None = None
    ) -> tuple[int, str | None, str]:
        """Answer one request as Apple would: ``(status, reason or None, apns-id)``.

        ``arrived`` is when the request came in, if an injected delay held it back since.
        """
        apns_id = headers.get("apns-id") or str(uuid.uuid4())
        token = device_token_of(headers)
        try:
            payload = json.loads(body) if body else None
        except ValueError:
            payload = None
        status, reason = self._validate(headers, token, body, payload)
        custom: dict[str, Any] = payload if isinstance(payload, dict) else {}
        aps = custom.get("aps")
        alert = aps.get("alert", {}) if isinstance(aps, dict) else {}
        alert = alert if isinstance(alert, dict) else {"body": alert}  # a bare string is a body
        record: dict[str, Any] = {
            "sandbox": "apns",
            "address": token,
            "title": alert.get("title", ""),
            "body": alert.get("body", ""),
            "notification_id": custom.get("notification_id"),
            "delivery_id": custom.get("delivery_id"),
            "received_at": arrived or time.time(),
            "headers": {
                k: v for k, v in headers.items() if not k.startswith(":") and k != "authorization"
            },
            "payload": payload,
        }
        if status == 200:
            self.received.append(record)
        else:
            self.rejected.append({**record, "status": status, "reason": reason})
        return status, reason, apns_id

    def _validate(
        self, headers: dict[str, str], token: str, body: bytes, payload: Any
    ) -> tuple[int, str | None]:
        # Order follows Apple's: request shape, then auth, then headers, then payload, then token.
        if headers.get(":method") != "POST":
            return 405, "MethodNotAllowed"
        if not token:
            return 404, "BadPath"
        auth_error = self._check_auth(headers.get("authorization"))
        if auth_error:
            return 403, auth_error
        topic = headers.get("apns-topic")
        if not topic:
            return 400, "MissingTopic"
        if headers.get("apns-push-type", "alert") not in _PUSH_TYPES:
            return 400, "InvalidPushType"
        if headers.get("apns-priority", "10") not in {"1", "5", "10"}:
            return 400, "BadPriority"
        if len(headers.get("apns-collapse-id", "").encode()) > 64:
            return 400, "BadCollapseId"
        if "apns-expiration" in headers and not headers["apns-expiration"].isdigit():
            return 400, "BadExpirationDate"
        if len(body) > _MAX_PAYLOAD:
            return 413, "PayloadTooLarge"
        if not isinstance(payload, dict) or not payload:
            return 400, "PayloadEmpty"
        fault = self.plan.choose(token)
        if fault is not None:  # injected faults win over the token's own validity
            return fault
        if not _TOKEN_RE.fullmatch(token):
            return 400, "BadDeviceToken"
        if topic != self.topic:
            return 400, "DeviceTokenNotForTopic"
        return 200, None


def device_token_of(headers: dict[str, str]) -> str:
    path = headers.get(":path", "")
    return path.removeprefix("/3/device/") if path.startswith("/3/device/") else ""


class _H2ServerProtocol(asyncio.Protocol):
    """One client connection: h2 state machine in, Apple-style responses out."""

    def __init__(self, sandbox: ApnsSandbox) -> None:
        self._sandbox = sandbox
        self._conn = H2Connection(H2Configuration(client_side=False, header_encoding="utf-8"))
        self._transport: asyncio.Transport | None = None
        self._streams: dict[int, tuple[dict[str, str], bytearray]] = {}

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self._sandbox.transports.add(transport)
        # Apple advertises how many concurrent streams a connection may carry; aioapns obeys it.
        self._conn.local_settings.max_concurrent_streams = 1000
        self._conn.initiate_connection()
        transport.write(self._conn.data_to_send())

    def connection_lost(self, exc: Exception | None) -> None:
        if self._transport is not None:
            self._sandbox.transports.discard(self._transport)

    def data_received(self, data: bytes) -> None:
        assert self._transport is not None
        try:
            events = self._conn.receive_data(data)
        except ProtocolError:
            self._transport.write(self._conn.data_to_send())
            self._transport.close()
            return
        for event in events:
            if isinstance(event, RequestReceived):
                self._streams[event.stream_id] = (dict(event.headers), bytearray())  # type: ignore[arg-type]
            elif isinstance(event, DataReceived):
                self._streams[event.stream_id][1].extend(event.data)
                self._conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            elif isinstance(event, StreamEnded):
                headers, body = self._streams.pop(event.stream_id)
                delay = self._sandbox.plan.delay(device_token_of(headers))
                if delay > 0:  # answer later; other streams on the connection go on meanwhile
                    asyncio.get_running_loop().call_later(
                        delay, self._answer_late, event.stream_id, headers, bytes(body), time.time()
                    )
                else:
                    self._respond(event.stream_id, *self._sandbox.handle(headers, bytes(body)))
            elif isinstance(event, ConnectionTerminated):
                self._transport.close()
                return
        self._transport.write(self._conn.data_to_send())

    def _answer_late(
        self, stream_id: int, headers: dict[str, str], body: bytes, arrived: float
    ) -> None:
        if self._transport is None or self._transport.is_closing():
            return  # the sandbox stopped or the client left while the answer was held back
        try:
            self._respond(stream_id, *self._sandbox.handle(headers, body, arrived))
        except ProtocolError:  # e.g. StreamClosedError
            return  # the client gave up on (reset) this stream meanwhile
        self._transport.write(self._conn.data_to_send())

    def _respond(self, stream_id: int, status: int, reason: str | None, apns_id: str) -> None:
        headers = [(":status", str(status)), ("apns-id", apns_id)]
        if reason is None:
            self._conn.send_headers(stream_id, headers, end_stream=True)
            return
        error: dict[str, Any] = {"reason": reason}
        if status == 410:  # Apple says since when the token is no longer valid, in ms
            error["timestamp"] = int(time.time() * 1000)
        body = json.dumps(error).encode()
        self._conn.send_headers(
            stream_id,
            [*headers, ("content-type", "application/json"), ("content-length", str(len(body)))],
        )
        self._conn.send_data(stream_id, body, end_stream=True)
