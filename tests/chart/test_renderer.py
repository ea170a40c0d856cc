"""helm/render behaves like helm where the chart depends on it."""

from __future__ import annotations

from pathlib import Path

import yaml

from tests.chart.chart import Renderer, one, value_file


def test_a_null_removes_a_default_and_later_files_win(renderer: Renderer, tmp_path: Path) -> None:
    first = tmp_path / "first.yaml"
    first.write_text(yaml.safe_dump({"replicas": 4, "nodeSelector": None}))
    second = tmp_path / "second.yaml"
    second.write_text(yaml.safe_dump({"replicas": 5}))
    values = renderer.values(value_file("default"), first, second)
    assert "nodeSelector" not in values
    assert values["replicas"] == 5
    assert values["kafka"]["bootstrap"] == "kafka-bootstrap.kafka.svc:9092"  # deep merge


def test_large_numbers_reach_the_configmap_as_integers(renderer: Renderer, tmp_path: Path) -> None:
    # helm holds every number of the values as a float64, which Go prints as 1e+06; the chart
    # writes non-string settings as JSON, which pydantic reads back as 1000000.
    override = tmp_path / "override.yaml"
    override.write_text(yaml.safe_dump({"settings": {"retry_pending_cap": 1_000_000}}))
    manifests = renderer.manifests(value_file("default"), override)
    assert one(manifests, "ConfigMap")["data"]["NOTIFY_RETRY_PENDING_CAP"] == "1000000"


def test_a_changed_setting_changes_the_pods_checksum(renderer: Renderer, tmp_path: Path) -> None:
    override = tmp_path / "override.yaml"
    override.write_text(yaml.safe_dump({"settings": {"rate_limit_per_user": 20}}))

    def checksum(*files: Path) -> str:
        statefulset = one(renderer.manifests(*files), "StatefulSet")
        annotations = statefulset["spec"]["template"]["metadata"]["annotations"]
        return str(annotations["checksum/config"])

    assert checksum(value_file("default")) != checksum(value_file("default"), override)
