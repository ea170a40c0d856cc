"""A real Prometheus server (Debian's ``prometheus``) scrapes two workers during a load.

What it must show: the delivered count a PromQL query returns is the count the sandboxes saw;
the lag collector's offsets are the broker's (the high watermarks of ``notification-requests``
add up to the requests produced, on the embedded broker too); and every expression of the alert
rules (loaded and evaluated by the server itself) and of the Grafana dashboard evaluates
without error against what was scraped.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from providers.sandboxes.stack import SandboxStack
from scripts.embedded_broker import free_port
from scripts.worker_process import WorkerProcess
from scripts.workload import RequestMix, json_records, make_users, produce, setup_users
from scripts.workload import wait_for_users as users_loaded
from streams import topics
from tests.integration.pipeline_harness import expected_deliveries

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "config" / "alerts" / "notify-rules.yml"
# Every rule of the file, recording ones included, as the server reports them.
RULE_COUNT = len(re.findall(r"^\s*- (?:alert|record): ", RULES.read_text(), re.MULTILINE))
DASHBOARD = ROOT / "config" / "grafana" / "notify-dashboard.json"
REQUESTS = 400


class Prometheus:
    """A Prometheus server on a free port scraping ``targets`` every second, evaluating the
    alert rules every second, its TSDB in a temporary directory."""

    def __init__(self, targets: list[str], workdir: Path) -> None:
        binary = shutil.which("prometheus")
        if binary is None:
            pytest.fail("prometheus missing: scripts/bootstrap.sh installs Debian's package")
        self.port = free_port()
        config = workdir / "prometheus.yml"
        config.write_text(
            json.dumps(  # JSON is YAML
                {
                    "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                    "rule_files": [str(RULES)],
                    "scrape_configs": [
                        {
                            "job_name": "notify",
                            "metrics_path": "/metrics",
                            "static_configs": [{"targets": targets}],
                        }
                    ],
                }
            )
        )
        self.log = open(workdir / "prometheus.log", "wb")  # the child owns it
        self.process = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={workdir / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def get(self, path: str, **params: str) -> Any:
        url = f"http://127.0.0.1:{self.port}{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        with urllib.request.urlopen(url, timeout=10) as response:
            return json.loads(response.read())

    def query(self, expr: str) -> dict[str, Any]:
        """The API's whole answer; a bad expression answers 400, raised here as HTTPError."""
        answer: dict[str, Any] = self.get("/api/v1/query", query=expr)
        return answer

    def scalar(self, expr: str) -> float | None:
        result = self.query(expr)["data"]["result"]
        return float(result[0]["value"][1]) if result else None

    def eventually(self, what: str, check: Callable[[], bool], timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            if self.process.poll() is not None:
                raise RuntimeError("prometheus exited; see prometheus.log")
            if time.monotonic() > deadline:
                raise AssertionError(f"not seen within {timeout}s: {what}")
            time.sleep(0.5)

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/-/ready", timeout=2):
                return True
        except OSError:
            return False

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()


@pytest.fixture
def two_workers(workers: Callable[..., WorkerProcess], tmp_path: Path) -> list[WorkerProcess]:
    return [
        workers(rate_limit_per_user=1000),
        workers(rate_limit_per_user=1000, data_dir=tmp_path / "second-data"),
    ]


@pytest.fixture
def prometheus(two_workers: list[WorkerProcess], tmp_path: Path) -> Iterator[Prometheus]:
    targets = [w.web_url.removeprefix("http://") for w in two_workers]
    server = Prometheus(targets, tmp_path)
    try:
        server.eventually("prometheus ready", server.ready, timeout=60)
        yield server
    finally:
        server.stop()


def dashboard_expressions() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]


