#!/usr/bin/env bash
# Creates .venv (Python 3.11+) and installs the project with the extras named in $1.
set -euo pipefail
cd "$(dirname "$0")/.."

extras="${1:-sandbox}"
python_bin="${PYTHON:-python3}"
if [ "$extras" = test ]; then
  # Debian packages the suite runs, each installed only when it is missing: prometheus
  # (promtool checks and unit-tests the alert rules; the server scrapes workers in a test),
  # chromium (the operator page is read as a browser renders it), and Go with sprig's and
  # yaml.v2's sources (helm/render renders the chart offline, from /usr/share/gocode).
  gocode=/usr/share/gocode/src
  apt_packages=()
  command -v promtool >/dev/null && command -v prometheus >/dev/null || apt_packages+=(prometheus)
  command -v chromium >/dev/null || apt_packages+=(chromium)
  command -v go >/dev/null || apt_packages+=(golang-go)
  [ -d "$gocode/github.com/Masterminds/sprig" ] || apt_packages+=(golang-github-masterminds-sprig-dev)
  [ -d "$gocode/gopkg.in/yaml.v2" ] || apt_packages+=(golang-gopkg-yaml.v2-dev)
  if [ "${#apt_packages[@]}" -gt 0 ]; then
    as_root=()
    [ "$(id -u)" -eq 0 ] || as_root=(sudo)
    "${as_root[@]}" apt-get update -qq
    "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${apt_packages[@]}"
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
