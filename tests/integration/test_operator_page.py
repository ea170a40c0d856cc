"""The operator page as a person sees it: headless Chromium (Debian's ``chromium``) loads
``GET /`` of a running worker during a load, runs the page's own script, and the numbers are
read from the rendered DOM, not from the JSON behind it."""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
from collections.abc import Callable
from html.parser import HTMLParser
from pathlib import Path

import pytest

from providers.sandboxes.stack import SandboxStack
from scripts.worker_process import WorkerProcess
from scripts.workload import RequestMix, json_records, make_users, produce, setup_users
from scripts.workload import wait_for_users as users_loaded
from streams import topics
from tests.integration.pipeline_harness import expected_deliveries

pytestmark = pytest.mark.integration

REQUESTS = 300
GARBAGE = b"\xff not a request"


class Rendered(HTMLParser):
    """Text by element id, and the cells that carry a ``data-*`` name."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.by_id: dict[str, str] = {}
        self.cells: list[tuple[dict[str, str], str]] = []
        self._open: list[tuple[str | None, dict[str, str], list[str]]] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        named = {k: v or "" for k, v in attrs}
        self._open.append((named.get("id"), named, []))

    def handle_endtag(self, tag: str) -> None:
        if not self._open:
            return
        element_id, attrs, text = self._open.pop()
        content = "".join(text).strip()
        if element_id:
            self.by_id[element_id] = content
        if any(k.startswith("data-") for k in attrs):
            self.cells.append((attrs, content))
        if self._open:
            self._open[-1][2].append(content)

    def handle_data(self, data: str) -> None:
        if self._open:
            self._open[-1][2].append(data)

    def cell(self, **wanted: str) -> str | None:
        for attrs, text in self.cells:
            if all(attrs.get(f"data-{k.replace('_', '-')}") == v for k, v in wanted.items()):
                return text
        return None


def render(url: str, profile: Path) -> Rendered:
    """The page after its script ran: about three refreshes of virtual time (Chromium pauses
    virtual time while a fetch is on the wire, so each refresh gets a real answer)."""
    binary = shutil.which("chromium")
    if binary is None:
        pytest.fail("chromium missing: scripts/bootstrap.sh installs Debian's package")
    done = subprocess.run(
        [
            binary,
            "--headless",
            "--no-sandbox",  # root in CI
            "--disable-gpu",
            "--no-first-run",
            f"--user-data-dir={profile}",
            "--virtual-time-budget=5000",
            "--dump-dom",
            url,
        ],
        capture_output=True,
        timeout=120,
        check=True,
    )
    return Rendered(done.stdout.decode())


def number(text: str | None) -> float:
    assert text is not None and re.fullmatch(r"-?\d+(\.\d+)?", text), text
    return float(text)


def test_the_operator_page_shows_the_load_as_it_runs(
    broker: str,
    sandboxes: SandboxStack,
    workers: Callable[..., WorkerProcess],
    tmp_path: Path,
) -> None:
    worker = workers(rate_limit_per_user=1000)
    users = make_users(40, sandboxes.webhook.url("/"), first=8000)
    asyncio.run(setup_users(broker, users))
    asyncio.run(users_loaded(worker.web_url, users))
    # Slow webhooks keep sends in flight and records waiting on the lanes while we look.
    sandboxes.inject("webhook", latency_seconds=0.05)

    requests = RequestMix(users, prefix="page").make(REQUESTS)
    garbage = [(topics.REQUESTS, b"page-garbage", GARBAGE)]
    asyncio.run(produce(broker, garbage + json_records(topics.REQUESTS, requests)))
    expected = sum(
        expected_deliveries(
            requests, {u.user_id: u for u in users}, sandboxes.webhook.url("/inbox")
        ).values()
    )
    sandboxes.wait_for(lambda got: len(got) >= expected // 4, timeout=120)

    during = render(f"{worker.web_url}/", tmp_path / "profile-during")
    assert during.by_id["status"].startswith("updated "), during.by_id
    delivered_during = number(during.by_id["delivered-total"])
    assert 0 < delivered_during <= expected
    assert number(during.by_id["requests-total"]) > 0
    lanes = [attrs["data-lane"] for attrs, _ in during.cells if "data-lane" in attrs]
    assert lanes and all(lane.startswith("deliveries.") for lane in lanes)
    # Rates come from two refreshes of the page's own script.
    assert number(during.by_id["delivered-rate"]) >= 0

    received = sandboxes.wait_for(lambda got: len(got) >= expected, timeout=180)
    sandboxes.inject("webhook", clear=True)
    after = render(f"{worker.web_url}/", tmp_path / "profile-after")
    # What the page says was delivered is what the sandboxes received.
    assert number(after.by_id["delivered-total"]) == len(received)
    assert number(after.by_id["delivered-total"]) >= delivered_during
    assert sum(number(text) for attrs, text in after.cells if "data-delivered" in attrs) == len(
        received
    )
    # The garbage record is among the newest dead letters, by its coordinates and reason.
    sources = [attrs["data-source"] for attrs, _ in after.cells if "data-source" in attrs]
    assert any(s.startswith(f"{topics.REQUESTS}:") for s in sources), sources
    assert "malformed" in after.by_id["recent-dead-letters"]
    assert number(after.cell(dead_letters=f"{topics.REQUESTS_DLQ}/invalid_record")) >= 1
    # Nothing opened a breaker here.
    assert "open" not in [text for attrs, text in after.cells if "data-breaker" in attrs]
