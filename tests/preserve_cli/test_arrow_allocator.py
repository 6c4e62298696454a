"""`preserve` runs pyarrow on the C allocator (the archive worker's RSS kept growing under mimalloc)."""

from __future__ import annotations

import os
import subprocess
import sys

_PROBE = "import preserve_cli.main, pyarrow as pa; print(pa.default_memory_pool().backend_name)"


def _pool(env: dict[str, str]) -> str:
    out = subprocess.run([sys.executable, "-c", _PROBE], env=env, check=True, capture_output=True, text=True)
    return out.stdout.strip()


def test_cli_selects_system_pool_before_pyarrow_loads() -> None:
    env = {k: v for k, v in os.environ.items() if k != "ARROW_DEFAULT_MEMORY_POOL"}
    assert _pool(env) == "system"


def test_user_choice_of_pool_wins() -> None:
    assert _pool({**os.environ, "ARROW_DEFAULT_MEMORY_POOL": "mimalloc"}) == "mimalloc"
