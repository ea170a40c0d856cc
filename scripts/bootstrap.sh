#!/usr/bin/env bash
# Creates .venv (Python 3.11+) and installs the project with the extras named in $1.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages the suite runs, installed only when their binary is missing: prometheus
# (promtool checks and unit-tests the alert rules; the server scrapes workers in a test).
missing=()
command -v promtool >/dev/null 2>&1 && command -v prometheus >/dev/null 2>&1 || missing+=(prometheus)
if [ "${#missing[@]}" -gt 0 ]; then
  as_root=""
  [ "$(id -u)" -eq 0 ] || as_root="sudo"
  $as_root apt-get update
  DEBIAN_FRONTEND=noninteractive $as_root apt-get install -y --no-install-recommends "${missing[@]}"
fi
extras="${1:-sandbox}"
python_bin="${PYTHON:-python3}"
if [ "$extras" = test ]; then
  # The chart tests render helm/notify with helm/render (Go text/template + sprig), built
  # offline from Debian's packaged Go sources in /usr/share/gocode.
  gocode=/usr/share/gocode/src
  apt_packages=()
  command -v go >/dev/null || apt_packages+=(golang-go)
  [ -d "$gocode/github.com/Masterminds/sprig" ] || apt_packages+=(golang-github-masterminds-sprig-dev)
  [ -d "$gocode/gopkg.in/yaml.v2" ] || apt_packages+=(golang-gopkg-yaml.v2-dev)
  if [ "${#apt_packages[@]}" -gt 0 ]; then
    as_root=()
    [ "$(id -u)" -eq 0 ] || as_root=(sudo)
    "${as_root[@]}" apt-get update -qq
    "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${apt_packages[@]}"
  fi
fi
if [ ! -x .venv/bin/python ]; then
  "$python_bin" -m venv .venv
fi
stamp=".venv/.installed-$extras-$(sha1sum pyproject.toml | cut -c1-12)"
if [ ! -f "$stamp" ]; then
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -e ".[$extras]"
  touch "$stamp"
fi
