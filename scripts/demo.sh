#!/usr/bin/env bash
# The README's first command: set up the environment (first run only), then run the end-to-end demo.
#   bash scripts/demo.sh                 # 2,000 requests of the Azure 2023 conv trace at 10x
#   bash scripts/demo.sh --limit 500 --json demo.json
# Every option of `preserve demo --help` can be passed.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash scripts/setup.sh
exec .venv/bin/preserve demo "$@"
