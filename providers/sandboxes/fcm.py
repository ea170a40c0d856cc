"""A local stand-in for FCM HTTP v1 and Google's OAuth2 token endpoint, in one aiohttp server.

firebase-admin's credentials run unmodified against it: the service-account JSON it writes
carries a fresh RSA key and a ``token_uri`` pointing here, so google-auth's JWT-bearer grant
lands here too.

The server runs on its own event loop in a daemon thread, not on the caller's loop: google-auth
refreshes tokens with blocking ``requests`` calls (the provider runs them in a worker thread,
but any client that refreshes inline on the event loop would otherwise hang its own test).
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import jwt
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from providers.sandboxes.faults import FaultInjectable, FaultPlan, integer, pair

# google-auth always signs this audience, whatever token_uri says; Google accepts it.
_GOOGLE_AUD = "https://oauth2.googleapis.com/token"
_JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
_FCM_ERROR_TYPE = "type.googleapis.com/google.firebase.fcm.v1.FcmError"
_BAD_REQUEST_TYPE = "type.googleapis.com/google.rpc.BadRequest"
_BAD_TOKEN = "The registration token is not a valid FCM registration token"
_TTL_RE = re.compile(r"\d+(\.\d{1,9})?s")
# Canonical status and message FCM pairs with each HTTP status in its error bodies.
_STATUS = {
    400: ("INVALID_ARGUMENT", "Request contains an invalid argument."),
    401: ("UNAUTHENTICATED", "Request had invalid authentication credentials."),
    403: ("PERMISSION_DENIED", "SenderId mismatch"),
    404: ("NOT_FOUND", "Requested entity was not found."),
    429: ("RESOURCE_EXHAUSTED", "Quota exceeded for quota metric 'Messages'."),
    500: ("INTERNAL", "Internal error encountered."),
    503: ("UNAVAILABLE", "The service is currently unavailable."),
}


FcmFault = tuple[int, str]  # (HTTP status, FCM errorCode), e.g. (404, "UNREGISTERED")


def fcm_error_body(
    status: int, error_code: str, message: str | None = None, token_field: bool = False
) -> dict[str, Any]:
    """An error body in FCM v1's shape: google.rpc.Status with an FcmError detail."""
    canonical, default_message = _STATUS.get(status, ("UNKNOWN", "Unknown error."))
    details: list[dict[str, Any]] = [{"@type": _FCM_ERROR_TYPE, "errorCode": error_code}]
    if token_field:
        details.append(
            {
                "@type": _BAD_REQUEST_TYPE,
                "fieldViolations": [
                    {
                        "field": "message.token",
                        "description": _BAD_TOKEN,
                    }
                ],
            }
        )
    return {
        "error": {
            "code": status,
            "message": message or default_message,
            "status": canonical,
            "details": details,
        }
    }


