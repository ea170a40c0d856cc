#!/usr/bin/env bash
# One command: environment, embedded broker (unless NOTIFY_KAFKA_BOOTSTRAP is set), provider
# sandboxes, a worker, a demo load, and what each sandbox received.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh sandbox
exec .venv/bin/python -m scripts.demo "$@"
