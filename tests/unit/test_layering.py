"""Dependencies point one way (DESIGN.md, Where things live): config -> streams -> tables ->
agents; providers depend on config only and never import faust; patches touch no stage."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# package -> first-party packages it must never import (directly, at any depth of its modules)
FORBIDDEN = {
    "config": {"streams", "tables", "agents", "providers", "patches", "app"},
    "streams": {"tables", "agents", "providers", "app"},
    "tables": {"agents", "providers", "app"},
    "providers": {"streams", "tables", "agents", "patches", "app", "faust"},
    "patches": {"streams", "tables", "agents", "providers", "app"},
    "agents": {"app"},
}


def imported_roots(path: Path) -> set[str]:
    roots: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_a_package_imports_nothing_above_it(package: str) -> None:
    modules = [
        path
        for path in (ROOT / package).rglob("*.py")
        # The sandboxes are test servers that ship with the providers, not providers.
        if "sandboxes" not in path.parts
    ]
    assert modules
    found = {
        f"{path.relative_to(ROOT)} imports {root}"
        for path in modules
        for root in imported_roots(path) & FORBIDDEN[package]
    }
    assert not found, sorted(found)
