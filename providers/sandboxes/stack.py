"""Every provider sandbox in one background event loop, plus a page that shows what arrived.

Used by the demo, the integration tests and the benchmark: the worker under test runs in its
own process and reaches the sandboxes over the network, exactly as it would reach the vendors.
``python -m providers.sandboxes.stack`` runs the stack on its own and prints the ``NOTIFY_*``
variables a worker needs to use it.

Inspection and fault injection over HTTP (port ``inspect_port``, 8099 when run on its own)::

    curl localhost:8099/                  # HTML: what arrived, what was refused
    curl localhost:8099/received.json     # accepted requests, every sandbox
    curl localhost:8099/rejected.json     # refused requests, with status and reason
    # {sandbox} is apns, fcm, smtp, sms or webhook; the fault has that sandbox's shape:
    # apns [status, reason], fcm [status, errorCode], smtp [code, text], sms [status, code|null],
    # webhook status. Each call answers with the sandbox's whole fault plan.
    curl -d '{"address": "+15551234567", "fault": [503, null]}' localhost:8099/faults/sms
    curl -d '{"address": "/hooks/u1", "fault": 503, "times": 2}' localhost:8099/faults/webhook
    curl -d '{"rate": 0.3, "fault": [429, "QUOTA_EXCEEDED"], "seed": 7}' localhost:8099/faults/fcm
    curl -d '{"address": "a@example.com", "fault": [421, "4.3.2 Try later"]}' \
        localhost:8099/faults/smtp
    curl -d '{"latency_seconds": 0.05}' localhost:8099/faults/apns
    curl -d '{"address": "/slow", "delay_seconds": 5}' localhost:8099/faults/webhook
    curl -d '{"retry_after": 10}' localhost:8099/faults/sms     # Retry-After on its 429s
    curl -d '{"clear": true}' localhost:8099/faults/sms         # or with "address": just one

``stack.inject(name, ...)`` does the same from Python (keywords of ``FaultPlan.update``).
"""

from __future__ import annotations

import asyncio
import html
import json
import threading
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

from aiohttp import web

from providers.sandboxes.apns import ApnsSandbox
from providers.sandboxes.fcm import FcmSandbox
from providers.sandboxes.sms import SmsSandbox
from providers.sandboxes.smtp import SmtpSandbox
from providers.sandboxes.webhook import WebhookSandbox

T = TypeVar("T")
Record = dict[str, Any]
_PUBLIC = ("sandbox", "address", "title", "body", "notification_id", "delivery_id", "received_at")
_REFUSAL = ("status", "reason")


