"""Rendering helm/notify the way `helm template` does, with the Go renderer in helm/render
(Go text/template + sprig, built from Debian's packaged sources: no helm binary, no network)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "notify"
RENDERER_SOURCE = ROOT / "helm" / "render"
VALUE_SETS = ("default", "production", "minimal")
# Debian's golang-*-dev packages install their sources here (GOPATH mode: no module download).
GOPATH = "/usr/share/gocode"


class RenderError(Exception):
    """The chart refused the values (a required value, a failed check)."""


def build_renderer(out_dir: Path) -> Path:
    go = shutil.which("go")
    assert go, "go is missing: scripts/bootstrap.sh installs golang-go"
    binary = out_dir / "render"
    env = {**os.environ, "GO111MODULE": "off", "GOPATH": GOPATH, "GOFLAGS": ""}
    env.setdefault("GOCACHE", str(out_dir / "go-cache"))
    subprocess.run([go, "build", "-o", str(binary), "."], cwd=RENDERER_SOURCE, env=env, check=True)
    return binary


@dataclass(frozen=True)
class Renderer:
    binary: Path

    def _run(self, values: list[Path], *flags: str) -> str:
        args = [str(self.binary), "-name", "notify", "-namespace", "notify", *flags]
        for path in values:
            args += ["-f", str(path)]
        done = subprocess.run([*args, str(CHART)], capture_output=True, text=True)
        if done.returncode != 0:
            raise RenderError(done.stderr.strip())
        return done.stdout

    def values(self, *values: Path) -> dict[str, Any]:
        """The merged values, as helm checks them against values.schema.json."""
        merged: dict[str, Any] = json.loads(self._run(list(values), "-show-values"))
        return merged

    def text(self, *values: Path) -> str:
        return self._run(list(values))

    def manifests(self, *values: Path) -> list[dict[str, Any]]:
        return [doc for doc in yaml.safe_load_all(self.text(*values)) if doc]


def value_file(name: str) -> Path:
    return CHART / "ci" / f"{name}-values.yaml"


def by_kind(manifests: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [m for m in manifests if m["kind"] == kind]


def one(manifests: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = by_kind(manifests, kind)
    assert len(found) == 1, f"{len(found)} {kind}"
    return found[0]
