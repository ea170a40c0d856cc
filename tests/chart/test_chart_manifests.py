"""The chart rendered for three value sets: every manifest valid for its kind and yamllint-clean,
the values valid against values.schema.json."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import jsonschema
import pytest

from tests.chart.chart import CHART, VALUE_SETS, Renderer, by_kind, value_file
from tests.chart.manifest_checks import InvalidManifest, check_manifest, lint_problems

SCHEMA = json.loads((CHART / "values.schema.json").read_text())
KINDS_EVERYWHERE = {"ConfigMap", "Service", "StatefulSet"}
EXPECTED_KINDS = {
    "default": KINDS_EVERYWHERE
    | {
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "ServiceAccount",
        "ServiceMonitor",
        "PrometheusRule",
    },
    "minimal": KINDS_EVERYWHERE,
}
EXPECTED_KINDS["production"] = EXPECTED_KINDS["default"]


@pytest.mark.parametrize("value_set", VALUE_SETS)
def test_values_match_the_schema(renderer: Renderer, value_set: str) -> None:
    jsonschema.Draft7Validator.check_schema(SCHEMA)
    jsonschema.validate(renderer.values(value_file(value_set)), SCHEMA)


@pytest.mark.parametrize("value_set", VALUE_SETS)
def test_every_manifest_is_valid_for_its_kind(renderer: Renderer, value_set: str) -> None:
    manifests = renderer.manifests(value_file(value_set))
    assert {m["kind"] for m in manifests} == EXPECTED_KINDS[value_set]
    assert len(by_kind(manifests, "Service")) == 2  # the web service and the headless one
    for manifest in manifests:
        check_manifest(manifest)


@pytest.mark.parametrize("value_set", VALUE_SETS)
def test_rendered_yaml_is_lint_clean(renderer: Renderer, value_set: str) -> None:
    assert lint_problems(renderer.text(value_file(value_set))) == []


def test_values_files_and_chart_metadata_are_lint_clean() -> None:
    for path in [CHART / "Chart.yaml", CHART / "values.yaml", *sorted(CHART.glob("ci/*.yaml"))]:
        assert lint_problems(path.read_text()) == [], path


def test_the_checks_reject_a_field_the_schemas_do_not_define(renderer: Renderer) -> None:
    # Not vacuous: one unknown field, in a built-in kind and in each operator kind, fails.
    manifests = renderer.manifests(value_file("production"))
    # Where in each kind the unknown field goes.
    places: list[tuple[str, Callable[[dict[str, Any]], dict[str, Any]]]] = [
        ("StatefulSet", lambda m: m["spec"]["template"]["spec"]["containers"][0]),
        ("ServiceMonitor", lambda m: m["spec"]["endpoints"][0]),
        ("PrometheusRule", lambda m: m["spec"]["groups"][0]["rules"][0]),
    ]
    for kind, place in places:
        broken = copy.deepcopy(by_kind(manifests, kind)[0])
        place(broken)["livenesProbe"] = {}
        with pytest.raises(InvalidManifest):
            check_manifest(broken)