class SandboxStack:
    def __init__(self, directory: Path, inspect_port: int = 0) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.apns = ApnsSandbox(directory)
        self.fcm = FcmSandbox(directory)
        self.smtp = SmtpSandbox()
        self.sms = SmsSandbox()
        self.webhook = WebhookSandbox()
        self.inspect_port = inspect_port
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="sandboxes", daemon=True
        )
        self._runner: web.AppRunner | None = None

    @property
    def sandboxes(self) -> dict[str, Any]:
        return {
            "apns": self.apns,
            "fcm": self.fcm,
            "smtp": self.smtp,
            "sms": self.sms,
            "webhook": self.webhook,
        }

    def _call(self, coro: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def start(self) -> SandboxStack:
        self._thread.start()
        for sandbox in self.sandboxes.values():
            self._call(sandbox.start())
        self._call(self._serve_inspection())
        return self

    def stop(self) -> None:
        if self._runner is not None:
            self._call(self._runner.cleanup())
        for sandbox in self.sandboxes.values():
            self._call(sandbox.stop())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def settings_overrides(self) -> dict[str, object]:
        """Settings values that point a worker's providers at these sandboxes."""
        merged: dict[str, object] = {}
        for sandbox in self.sandboxes.values():
            merged.update(sandbox.settings_overrides())
        return merged

    def received(self) -> list[Record]:
        """Every accepted message, all sandboxes, in arrival order."""
        return self._call(self._snapshot("received"))

    def rejected(self) -> list[Record]:
        """Every refused request (with ``status`` and ``reason``), all sandboxes, by arrival."""
        return self._call(self._snapshot("rejected"))

    async def _snapshot(self, kind: str) -> list[Record]:
        records = [r for s in self.sandboxes.values() for r in getattr(s, kind)]
        return sorted(records, key=lambda r: r["received_at"])

    def inject(self, sandbox: str, **change: Any) -> dict[str, Any]:
        """Change one sandbox's fault plan; keywords as ``FaultPlan.update``, e.g.
        ``inject("sms", address="+15551234567", fault=(429, 20429), times=2)``,
        ``inject("fcm", rate=0.3, fault=(503, "UNAVAILABLE"), seed=1)``,
        ``inject("apns", latency_seconds=0.05)`` or ``inject("smtp", clear=True)``.

        Runs on the stack's loop, between two requests. Returns the plan as it now is;
        raises KeyError for an unknown sandbox, ValueError / TypeError for a bad change.
        """
        plan = self.sandboxes[sandbox].plan

        async def update() -> dict[str, Any]:
            updated: dict[str, Any] = plan.update(**change)
            return updated

        return self._call(update())

    def clear(self) -> None:
        """Forget what arrived and every injected fault, so tests start from a clean stack."""

        async def clear_all() -> None:
            for sandbox in self.sandboxes.values():
                sandbox.received.clear()
                sandbox.rejected.clear()
                sandbox.plan.update(clear=True)

        self._call(clear_all())

    def wait_for(
        self, predicate: Callable[[list[Record]], bool], timeout: float = 60.0
    ) -> list[Record]:
        """Poll the received messages until ``predicate`` holds; raise with what arrived."""
        deadline = time.monotonic() + timeout
        while True:
            records = self.received()
            if predicate(records):
                return records
            if time.monotonic() > deadline:
                raise TimeoutError(f"condition not met in {timeout}s; {len(records)} received")
            time.sleep(0.1)

    # ------------------------------------------------------------------ inspection page

    async def _serve_inspection(self) -> None:
        app = web.Application()
        app.router.add_get("/received.json", self._json)
        app.router.add_get("/rejected.json", self._json)
        app.router.add_post("/faults/{sandbox}", self._faults)
        app.router.add_get("/", self._page)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.inspect_port)
        await site.start()
        self.inspect_port = self._runner.addresses[0][1]

    def _public(self, kind: str) -> list[Record]:
        keys = _PUBLIC + (_REFUSAL if kind == "rejected" else ())
        records = (r for s in self.sandboxes.values() for r in getattr(s, kind))
        return [{k: r.get(k) for k in keys} for r in records]

    async def _json(self, request: web.Request) -> web.Response:
        return web.json_response(self._public(request.path.strip("/").removesuffix(".json")))

    async def _faults(self, request: web.Request) -> web.Response:
        sandbox = self.sandboxes.get(request.match_info["sandbox"])
        if sandbox is None:
            raise web.HTTPNotFound(text=f"no sandbox {request.match_info['sandbox']!r}")
        try:
            change = await request.json()
            if not isinstance(change, dict):
                raise ValueError("the body is a JSON object")
            plan = sandbox.plan.update(**change)
        except (ValueError, TypeError) as exc:  # bad JSON, unknown key, fault of a wrong shape
            raise web.HTTPBadRequest(text=f"{exc}\n") from exc
        return web.json_response(plan)

    async def _page(self, request: web.Request) -> web.Response:
        sections = []
        for kind, heading in (("received", "Received by"), ("rejected", "Refused by")):
            records = self._public(kind)[-500:]
            columns = _PUBLIC + (_REFUSAL if kind == "rejected" else ())
            head = "".join(f"<th>{c}</th>" for c in columns)
            rows = "".join(
                "<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in r.values()) + "</tr>"
                for r in records
            )
            sections.append(
                f"<h1>{heading} the provider sandboxes</h1>"
                f"<table border=1><tr>{head}</tr>{rows}</table>"
            )
        plans = {name: s.plan.describe() for name, s in self.sandboxes.items()}
        body = (
            "<!doctype html><title>sandboxes</title>"
            + "".join(sections)
            + f"<h1>Fault plans</h1><pre>{html.escape(json.dumps(plans, indent=2))}</pre>"
        )
        return web.Response(text=body, content_type="text/html")


# What a worker on the embedded broker needs besides the sandboxes' addresses (README, The
# embedded broker): printed with them, so that a copy-paste of the output is a working setup.
EMBEDDED_BROKER_SETTINGS = {
    "broker_flavor": "tansu",
    "session_timeout_seconds": 2.0,
    "heartbeat_interval_seconds": 0.5,
}


def main() -> None:
    """``python -m providers.sandboxes.stack [--inspect-port 8099]``: every sandbox, until
    Ctrl-C; prints the ``NOTIFY_*`` settings that point a worker at them."""
    import argparse
    import tempfile

    from scripts.worker_process import settings_env

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument(
        "--inspect-port", type=int, default=8099, help="inspection page port (0: any free one)"
    )
    args = parser.parse_args()
    stack = SandboxStack(
        Path(tempfile.mkdtemp(prefix="sandboxes-")), inspect_port=args.inspect_port
    ).start()
    values = {**EMBEDDED_BROKER_SETTINGS, **stack.settings_overrides()}
    for name, value in sorted(settings_env(values).items()):
        print(f"export {name}='{value}'")
    print(f"# webhook receiver: {stack.webhook.url('/hooks/<anything>')} (a user's webhook_url)")
    print(f"# received messages: http://127.0.0.1:{stack.inspect_port}/ (Ctrl-C to stop)")
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        stack.stop()


if __name__ == "__main__":
    main()