def test_prometheus_sees_what_the_sandboxes_saw_and_every_expression_evaluates(
    broker: str,
    sandboxes: SandboxStack,
    two_workers: list[WorkerProcess],
    prometheus: Prometheus,
) -> None:
    first, _ = two_workers
    users = make_users(60, sandboxes.webhook.url("/"), first=7000)
    asyncio.run(setup_users(broker, users))
    asyncio.run(users_loaded(first.web_url, users))
    prometheus.eventually(
        "both workers scraped",
        lambda: prometheus.scalar('count(up{job="notify"} == 1)') == 2,
    )

    with urllib.request.urlopen(f"{first.web_url}/metrics", timeout=10) as response:
        assert response.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
        assert b"# TYPE notify_notifications_delivered_total counter" in response.read()

    requests = RequestMix(users, prefix="prom").make(REQUESTS)
    asyncio.run(produce(broker, json_records(topics.REQUESTS, requests)))
    expected = expected_deliveries(
        requests, {u.user_id: u for u in users}, sandboxes.webhook.url("/inbox")
    )
    received = sandboxes.wait_for(lambda got: len(got) >= sum(expected.values()), timeout=180)

    # The delivered count, over both workers, is what arrived at the sandboxes.
    delivered = "sum(notify_notifications_delivered_total)"
    prometheus.eventually(
        f"{delivered} == {len(received)}",
        lambda: prometheus.scalar(delivered) == len(received),
    )
    per_instance = prometheus.query("sum by (instance) (notify_notifications_delivered_total)")
    assert len(per_instance["data"]["result"]) == 2  # both workers delivered and were scraped
    by_channel = {
        r["metric"]["channel"]: float(r["value"][1])
        for r in prometheus.query("sum by (channel) (notify_notifications_delivered_total)")[
            "data"
        ]["result"]
    }
    assert sum(by_channel.values()) == len(received)
    assert set(by_channel) <= {"push", "email", "sms", "webhook", "in_app"}

    # Offsets from the fetch high watermarks: every request produced, none missing or extra,
    # and the group caught up (lag 0 once the last commit is in).
    requests_in = f'sum(notify_kafka_highwater_offset{{topic="{topics.REQUESTS}"}})'
    prometheus.eventually(
        f"{requests_in} == {REQUESTS}", lambda: prometheus.scalar(requests_in) == REQUESTS
    )
    lag = f'sum(notify_kafka_consumer_lag_messages{{topic="{topics.REQUESTS}"}})'
    prometheus.eventually(f"{lag} == 0", lambda: prometheus.scalar(lag) == 0)
    reported = prometheus.query(
        f'count by (instance) (notify_kafka_committed_offset{{topic="{topics.REQUESTS}"}})'
    )
    assert len(reported["data"]["result"]) == 2  # the partitions are split over both

    # The rules, loaded by the server: every one evaluated, none with an error.
    def rules() -> list[dict[str, Any]]:
        groups = prometheus.get("/api/v1/rules")["data"]["groups"]
        return [rule for group in groups for rule in group["rules"]]

    prometheus.eventually(
        "every rule evaluated",
        lambda: (
            len(rules()) == RULE_COUNT
            and not any(r.get("lastEvaluation", "0001").startswith("0001") for r in rules())
        ),
    )
    unhealthy = {r["name"]: r.get("lastError") for r in rules() if r["health"] != "ok"}
    assert not unhealthy
    # ... and each rule's and each dashboard panel's expression through the query API.
    expressions = [r["query"] for r in rules()] + dashboard_expressions()
    failed: dict[str, Any] = {}
    for expr in expressions:
        try:
            answer = prometheus.query(expr)
        except urllib.error.HTTPError as exc:  # 400: the expression does not parse
            failed[expr] = exc.read().decode(errors="replace")
            continue
        if answer["status"] != "success" or answer.get("warnings"):
            failed[expr] = answer
    assert not failed
    # The dashboard's panels show data for what this load exercised.
    shown = prometheus.query("sum by (channel) (rate(notify_notifications_delivered_total[1m]))")[
        "data"
    ]["result"]
    assert shown
