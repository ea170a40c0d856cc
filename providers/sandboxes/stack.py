"""Every provider sandbox in one background event loop, plus a page that shows what arrived.

Used by the demo, the integration tests and the benchmark: the worker under test runs in its
own process and reaches the sandboxes over the network, exactly as it would reach the vendors.
``python -m providers.sandboxes.stack`` runs the stack on its own and prints the ``NOTIFY_*``
variables a worker needs to use it.
"""

from __future__ import annotations

import asyncio
import html
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

        async def snapshot() -> list[Record]:
            records = [r for s in self.sandboxes.values() for r in s.received]
            return sorted(records, key=lambda r: r["received_at"])

        return self._call(snapshot())

    def clear(self) -> None:
        async def clear_all() -> None:
            for sandbox in self.sandboxes.values():
                sandbox.received.clear()
                sandbox.rejected.clear()

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
        app.router.add_get("/", self._page)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.inspect_port)
        await site.start()
        self.inspect_port = self._runner.addresses[0][1]

    def _public(self) -> list[Record]:
        keys = (
            "sandbox",
            "address",
            "title",
            "body",
            "notification_id",
            "delivery_id",
            "received_at",
        )
        return [{k: r.get(k) for k in keys} for s in self.sandboxes.values() for r in s.received]

    async def _json(self, request: web.Request) -> web.Response:
        return web.json_response(self._public())

    async def _page(self, request: web.Request) -> web.Response:
        rows = "".join(
            "<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in r.values()) + "</tr>"
            for r in self._public()[-500:]
        )
        body = (
            "<!doctype html><title>sandboxes</title><h1>Received by the provider sandboxes</h1>"
            "<table border=1><tr><th>sandbox</th><th>address</th><th>title</th><th>body</th>"
            f"<th>notification</th><th>delivery</th><th>at</th></tr>{rows}</table>"
        )
        return web.Response(text=body, content_type="text/html")


def main() -> None:
    import tempfile

    from scripts.worker_process import settings_env

    stack = SandboxStack(Path(tempfile.mkdtemp(prefix="sandboxes-")), inspect_port=8099).start()
    for name, value in sorted(settings_env(stack.settings_overrides()).items()):
        print(f"export {name}='{value}'")
    print(f"# received messages: http://127.0.0.1:{stack.inspect_port}/ (Ctrl-C to stop)")
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        stack.stop()


if __name__ == "__main__":
    main()
