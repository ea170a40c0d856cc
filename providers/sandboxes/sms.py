"""A local Twilio look-alike: ``POST /2010-04-01/Accounts/{sid}/Messages.json``.

Answers like Twilio does (Basic auth, form fields, 201 with a message resource, errors as
``{"code", "message", "more_info", "status"}``) and records each accepted SMS.
"""

from __future__ import annotations

import base64
import re
import time
import uuid
from email.utils import formatdate
from typing import Any
from urllib.parse import parse_qs, urlsplit

from aiohttp import web

from providers.sandboxes.faults import FaultInjectable, FaultPlan, integer, optional, pair
from providers.sms import API_VERSION, segment_count

# What Twilio accepts as a "To" number: E.164.
_E164 = re.compile(r"^\+[1-9]\d{6,14}$")
# Never resolvable (RFC 2606): the sandbox only parses the callback, nobody calls it.
DEFAULT_STATUS_CALLBACK = "https://notify.invalid/sms/status"

SmsFault = tuple[int, int | None]  # (HTTP status, Twilio error code), e.g. (400, 21211)


def _error(status: int, code: int | None, message: str, **headers: str) -> web.Response:
    body = {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}" if code else None,
        "status": status,
    }
    return web.json_response(body, status=status, headers=headers or None)


class SmsSandbox(FaultInjectable[SmsFault]):
    """Twilio-compatible HTTP server on 127.0.0.1.

    Faults (``plan``, see ``faults.py``) answer a To number with ``(http_status,
    twilio_code)``, e.g. ``(400, 21211)`` (invalid number), ``(429, 20429)`` (answered with
    ``Retry-After: retry_after``) or ``(503, None)``. ``delays`` and ``latency_seconds``
    stall answers. Refused messages land in ``rejected`` with ``status``, ``code`` and
    ``reason``; unauthenticated requests too.
    """

    def __init__(
        self,
        *,
        account_sid: str = "AC" + "0" * 32,
        auth_token: str = "sandbox-auth-token",
        status_callback_url: str = DEFAULT_STATUS_CALLBACK,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.status_callback_url = status_callback_url
        self.host = host
        self.port = port
        self.plan: FaultPlan[SmsFault] = FaultPlan(pair(integer, optional(integer)))
        self.received: list[dict[str, Any]] = []
        self.rejected: list[dict[str, Any]] = []
        self._runner: web.AppRunner | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post(f"/{API_VERSION}/Accounts/{{sid}}/Messages.json", self._create)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        self.plan.release()  # release stalled requests: aiohttp waits for handlers
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    def settings_overrides(self) -> dict[str, object]:
        """The ``Settings`` fields an ``SmsProvider`` needs to talk to this sandbox."""
        assert self._runner is not None, "start() the sandbox first"
        return {
            "sms_base_url": self.base_url,
            "sms_account_sid": self.account_sid,
            "sms_auth_token": self.auth_token,
            "sms_status_callback_url": self.status_callback_url,
        }

    def _authorized(self, request: web.Request) -> bool:
        scheme, _, encoded = request.headers.get("Authorization", "").partition(" ")
        try:
            login, _, password = base64.b64decode(encoded, validate=True).decode().partition(":")
        except ValueError:
            return False
        return scheme.lower() == "basic" and (login, password) == (
            self.account_sid,
            self.auth_token,
        )

    async def _create(self, request: web.Request) -> web.Response:
        arrived = time.time()
        form = await request.post()
        fields = {k: str(v) for k, v in form.items()}
        to, text = fields.get("To", ""), fields.get("Body", "")
        await self.plan.pause(to)
        callback = fields.get("StatusCallback", "")
        ids = {k: v[0] for k, v in parse_qs(urlsplit(callback).query).items()}
        # The provider sends "title: body"; splitting on the first ": " recovers both in
        # the usual case (a body containing ": " without a title is mis-split, harmlessly).
        title, sep, body = text.partition(": ")
        record: dict[str, Any] = {
            "sandbox": "sms",
            "address": to,
            "title": title if sep else "",
            "body": body if sep else text,
            "notification_id": ids.get("notification_id"),
            "delivery_id": ids.get("delivery_id"),
            "received_at": arrived,
            "from": fields.get("From", ""),
            "text": text,
            "segments": segment_count(text),
            "status_callback": callback,
            "form": fields,
            "headers": dict(request.headers),
        }
        status, code, reason = self._verdict(request, to, text)
        if status != 201:
            self.rejected.append({**record, "status": status, "code": code, "reason": reason})
            headers = {"Retry-After": str(self.retry_after)} if status == 429 else {}
            return _error(status, code, reason, **headers)
        sid = "SM" + uuid.uuid4().hex
        self.received.append({**record, "sid": sid})
        return web.json_response(self._resource(sid, fields, record["segments"]), status=201)

    def _verdict(self, request: web.Request, to: str, text: str) -> tuple[int, int | None, str]:
        """``(HTTP status, Twilio code, message)``; 201 accepts the message."""
        if not self._authorized(request):
            return 401, 20003, "Authenticate"
        if request.match_info["sid"] != self.account_sid:
            return 404, 20404, "The requested resource was not found"
        fault = self.plan.choose(to)
        if fault is not None:
            return *fault, f"sandbox refused {to}"
        if not to:
            return 400, 21604, "A 'To' phone number is required."
        if not text:
            return 400, 21602, "Message body is required."
        if not _E164.match(to):
            return 400, 21211, f"The 'To' number {to} is not a valid phone number."
        return 201, None, ""

    def _resource(self, sid: str, fields: dict[str, str], segments: int) -> dict[str, Any]:
        now = formatdate(usegmt=True)
        return {
            "sid": sid,
            "account_sid": self.account_sid,
            "api_version": API_VERSION,
            "to": fields.get("To"),
            "from": fields.get("From"),
            "body": fields.get("Body"),
            "status": "queued",
            "direction": "outbound-api",
            "num_segments": str(segments),
            "num_media": "0",
            "date_created": now,
            "date_updated": now,
            "date_sent": None,
            "price": None,
            "price_unit": "USD",
            "error_code": None,
            "error_message": None,
            "messaging_service_sid": None,
            "uri": f"/{API_VERSION}/Accounts/{self.account_sid}/Messages/{sid}.json",
        }
