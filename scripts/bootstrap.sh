#!/usr/bin/env bash
# Creates .venv (Python 3.11+) and installs the project with the extras named in $1.
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-sandbox}"
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
