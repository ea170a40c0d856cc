"""What the values do to the workers: every setting reaches the app, secrets come from Secrets,
probes and termination fit the worker, the HPA scales as seed 000 says, bad values fail."""

from __future__ import annotations

import json
import os
import re
from enum import StrEnum
from pathlib import Path
from typing import Any

import faust
import jsonschema
import pytest
import yaml
from pydantic import SecretStr

from config.settings import Settings
from scripts import chart_schema
from tests.chart.chart import CHART, ROOT, Renderer, RenderError, by_kind, one, value_file

SCHEMA = json.loads((CHART / "values.schema.json").read_text())
RULES = ROOT / "config" / "alerts" / "notify-rules.yml"


def write_values(tmp_path: Path, values: dict[str, Any], name: str = "values.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(values))
    return path


def container(manifests: list[dict[str, Any]]) -> dict[str, Any]:
    pod = one(manifests, "StatefulSet")["spec"]["template"]["spec"]
    assert len(pod["containers"]) == 1
    worker: dict[str, Any] = pod["containers"][0]
    return worker


def test_values_schema_is_generated_from_the_settings() -> None:
    assert (CHART / "values.schema.json").read_text() == chart_schema.render(), (
        "run `python -m scripts.chart_schema`"
    )


def test_every_setting_is_a_value_or_set_by_the_chart() -> None:
    in_values = set(SCHEMA["properties"]["settings"]["properties"])
    managed = set(chart_schema.CHART_MANAGED)
    assert in_values | managed == set(Settings.model_fields)
    assert not in_values & managed
    secrets = {n for n, f in Settings.model_fields.items() if f.annotation is SecretStr}
    assert secrets <= managed  # a secret is never in the ConfigMap


def changed(name: str, default: Any) -> Any:
    """A valid value other than the default, for any setting type."""
    if isinstance(default, bool):
        return not default
    if isinstance(default, int):
        return default + 1
    if isinstance(default, float):
        return default + 0.5
    if isinstance(default, tuple):
        return [7.0, 70.0]
    if name == "max_age_by_category":  # category -> seconds
        return {"otp": 300.0}
    if isinstance(default, StrEnum):  # another of its choices
        return next(choice.value for choice in type(default) if choice != default)
    if isinstance(default, dict):  # the price table: channel -> provider -> dollars
        return {**default, "sms": {"sms": 0.0125}}
    if default is None:  # the optional paths
        return f"/etc/notify/{name}"
    return f"{default}-changed"


def test_every_setting_set_in_values_reaches_the_worker(
    renderer: Renderer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    chosen = {
        name: changed(name, field.default)
        for name, field in Settings.model_fields.items()
        if name not in chart_schema.CHART_MANAGED
    }
    # The cross-checks still hold with the changed numbers.
    chosen.update(partitions=16, revoke_drain_seconds=7.5)
    values = write_values(tmp_path, {"kafka": {"bootstrap": "k1:9092,k2:9092"}, "settings": chosen})
    jsonschema.validate(renderer.values(values), SCHEMA)
    config_map = one(renderer.manifests(values), "ConfigMap")["data"]
    for variable in list(os.environ):
        if variable.startswith("NOTIFY_"):
            monkeypatch.delenv(variable)
    for variable, value in config_map.items():
        monkeypatch.setenv(variable, value)
    settings = Settings()
    for name, value in chosen.items():
        found = getattr(settings, name)
        if isinstance(found, tuple):
            found = list(found)
        elif isinstance(found, Path):
            found = str(found)
        assert found == value, name
    assert settings.kafka_bootstrap == "k1:9092,k2:9092"
    assert settings.broker_flavor == "kafka" and settings.web_enabled is True
    assert str(settings.data_dir) == "/var/lib/notify" and settings.web_port == 6066


def test_provider_credentials_come_from_existing_secrets(renderer: Renderer) -> None:
    manifests = renderer.manifests(value_file("production"))
    worker = container(manifests)
    env = {e["name"]: e for e in worker["env"]}
    for variable, secret in [
        ("NOTIFY_SMTP_PASSWORD", "notify-smtp"),
        ("NOTIFY_SMS_AUTH_TOKEN", "notify-sms"),
        ("NOTIFY_WEBHOOK_SIGNING_SECRET", "notify-webhooks"),
        ("NOTIFY_FEEDBACK_TOKEN", "notify-feedback"),
        ("NOTIFY_API_KEYS", "notify-api-keys"),
    ]:
        assert env[variable]["valueFrom"]["secretKeyRef"]["name"] == secret
    # With API keys set, Prometheus scrapes /metrics with a key of its own.
    scrape = one(manifests, "ServiceMonitor")["spec"]["endpoints"][0]
    assert scrape["authorization"] == {
        "type": "Bearer",
        "credentials": {"name": "notify-metrics-key", "key": "token"},
    }
    pod = one(manifests, "StatefulSet")["spec"]["template"]["spec"]
    mounts = {m["mountPath"]: m["name"] for m in worker["volumeMounts"]}
    secret_volumes = {v["name"]: v["secret"] for v in pod["volumes"] if "secret" in v}
    for variable, secret in [
        ("NOTIFY_APNS_KEY_FILE", "notify-apns"),
        ("NOTIFY_FCM_CREDENTIALS_FILE", "notify-fcm"),
    ]:
        path = Path(env[variable]["value"])
        volume = secret_volumes[mounts[str(path.parent)]]
        assert volume["secretName"] == secret
        assert [item["path"] for item in volume["items"]] == [path.name]
        assert volume["defaultMode"] & 0o040  # the non-root worker reads it as group fsGroup
    assert pod["securityContext"]["runAsNonRoot"] and pod["securityContext"]["fsGroup"]
    # No credential in the ConfigMap, and none at all without secrets configured.
    data = one(manifests, "ConfigMap")["data"]
    assert not {"NOTIFY_SMTP_PASSWORD", "NOTIFY_SMS_AUTH_TOKEN"} & set(data)
    minimal = container(renderer.manifests(value_file("minimal")))
    assert [e["name"] for e in minimal["env"]] == ["POD_NAME", "WEB_HOST"]


def test_table_routes_reach_the_owner_by_its_stable_dns_name(
    renderer: Renderer, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = {e["name"]: e for e in container(renderer.manifests(value_file("default")))["env"]}
    assert env["POD_NAME"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert env["WEB_HOST"]["value"] == "$(POD_NAME).notify-headless.notify.svc"
    # Faust reads WEB_HOST from the environment into the URL its table routes proxy to.
    monkeypatch.setenv("WEB_HOST", "notify-1.notify-headless.notify.svc")
    conf = faust.App("web-host-test", web_port=6066).conf
    assert str(conf.canonical_url) == "http://notify-1.notify-headless.notify.svc:6066"


@pytest.mark.parametrize("value_set", ["default", "production", "minimal"])
def test_probes_and_termination_fit_the_worker(renderer: Renderer, value_set: str) -> None:
    values = renderer.values(value_file(value_set))
    manifests = renderer.manifests(value_file(value_set))
    worker = container(manifests)
    assert worker["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "web"}
    assert worker["startupProbe"]["httpGet"] == {"path": "/healthz", "port": "web"}
    assert worker["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "web"}
    assert worker["ports"] == [{"name": "web", "containerPort": 6066, "protocol": "TCP"}]
    pod = one(manifests, "StatefulSet")["spec"]["template"]["spec"]
    drain = values["settings"]["revoke_drain_seconds"]
    commit = values["termination"]["commitSeconds"]
    assert pod["terminationGracePeriodSeconds"] > drain + commit
    assert worker["resources"]["requests"]["cpu"] and worker["resources"]["requests"]["memory"]
    statefulset = one(manifests, "StatefulSet")["spec"]
    claim = statefulset["volumeClaimTemplates"][0]
    assert {"name": "data", "mountPath": "/var/lib/notify"} in worker["volumeMounts"]
    assert claim["metadata"]["name"] == "data"
    assert statefulset["serviceName"] == "notify-headless"


def test_the_autoscaler_scales_on_lag_and_cpu_as_seed_000_says(renderer: Renderer) -> None:
    manifests = renderer.manifests(value_file("production"))
    hpa = one(manifests, "HorizontalPodAutoscaler")["spec"]
    assert hpa["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "name": "notify",
    }
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (6, 24)
    lag, cpu = hpa["metrics"]
    assert lag["external"]["target"] == {"type": "AverageValue", "averageValue": "10000"}
    assert lag["external"]["metric"]["selector"]["matchLabels"] == {
        "service": "notify",
        "namespace": "notify",
    }
    assert cpu["resource"] == {
        "name": "cpu",
        "target": {"type": "Utilization", "averageUtilization": 70},
    }
    assert hpa["behavior"] == {
        "scaleUp": {
            "stabilizationWindowSeconds": 30,
            "policies": [{"type": "Percent", "value": 100, "periodSeconds": 30}],
        },
        "scaleDown": {
            "stabilizationWindowSeconds": 300,
            "policies": [{"type": "Percent", "value": 10, "periodSeconds": 60}],
        },
    }
    # The lag metric is the one the workers export (the alert rules use the same name).
    assert lag["external"]["metric"]["name"] in RULES.read_text()
    # An HPA owns the replica count: the StatefulSet does not fight it.
    assert "replicas" not in one(manifests, "StatefulSet")["spec"]
    assert one(renderer.manifests(value_file("minimal")), "StatefulSet")["spec"]["replicas"] == 2


def test_the_prometheus_rule_is_the_alert_rules_file(renderer: Renderer) -> None:
    chart_copy = CHART / "files" / "notify-rules.yml"
    assert chart_copy.read_bytes() == RULES.read_bytes()
    rule = one(renderer.manifests(value_file("production")), "PrometheusRule")
    assert rule["spec"] == yaml.safe_load(RULES.read_text())
    assert rule["metadata"]["labels"]["release"] == "prometheus"
    monitor = one(renderer.manifests(value_file("production")), "ServiceMonitor")
    assert monitor["spec"]["endpoints"][0]["path"] == "/metrics"
    web_services = [
        s
        for s in by_kind(renderer.manifests(value_file("production")), "Service")
        if all(
            s["metadata"]["labels"].get(k) == v
            for k, v in monitor["spec"]["selector"]["matchLabels"].items()
        )
    ]
    assert [s["metadata"]["name"] for s in web_services] == ["notify"]  # not the headless one


BAD_VALUES: list[tuple[str, dict[str, Any]]] = [
    ("no replicas", {"replicas": 0}),
    ("a secret in the ConfigMap", {"settings": {"smtp_password": "hunter2"}}),
    ("a setting that does not exist", {"settings": {"partitionz": 8}}),
    ("a wrong type", {"settings": {"partitions": "eight"}}),
    ("a broken bootstrap list", {"kafka": {"bootstrap": "kafka:9092;kafka2"}}),
    ("an unknown top-level value", {"replica": 3}),
    (
        "an HPA policy type",
        {
            "autoscaling": {
                "behavior": {
                    "scaleUp": {
                        "policies": [{"type": "Percentage", "value": 100, "periodSeconds": 30}]
                    }
                }
            }
        },
    ),
    ("a secret without a key", {"secrets": {"smtpPassword": {"secretName": "s", "key": ""}}}),
]


@pytest.mark.parametrize(("case", "override"), BAD_VALUES, ids=[c for c, _ in BAD_VALUES])
def test_the_schema_rejects_bad_values(
    renderer: Renderer, tmp_path: Path, case: str, override: dict[str, Any]
) -> None:
    values = renderer.values(value_file("default"), write_values(tmp_path, override))
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(values, SCHEMA)


REFUSED_RENDERS: list[tuple[str, dict[str, Any], str]] = [
    ("no bootstrap", {"kafka": {"bootstrap": ""}}, "kafka.bootstrap is required"),
    (
        "more workers than partitions",
        {"autoscaling": {"maxReplicas": 9}},
        "autoscaling.maxReplicas (9) above settings.partitions (8)",
    ),
    (
        "a grace period shorter than drain plus commit",
        {"termination": {"gracePeriodSeconds": 20}},
        "termination.gracePeriodSeconds (20) must exceed",
    ),
]


@pytest.mark.parametrize(
    ("case", "override", "message"), REFUSED_RENDERS, ids=[c for c, _, _ in REFUSED_RENDERS]
)
def test_the_chart_refuses_values_the_schema_cannot_judge(
    renderer: Renderer, tmp_path: Path, case: str, override: dict[str, Any], message: str
) -> None:
    values = [value_file("default"), write_values(tmp_path, override)]
    jsonschema.validate(renderer.values(*values), SCHEMA)  # each value valid on its own
    with pytest.raises(RenderError, match=re.escape(message)):
        renderer.text(*values)


def test_the_chart_alone_needs_a_kafka_bootstrap(renderer: Renderer) -> None:
    with pytest.raises(RenderError, match=re.escape("kafka.bootstrap is required")):
        renderer.text()


def test_an_init_container_creates_the_topics_with_the_workers_settings(
    renderer: Renderer,
) -> None:
    pod = one(renderer.manifests(value_file("production")), "StatefulSet")["spec"]["template"]
    (init,) = pod["spec"]["initContainers"]
    assert init["command"] == ["python", "-m", "scripts.create_topics"]
    assert init["envFrom"] == pod["spec"]["containers"][0]["envFrom"]
    assert init["image"] == pod["spec"]["containers"][0]["image"]
