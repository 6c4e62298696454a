"""The measuring script's grid respects the card's limits, and its tiny CPU smoke run writes a fittable CSV."""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from fleet.calibration import measure_llama_step as mls  # noqa: E402
from fleet.calibration.fit import read_measurements  # noqa: E402


def test_grid_respects_kv_budget_and_engine_limits() -> None:
    grid = mls.build_grid(kv_budget=100_000, max_batched=8192, max_len=4096)
    assert {s.kind for s in grid} == {"decode", "prefill", "chunked", "mixed"}
    for s in grid:
        assert s.kv_tokens <= 100_000
        assert s.n_pf * s.chunk + s.n_dec <= 8192
        assert s.prefix + s.chunk <= 4096 and s.ctx <= 4096
    smaller = mls.build_grid(kv_budget=20_000)
    assert len(smaller) < len(grid)


def test_tiny_cpu_run_writes_measurements(tmp_path: Path) -> None:
    out = tmp_path / "m.csv"
    assert mls.main(["--tiny", "--out", str(out)]) == 0
    rows = read_measurements(out, mode="cpu")
    assert len(rows) == len(mls.tiny_grid())
    assert all(r.seconds > 0 for r in rows)
    assert out.with_suffix(".meta.json").is_file()
