"""The alert rules and the dashboard: promtool checks the rules and runs their unit tests
(config/alerts/notify-rules.test.yml: every alert firing and not firing on input series), and
every ``notify_*`` series the rules and the dashboard name is one a worker exports."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from prometheus_client.metrics_core import Metric

from agents.hot_key_counters import HotKeyCounters
from agents.metrics import Metrics
from agents.metrics_collectors import (
    _FAILURE_SERIES,
    BreakerStates,
    CampaignProgress,
    ConsumerOffsets,
    HotKeyEvents,
)
from providers.registry import ProviderRegistry

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "config" / "alerts" / "notify-rules.yml"
RULE_TESTS = ROOT / "config" / "alerts" / "notify-rules.test.yml"
DASHBOARD = ROOT / "config" / "grafana" / "notify-dashboard.json"


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.fail("promtool missing: scripts/bootstrap.sh installs Debian's prometheus package")
    return found


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # fixed arguments, no shell
        [promtool(), *args], capture_output=True, text=True, cwd=RULES.parent, check=False
    )


def test_promtool_accepts_the_rules() -> None:
    result = run("check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 11 rules found" in result.stdout


def test_every_alert_fires_and_stays_quiet_where_its_tests_say() -> None:
    result = run("test", "rules", str(RULE_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr
    tested = set(re.findall(r"alertname: (\w+)", RULE_TESTS.read_text()))
    alerts = set(re.findall(r"- alert: (\w+)", RULES.read_text()))
    assert tested == alerts


def dashboard_expressions() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]


def exported_names() -> set[str]:
    """Every series name a scrape can hold, histogram and counter suffixes included."""

    class _NoConsumer:
        consumer = None
        tables = None

    families: list[Metric] = [
        *Metrics().registry.collect(),
        *ConsumerOffsets(_NoConsumer()).collect(),  # type: ignore[arg-type]
        *CampaignProgress(tables=None).collect(),  # type: ignore[arg-type]
        *BreakerStates(ProviderRegistry({})).collect(),
        *HotKeyEvents(HotKeyCounters()).collect(),
    ]
    names = {f.name for f in families if f.type != "counter"}
    names |= {f"{f.name}_total" for f in families if f.type == "counter"}
    names |= {f"{name}_total" for _, name, _, _ in _FAILURE_SERIES}
    histograms = {f.name for f in families if f.type == "histogram"}
    names |= {f"{h}_{suffix}" for h in histograms for suffix in ("bucket", "sum", "count")}
    return names


@pytest.mark.parametrize("source", ["rules", "dashboard"])
def test_every_series_named_is_exported(source: str) -> None:
    text = RULES.read_text() if source == "rules" else "\n".join(dashboard_expressions())
    named = set(re.findall(r"\bnotify_[a-z_]+", text))
    assert named, source
    assert named <= exported_names(), sorted(named - exported_names())


def test_the_dashboard_watches_what_the_alerts_watch() -> None:
    exprs = " ".join(" ".join(e.split()) for e in dashboard_expressions())
    for series in re.findall(r"\bnotify_[a-z_]+", RULES.read_text()):
        assert series in exprs, series
