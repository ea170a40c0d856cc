#!/usr/bin/env bash
# Creates .venv (Python 3.11+) and installs the project with the extras named in $1.
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-sandbox}"
# The tests (and `bench.run --redis`) start a real redis-server for the shared provider token
# buckets: Debian's package, installed only when the binary is missing.
if [ "$extras" = "test" ] && ! command -v redis-server >/dev/null 2>&1; then
  sudo_cmd=""
  if [ "$(id -u)" -ne 0 ]; then sudo_cmd="sudo"; fi
  $sudo_cmd apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -q redis-server
fi
python_bin="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$python_bin" -m venv .venv
fi
stamp=".venv/.installed-$extras-$(sha1sum pyproject.toml | cut -c1-12)"
if [ ! -f "$stamp" ]; then
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -e ".[$extras]"
  touch "$stamp"
fi
