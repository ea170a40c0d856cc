"""A local webhook receiver (and in-app inbox stand-in) that checks our signatures.

Accepts ``POST`` on any path, verifies ``X-Notify-Signature`` with the shared secret exactly
as a subscriber should, and records the notification.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from aiohttp import web

from providers.sandboxes.faults import FaultInjectable, FaultPlan, integer
from providers.webhook import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify


class WebhookSandbox(FaultInjectable[int]):
    """HTTP server on 127.0.0.1; ``url(path)`` is an address to give the provider.

    Accepted requests are answered with ``status`` (200 or 204) and land in ``received``.
    Faults (``plan``, see ``faults.py``) are keyed by request path and are the HTTP status to
    answer instead (a 2xx fault is still an acceptance, e.g. ``204``); 429 comes with
    ``Retry-After: retry_after``. ``delays`` and ``latency_seconds`` stall answers. Bad or
    stale signatures get 401; they and faulted requests land in ``rejected`` with ``status``
    and ``reason``.
    """

    def __init__(
        self,
        *,
        secret: str = "sandbox-webhook-secret",
        host: str = "127.0.0.1",
        port: int = 0,
        status: int = 200,
        tolerance_seconds: float = 300.0,
    ) -> None:
        self.secret = secret
        self.host = host
        self.port = port
        self.status = status
        self.tolerance_seconds = tolerance_seconds
        self.plan: FaultPlan[int] = FaultPlan(integer)
        self.received: list[dict[str, Any]] = []
        self.rejected: list[dict[str, Any]] = []
        self._runner: web.AppRunner | None = None

    def url(self, path: str = "/hook") -> str:
        return f"http://{self.host}:{self.port}/{path.lstrip('/')}"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/{tail:.*}", self._receive)
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
        """The ``Settings`` fields a ``WebhookProvider`` needs; in-app posts go to /inbox."""
        assert self._runner is not None, "start() the sandbox first"
        return {"webhook_signing_secret": self.secret, "inapp_url": self.url("/inbox")}

    async def _receive(self, request: web.Request) -> web.Response:
        arrived = time.time()
        raw = await request.read()
        await self.plan.pause(request.path)
        try:
            payload = json.loads(raw)
        except ValueError:
            payload = None
        document = payload if isinstance(payload, dict) else {}
        record: dict[str, Any] = {
            "sandbox": "webhook",
            "address": request.path,
            "title": document.get("title"),
            "body": document.get("body"),
            "notification_id": document.get("notification_id"),
            "delivery_id": document.get("delivery_id"),
            "received_at": arrived,
            "channel": document.get("channel"),
            "query": request.query_string,
            "headers": dict(request.headers),
            "payload": payload,
            "raw": raw,
        }
        timestamp = request.headers.get(TIMESTAMP_HEADER, "")
        signature = request.headers.get(SIGNATURE_HEADER, "")
        if not verify(
            self.secret, timestamp, raw, signature, tolerance_seconds=self.tolerance_seconds
        ):
            self.rejected.append({**record, "status": 401, "reason": "bad signature"})
            return web.json_response({"error": "invalid signature"}, status=401)
        if payload is None:
            self.rejected.append({**record, "status": 400, "reason": "body is not JSON"})
            return web.json_response({"error": "body is not JSON"}, status=400)
        fault = self.plan.choose(request.path)
        status = self.status if fault is None else fault
        if not 200 <= status < 300:
            self.rejected.append({**record, "status": status, "reason": "fault"})
            headers = {"Retry-After": str(self.retry_after)} if status == 429 else None
            return web.json_response({"error": "fault"}, status=status, headers=headers)
        request_id = uuid.uuid4().hex
        self.received.append({**record, "request_id": request_id, "status": status})
        headers = {"X-Request-Id": request_id}
        if status == 204:
            return web.Response(status=204, headers=headers)
        return web.json_response({"id": request_id}, status=status, headers=headers)