class FcmSandbox(FaultInjectable[FcmFault]):
    """FCM v1 ``messages:send`` plus the OAuth2 token endpoint on 127.0.0.1 over plain HTTP.

    Faults (``plan``, see ``faults.py``) answer a registration token with ``(http status, FCM
    errorCode)``, e.g. ``(404, "UNREGISTERED")`` or ``(429, "QUOTA_EXCEEDED")`` (sent with
    ``Retry-After: retry_after``); ``delays`` and ``latency_seconds`` hold answers back.
    Accepted messages land in ``received``; refused ones in ``rejected`` with ``status``,
    ``reason`` (the errorCode) and ``error`` (the body).
    """

    def __init__(
        self, directory: Path, *, project_id: str = "notify-sandbox", port: int = 0
    ) -> None:
        self.directory = Path(directory)
        self.project_id = project_id
        self.host = "127.0.0.1"
        self.port = port
        self.plan: FaultPlan[FcmFault] = FaultPlan(pair(integer, str), retry_after=30)
        self.received: list[dict[str, Any]] = []
        self.rejected: list[dict[str, Any]] = []
        self.tokens_issued = 0
        self.credentials_file = self.directory / "fcm-service-account.json"
        self.client_email = f"firebase-adminsdk@{project_id}.iam.gserviceaccount.com"
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self._access_tokens: set[str] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def token_uri(self) -> str:
        return f"{self.base_url}/token"

    async def start(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="fcm-sandbox", daemon=True
        )
        self._thread.start()
        await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(self._serve(), self._loop))
        self._write_credentials()

    async def stop(self) -> None:
        if self._loop is None or self._thread is None:
            return
        self.plan.release()  # stalled requests would hold up the runner's cleanup
        if self._runner is not None:
            await asyncio.wrap_future(
                asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop)
            )
            self._runner = None
        self._loop.call_soon_threadsafe(self._loop.stop)
        await asyncio.to_thread(self._thread.join)
        self._loop.close()
        self._loop = self._thread = None

    def revoke_access_tokens(self) -> None:
        """Every issued OAuth token is refused from now on (401), as after a key rotation."""
        self._access_tokens.clear()

    def settings_overrides(self) -> dict[str, object]:
        """The ``Settings`` fields an ``FcmProvider`` needs to talk to this sandbox."""
        assert self._runner is not None, "start() the sandbox first"
        return {
            "fcm_credentials_file": self.credentials_file,
            "fcm_project_id": self.project_id,
            "fcm_endpoint": self.base_url,
        }

    async def _serve(self) -> None:
        app = web.Application()
        app.router.add_post("/token", self._token)
        app.router.add_post("/v1/projects/{project}/messages:send", self._send)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        self.port = self._runner.addresses[0][1]

    def _write_credentials(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        pem = self._key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
        info = {
            "type": "service_account",
            "project_id": self.project_id,
            "private_key_id": secrets.token_hex(20),
            "private_key": pem,
            "client_email": self.client_email,
            "client_id": str(secrets.randbelow(10**20)),
            "auth_uri": f"{self.base_url}/auth",
            "token_uri": self.token_uri,
        }
        self.credentials_file.write_text(json.dumps(info, indent=2))

    async def _token(self, request: web.Request) -> web.Response:
        """google-auth's service-account grant: a signed JWT in, a bearer token out."""
        form = await request.post()
        if form.get("grant_type") != _JWT_BEARER:
            return web.json_response({"error": "unsupported_grant_type"}, status=400)
        try:
            claims = jwt.decode(
                str(form.get("assertion", "")),
                self._key.public_key(),
                algorithms=["RS256"],
                audience=[_GOOGLE_AUD, self.token_uri],
                issuer=self.client_email,
                options={"require": ["exp", "iat", "iss", "aud"]},
            )
        except jwt.PyJWTError as exc:
            return web.json_response(
                {"error": "invalid_grant", "error_description": str(exc)}, status=400
            )
        if "firebase.messaging" not in claims.get(
            "scope", ""
        ) and "cloud-platform" not in claims.get("scope", ""):
            return web.json_response({"error": "invalid_scope"}, status=400)
        token = "ya29.sandbox-" + secrets.token_urlsafe(24)
        self._access_tokens.add(token)
        self.tokens_issued += 1
        return web.json_response(
            {"access_token": token, "expires_in": 3600, "token_type": "Bearer"}
        )

    async def _send(self, request: web.Request) -> web.Response:
        arrived = time.time()
        try:
            body = await request.json()
        except ValueError:
            body = None
        message = body.get("message") if isinstance(body, dict) else None
        record = self._record(request, message if isinstance(message, dict) else {}, arrived)
        await self.plan.pause(str(record["address"] or ""))
        status, error = self._check(request, message)
        if status == 200:
            self.received.append(record)
            msg_id = f"projects/{self.project_id}/messages/{uuid.uuid4().int % 10**19}"
            return web.json_response({"name": msg_id})
        reason = _error_code(error)
        self.rejected.append({**record, "status": status, "reason": reason, "error": error})
        headers = {"Retry-After": str(self.retry_after)} if status == 429 else None
        return web.json_response(error, status=status, headers=headers)

    def _check(self, request: web.Request, message: Any) -> tuple[int, dict[str, Any] | None]:
        # FCM's order: credentials, project, body, then the message itself.
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or token not in self._access_tokens:
            return 401, fcm_error_body(401, "THIRD_PARTY_AUTH_ERROR")
        if request.match_info["project"] != self.project_id:
            return 403, fcm_error_body(403, "SENDER_ID_MISMATCH")
        if not isinstance(message, dict):
            return 400, fcm_error_body(400, "INVALID_ARGUMENT")
        return self._validate(message)

    def _validate(self, message: dict[str, Any]) -> tuple[int, dict[str, Any] | None]:
        targets = [k for k in ("token", "fid", "topic", "condition") if message.get(k)]
        if len(targets) != 1:
            return 400, fcm_error_body(400, "INVALID_ARGUMENT", "Exactly one target required.")
        data = message.get("data", {})
        if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
            return 400, fcm_error_body(400, "INVALID_ARGUMENT", "Invalid value at 'message.data'")
        android = message.get("android", {})
        if str(android.get("priority", "normal")).lower() not in {"high", "normal"}:
            return 400, fcm_error_body(400, "INVALID_ARGUMENT", "Invalid android.priority")
        if "ttl" in android and not _TTL_RE.fullmatch(str(android["ttl"])):
            return 400, fcm_error_body(400, "INVALID_ARGUMENT", "Invalid android.ttl")
        token = message.get("token") or message.get("fid")
        fault = self.plan.choose(str(token)) if token else None
        if fault is not None:
            status, code = fault
            is_token = code == "INVALID_ARGUMENT"
            text = _BAD_TOKEN if is_token else None
            return status, fcm_error_body(status, code, text, token_field=is_token)
        return 200, None

    def _record(
        self, request: web.Request, message: dict[str, Any], arrived: float
    ) -> dict[str, Any]:
        notification = message.get("notification")
        notification = notification if isinstance(notification, dict) else {}
        data = message.get("data")
        data = data if isinstance(data, dict) else {}
        return {
            "sandbox": "fcm",
            "address": next(
                (message[k] for k in ("token", "fid", "topic", "condition") if message.get(k)), None
            ),
            "title": notification.get("title", ""),
            "body": notification.get("body", ""),
            "notification_id": data.get("notification_id"),
            "delivery_id": data.get("delivery_id"),
            "received_at": arrived,
            "headers": {
                k.lower(): v for k, v in request.headers.items() if k.lower() != "authorization"
            },
            "payload": message,
        }


def _error_code(error: dict[str, Any] | None) -> str | None:
    """The FcmError errorCode of an error body (what a client classifies by)."""
    details = (error or {}).get("error", {}).get("details", [])
    return next((d.get("errorCode") for d in details if d.get("@type") == _FCM_ERROR_TYPE), None)
