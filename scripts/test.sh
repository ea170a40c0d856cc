#!/usr/bin/env bash
# One command: environment, lint, type check and the whole test suite (unit, functional,
# integration on the embedded broker and the provider sandboxes).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh test
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy .  # everything, tests included
.venv/bin/mypy --strict agents api config patches providers streams tables bench scripts app.py
.venv/bin/python -m pytest -q --durations=25 "$@"
