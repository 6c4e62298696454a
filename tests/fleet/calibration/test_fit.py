"""The calibration fit recovers known coefficients, reports errors, and its CLI reads/writes files."""

from __future__ import annotations

import csv
import random
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from fleet.calibration.fit import Measurement, fit_cost_model, nnls, read_measurements
from preserve_cli.calibrate_cmd import calibrate
from streams.policies.cost_model import CostModel

TRUE = CostModel(c0=0.0068, c_tok=1.0e-5, c_tok_hinge=1.6e-5, c_seq=9e-6, c_ctx=2.1e-7, c_pf_attn=1.4e-9,
                 tok_knee=256.0)


def synthetic(model: CostModel, noise: float = 0.0, seed: int = 0) -> list[Measurement]:
    rng = random.Random(seed)
    rows = []
    for b, c in [(1, 128), (1, 4096), (8, 1024), (32, 2048), (64, 512), (128, 512), (256, 256), (16, 4096)]:
        rows.append(Measurement(0, b, b * c, 0.0, model.step_time(0, b, b * c) * (1 + rng.gauss(0, noise))))
    for m, length in [(1, 128), (1, 512), (1, 2048), (1, 4096), (8, 128), (4, 1024), (2, 4096), (64, 32)]:
        pairs = float(m * length * length)
        t = model.step_time(m * length, 0, 0, pairs)
        rows.append(Measurement(m * length, 0, 0, pairs, t * (1 + rng.gauss(0, noise))))
    for chunk, b, c in [(512, 32, 512), (2048, 64, 1024), (128, 8, 1024)]:
        pairs = float(chunk * chunk)
        rows.append(Measurement(chunk, b, b * c, pairs, model.step_time(chunk, b, b * c, pairs)))
    return rows


def test_nnls_matches_unconstrained_when_solution_is_positive_and_clips_otherwise() -> None:
    a = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    assert nnls(a, a @ np.array([2.0, 3.0])) == pytest.approx([2.0, 3.0])
    assert nnls(a, np.array([1.0, -1.0, 0.0]))[1] == 0.0


def test_fit_recovers_known_coefficients_exactly_without_noise() -> None:
    result = fit_cost_model(synthetic(TRUE))
    assert result.model.tok_knee == TRUE.tok_knee
    for name in ("c0", "c_tok", "c_tok_hinge", "c_seq", "c_ctx", "c_pf_attn"):
        assert getattr(result.model, name) == pytest.approx(getattr(TRUE, name), rel=1e-6), name
    assert result.mape < 1e-6


def test_fit_with_noise_stays_close_and_reports_error() -> None:
    result = fit_cost_model(synthetic(TRUE, noise=0.01, seed=3))
    assert 0.1 < result.mape < 3.0
    assert result.max_abs_pct >= result.mape
    for args in [(0, 1, 1024), (0, 64, 65536), (2048, 0, 0), (512, 32, 16384)]:
        assert result.model.step_time(*args) == pytest.approx(TRUE.step_time(*args), rel=0.05)


def test_fit_keeps_cpu_overheads_out_of_the_error() -> None:
    result = fit_cost_model(synthetic(TRUE), cpu_overhead_s=0.002, cpu_per_seq_s=1e-5)
    assert result.mape < 1e-6
    assert result.model.step_time(0, 10, 1000) == pytest.approx(TRUE.step_time(0, 10, 1000) + 0.002 + 1e-4)


def _write_csv(path: Path, rows: list[Measurement], bad_line: bool = False) -> None:
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["kind", "prefill_tokens", "decode_seqs", "context_tokens", "prefill_pairs", "mode", "median_s"])
        for r in rows:
            w.writerow([r.kind, r.prefill_tokens, r.decode_seqs, r.context_tokens, r.prefill_pairs, "graph",
                        r.seconds])
        w.writerow(["decode", 0, 4, 400, 0, "eager", 0.5])  # other modes are not fitted
        if bad_line:
            w.writerow(["decode", "x", 4, 400, 0, "graph", 0.01])


def test_read_measurements_filters_mode_and_names_bad_line(tmp_path: Path) -> None:
    path = tmp_path / "m.csv"
    rows = synthetic(TRUE)
    _write_csv(path, rows)
    assert len(read_measurements(path)) == len(rows)
    assert len(read_measurements(path, mode="eager")) == 1
    _write_csv(path, rows, bad_line=True)
    with pytest.raises(ValueError, match=rf"m.csv:{len(rows) + 3}: bad value"):
        read_measurements(path)


def test_cli_fit_writes_loadable_json(tmp_path: Path) -> None:
    path, out = tmp_path / "m.csv", tmp_path / "cm.json"
    _write_csv(path, synthetic(TRUE))
    res = CliRunner().invoke(calibrate, ["fit", "--measurements", str(path), "--out", str(out),
                                         "--cpu-overhead-s", "0.001"])
    assert res.exit_code == 0, res.output
    assert "MAPE" in res.output
    model = CostModel.from_json(out)
    assert model.cpu_overhead_s == 0.001
    assert model.c_ctx == pytest.approx(TRUE.c_ctx, rel=1e-6)


def test_cli_measure_without_gpu_fails_clearly(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    res = CliRunner().invoke(calibrate, ["measure", "--out", str(tmp_path / "m.csv")])
    assert res.exit_code != 0
    assert "no CUDA GPU" in res.output
