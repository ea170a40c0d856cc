#!/usr/bin/env bash
# One command: environment, lint, type check and the whole test suite (unit, functional,
# integration on the embedded broker and the provider sandboxes).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh test
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy .  # everything, tests included
.venv/bin/mypy --strict agents api config patches providers streams tables bench scripts tests app.py
# The long acceptance scenarios (marked `long`: the SIGKILLed campaign, crash failover, held
# retries at a rebalance, ...) run with NOTIFY_TEST_LONG=1; each has a shorter sibling in the
# default run, which has to fit the CI's 20 minutes.
if [[ "${NOTIFY_TEST_LONG:-0}" == "1" ]]; then
    .venv/bin/python -m pytest -q --durations=25 "$@"
else
    .venv/bin/python -m pytest -q --durations=25 -m "not long" "$@"
fi
