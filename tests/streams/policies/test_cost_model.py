"""Cost model: monotone in every argument, decode fast-forward equals the step sum, JSON round trip."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import pytest

from streams.policies.cost_model import FEATURE_NAMES, CostModel
from streams.policies.engine_profiles import PRESETS

MODELS = [p.cost_model for p in PRESETS.values()] + [
    CostModel(c0=0.005, c_tok=1e-5, c_tok_hinge=2e-5, c_seq=3e-6, c_ctx=2e-7, c_pf_attn=1e-9, tok_knee=256,
              cpu_overhead_s=1e-3, cpu_per_seq_s=5e-5),
]
GRID = [0, 1, 7, 64, 255, 256, 257, 1000, 4096]


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("arg", [0, 1, 2])
def test_step_time_monotone_in_each_argument(model: CostModel, arg: int) -> None:
    for base in itertools.product(GRID, [0, 1, 32, 256], [0, 100, 50_000]):
        times = []
        for value in GRID + [10_000, 100_000]:
            args = list(base)
            args[arg] = value
            times.append(model.step_time(*args))
        assert all(a <= b for a, b in itertools.pairwise(times)), (arg, base, times)


@pytest.mark.parametrize("model", MODELS)
def test_step_time_positive_and_zero_for_empty_step(model: CostModel) -> None:
    assert model.step_time(0, 0, 0) == 0.0
    assert model.step_time(0, 1, 10) > 0.0
    assert model.step_time(1, 0, 0) > 0.0


def test_step_time_matches_hand_computation() -> None:
    m = MODELS[-1]
    # 300 prefill + 20 decode = 320 tokens, 64 over the knee; pairs default to 300^2.
    expected = (0.005 + 1e-3 + 1e-5 * 320 + 2e-5 * 64 + (3e-6 + 5e-5) * 20 + 2e-7 * 8000 + 1e-9 * 300**2)
    assert m.step_time(300, 20, 8000) == pytest.approx(expected, rel=1e-12)
    # explicit pairs (two prompts of 150) shrink the quadratic term
    assert m.step_time(300, 20, 8000, prefill_pairs=2 * 150**2) == pytest.approx(
        expected - 1e-9 * (300**2 - 2 * 150**2), rel=1e-12)


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize(("k", "seqs", "ctx"), [(1, 1, 0), (5, 3, 100), (100, 64, 20_000), (37, 200, 1)])
def test_decode_run_time_equals_sum_of_steps(model: CostModel, k: int, seqs: int, ctx: int) -> None:
    total = math.fsum(model.step_time(0, seqs, ctx + i * seqs) for i in range(k))
    assert model.decode_run_time(k, seqs, ctx) == pytest.approx(total, rel=1e-9)


def test_decode_run_time_empty() -> None:
    assert MODELS[0].decode_run_time(0, 5, 100) == 0.0
    assert MODELS[0].decode_run_time(5, 0, 100) == 0.0


def test_json_round_trip_keeps_extra_fields_out(tmp_path: Path) -> None:
    m = MODELS[-1]
    path = tmp_path / "cm.json"
    m.to_json(path, extra={"status": "test", "fit": {"mape_pct": 1.0}})
    assert json.loads(path.read_text())["status"] == "test"
    assert CostModel.from_json(path) == m


@pytest.mark.parametrize("bad", [-1e-6, float("nan"), float("inf")])
def test_rejects_negative_or_non_finite(bad: float) -> None:
    with pytest.raises(ValueError, match="c_ctx"):
        CostModel(c0=0.0, c_tok=0.0, c_tok_hinge=0.0, c_seq=0.0, c_ctx=bad, c_pf_attn=0.0)


def test_from_json_errors_name_the_problem(tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        CostModel.from_json(broken)
    partial = tmp_path / "partial.json"
    partial.write_text(json.dumps({n: 0.0 for n in FEATURE_NAMES[:-1]}))
    with pytest.raises(ValueError, match="c_pf_attn"):
        CostModel.from_json(partial)


def test_a_scaled_model_takes_exactly_that_much_longer_for_every_step() -> None:
    from streams.policies.engine_profiles import get_preset

    base = get_preset("llama2-7b-h100").cost_model
    slow = base.scaled(1.15)
    for args in ((0, 64, 2048 * 64), (512, 0, 0), (300, 17, 9_000)):
        assert slow.step_time(*args) == pytest.approx(1.15 * base.step_time(*args), rel=1e-12)
    assert slow.decode_run_time(10, 8, 4000) == pytest.approx(1.15 * base.decode_run_time(10, 8, 4000), rel=1e-12)
    with pytest.raises(ValueError):
        base.scaled(0.0)
