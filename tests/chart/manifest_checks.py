"""Checks a rendered manifest against the schema of its kind: Kubernetes' own OpenAPI schemas
(kubernetes-validate, strict: unknown fields fail) for built-in kinds, and for the Prometheus
Operator's ServiceMonitor and PrometheusRule, models generated from the operator's CRD
openAPIV3Schema (cloudcoil-models-prometheus-operator): a manifest must validate and survive
the round trip unchanged, so a field the CRD does not know is caught, not silently dropped."""

from __future__ import annotations

from typing import Any

import kubernetes_validate
import yamllint.config
import yamllint.linter
from cloudcoil.models.prometheus_operator import v1 as monitoring_v1

# The oldest Kubernetes the chart supports (Chart.yaml kubeVersion) and the newest known here.
KUBERNETES_VERSIONS = ("1.27", kubernetes_validate.latest_version())
OPERATOR_KINDS = {"ServiceMonitor", "PrometheusRule"}

# helm's toYaml writes sequences flush with their key; the alert descriptions are long lines.
YAMLLINT = yamllint.config.YamlLintConfig(
    """
extends: default
rules:
  line-length: {max: 200}
  indentation: {spaces: 2, indent-sequences: whatever}
  comments: {min-spaces-from-content: 1}
  document-start: disable  # values files and Chart.yaml are single documents
"""
)


class InvalidManifest(Exception):
    pass


def check_manifest(manifest: dict[str, Any]) -> None:
    kind = manifest["kind"]
    if manifest["apiVersion"] == "monitoring.coreos.com/v1" and kind in OPERATOR_KINDS:
        check_operator_resource(manifest)
        return
    for version in KUBERNETES_VERSIONS:
        try:
            kubernetes_validate.validate(manifest, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            raise InvalidManifest(f"{kind} (Kubernetes {version}): {error.message}") from error


def check_operator_resource(manifest: dict[str, Any]) -> None:
    model = getattr(monitoring_v1, manifest["kind"])
    try:
        parsed = model.model_validate(manifest)
    except ValueError as error:
        raise InvalidManifest(f"{manifest['kind']}: {error}") from error
    round_trip = parsed.model_dump(by_alias=True, exclude_unset=True, mode="json")
    if round_trip != manifest:
        raise InvalidManifest(f"{manifest['kind']}: fields its CRD does not define")


def lint_problems(text: str) -> list[str]:
    return [f"{p.line}:{p.column} {p.rule}: {p.desc}" for p in yamllint.linter.run(text, YAMLLINT)]
