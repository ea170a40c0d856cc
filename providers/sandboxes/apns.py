"""A local stand-in for Apple's push gateway: HTTP/2 over TLS, token (JWT) auth, Apple's replies.

It speaks the real protocol so that ``ApnsProvider`` runs aioapns unmodified against it: the
only difference from production is the host, the port and the CA that signed the server
certificate. Everything it needs (CA, server certificate, the .p8 signing key) is generated
fresh into a directory so that no secret ever lives in the repository.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import json
import re
import secrets
import ssl
import string
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.events import ConnectionTerminated, DataReceived, RequestReceived, StreamEnded
from h2.exceptions import ProtocolError

_TOKEN_RE = re.compile(r"[0-9a-fA-F]{64,}")
_PUSH_TYPES = frozenset(
    "alert background voip complication fileprovider mdm liveactivity location pushtotalk"
    " widgets controls".split()
)
_MAX_PAYLOAD = 4096  # Apple's limit for everything but VoIP
_TOKEN_MAX_AGE = 3600  # Apple rejects provider tokens older than an hour


@dataclass(frozen=True, slots=True)
class ApnsMaterial:
    """Files and identifiers a client needs to talk to the sandbox."""

    ca_file: Path
    cert_file: Path
    cert_key_file: Path
    key_file: Path  # the .p8 signing key, as Apple hands it out
    key_id: str
    team_id: str


def _apple_id() -> str:
    # Apple's key and team identifiers are 10 upper-case alphanumerics.
    return "".join(secrets.choice(string.ascii_uppercase + string.digits) for _ in range(10))


def _certificate(
    subject: x509.Name,
    issuer: x509.Name,
    public_key: ec.EllipticCurvePublicKey,
    issuer_key: ec.EllipticCurvePrivateKey,
    extensions: list[tuple[x509.ExtensionType, bool]],
) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=2))
    )
    for extension, critical in extensions:
        builder = builder.add_extension(extension, critical=critical)
    return builder.sign(issuer_key, hashes.SHA256())


def generate_apns_material(directory: Path) -> tuple[ApnsMaterial, ec.EllipticCurvePrivateKey]:
    """Write a CA, a 127.0.0.1/localhost server certificate and a P-256 .p8 key to ``directory``.

    Returns the paths and ids plus the signing key (the sandbox verifies JWTs with its public half).
    """
    directory.mkdir(parents=True, exist_ok=True)
    pem = serialization.Encoding.PEM
    pkcs8 = serialization.PrivateFormat.PKCS8
    plain = serialization.NoEncryption()

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "notify APNs sandbox CA")])
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    cert_sign = x509.KeyUsage(False, False, False, False, False, True, True, False, False)
    ca_cert = _certificate(
        ca_name,
        ca_name,
        ca_key.public_key(),
        ca_key,
        [(x509.BasicConstraints(ca=True, path_length=0), True), (cert_sign, True), (ca_ski, False)],
    )
    server_key = ec.generate_private_key(ec.SECP256R1())
    # Both names so that clients may dial either; Python checks IP SANs for IP hosts.
    names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    server_cert = _certificate(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]),
        ca_name,
        server_key.public_key(),
        ca_key,
        [
            (x509.SubjectAlternativeName(names), False),
            (x509.BasicConstraints(ca=False, path_length=None), True),
            (x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), False),
            (x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), False),
        ],
    )
    signing_key = ec.generate_private_key(ec.SECP256R1())
    key_id, team_id = _apple_id(), _apple_id()
    material = ApnsMaterial(
        ca_file=directory / "apns-ca.pem",
        cert_file=directory / "apns-server.pem",
        cert_key_file=directory / "apns-server-key.pem",
        key_file=directory / f"AuthKey_{key_id}.p8",
        key_id=key_id,
        team_id=team_id,
    )
    material.ca_file.write_bytes(ca_cert.public_bytes(pem))
    material.cert_file.write_bytes(server_cert.public_bytes(pem))
    material.cert_key_file.write_bytes(server_key.private_bytes(pem, pkcs8, plain))
    material.key_file.write_bytes(signing_key.private_bytes(pem, pkcs8, plain))
    return material, signing_key


class ApnsSandbox:
    """HTTP/2 + TLS server on 127.0.0.1 implementing ``POST /3/device/<token>`` like Apple.

    ``faults`` maps a device token to the ``(status, reason)`` Apple would answer for it,
    e.g. ``(410, "Unregistered")``. Accepted pushes land in ``received``; refused ones in
    ``rejected`` (same record shape plus ``status`` and ``reason``).
    """

    def __init__(
        self, directory: Path, *, topic: str = "com.example.notify", port: int = 0
    ) -> None:
        self.directory = Path(directory)
        self.topic = topic
        self.host = "127.0.0.1"
        self.port = port
        self.faults: dict[str, tuple[int, str]] = {}
        self.received: list[dict[str, Any]] = []
        self.rejected: list[dict[str, Any]] = []
        self.material: ApnsMaterial | None = None
        self._public_key: ec.EllipticCurvePublicKey | None = None
        self._server: asyncio.Server | None = None
        self._transports: set[asyncio.Transport] = set()

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
        # Server.close() leaves accepted connections open; a client must see them drop.
        for transport in list(self._transports):
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

    def handle(self, headers: dict[str, str], body: bytes) -> tuple[int, str | None, str]:
        """Answer one request as Apple would: ``(status, reason or None, apns-id)``."""
        apns_id = headers.get("apns-id") or str(uuid.uuid4())
        path = headers.get(":path", "")
        token = path.removeprefix("/3/device/") if path.startswith("/3/device/") else ""
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
            "received_at": time.time(),
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
        if token in self.faults:  # injected faults win over the token's own validity
            return self.faults[token]
        if not _TOKEN_RE.fullmatch(token):
            return 400, "BadDeviceToken"
        if topic != self.topic:
            return 400, "DeviceTokenNotForTopic"
        return 200, None


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
        self._sandbox._transports.add(transport)
        # Apple advertises how many concurrent streams a connection may carry; aioapns obeys it.
        self._conn.local_settings.max_concurrent_streams = 1000
        self._conn.initiate_connection()
        transport.write(self._conn.data_to_send())

    def connection_lost(self, exc: Exception | None) -> None:
        if self._transport is not None:
            self._sandbox._transports.discard(self._transport)

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
                self._respond(event.stream_id, *self._sandbox.handle(headers, bytes(body)))
            elif isinstance(event, ConnectionTerminated):
                self._transport.close()
                return
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
