"""Post-hoc calibration: held-out coverage matches nominal and summed means match summed lengths, per model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from models.request_load.calibration import (
    OUTPUT_TAUS,
    POOLED,
    CalibrationSet,
    base_from_quantiles,
    fit_calibration,
    quantile_name,
)

# serving model -> (log bias of the base predictor, true spread / predicted spread): the base is biased and too
# narrow, differently per model, as the encoder was (p10 covered 26%, p90 83%; sums 0.80-1.09 by model)
MODELS = {"short-model": (-0.3, 1.6), "long-model": (0.25, 1.3), "rare-model": (0.1, 1.4)}


def _rows(n_per: dict[str, int], seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str], list[str]]:
    rng = np.random.default_rng(seed)
    c, s, y, models, groups = [], [], [], [], []
    for m, n in n_per.items():
        bias, widen = MODELS[m]
        centre = rng.uniform(np.log(40), np.log(900), n)
        spread = rng.uniform(0.2, 0.5, n)
        c.append(centre)
        s.append(spread)
        y.append(np.expm1(centre + bias + widen * spread * rng.standard_normal(n)))
        models += [m] * n
        groups += [f"{seed}-{m}-{i}" for i in range(n)]
    return np.concatenate(c), np.concatenate(s), np.concatenate(y), models, groups


def test_held_out_coverage_and_sums_match_per_model() -> None:
    c, s, y, models, groups = _rows({"short-model": 1500, "long-model": 1500, "rare-model": 40}, seed=0)
    cal = fit_calibration(c, s, y, models, groups)
    assert np.isfinite(cal.k)  # models differ: CV keeps per-model curves rather than only the pooled one
    tc, ts, ty, tmodels, _ = _rows({"short-model": 4000, "long-model": 4000, "rare-model": 4000}, seed=1)
    out = cal.apply(tc, ts, tmodels)
    q = out.by_name()
    mo = np.array(tmodels)
    for m in ("short-model", "long-model"):
        sel = mo == m
        assert float((ty[sel] <= q["p10"][sel]).mean()) == pytest.approx(0.10, abs=0.03)
        assert float((ty[sel] <= q["p90"][sel]).mean()) == pytest.approx(0.90, abs=0.03)
        assert float(out.mean[sel].sum() / ty[sel].sum()) == pytest.approx(1.0, abs=0.05)
    # 40 rows of the rare model: its curve leans on the pooled one, still roughly right
    sel = mo == "rare-model"
    assert 0.80 <= float((ty[sel] <= q["p90"][sel]).mean()) <= 0.97
    # quantiles are ordered p10 <= ... <= p99
    assert np.all(np.diff(out.quantiles, axis=1) >= 0)
    assert [quantile_name(t) for t in OUTPUT_TAUS][-2:] == ["p95", "p99"]


def test_unknown_model_gets_the_pooled_curve_and_round_trips(tmp_path: Path) -> None:
    c, s, y, models, groups = _rows({"short-model": 300, "long-model": 300}, seed=2)
    cal = fit_calibration(c, s, y, models, groups)
    a = cal.apply(c[:5], s[:5], ["never-seen"] * 5)
    b = cal.apply(c[:5], s[:5], [POOLED] * 5)
    np.testing.assert_allclose(a.quantiles, b.quantiles)
    saved = CalibrationSet(cal, cal, {"note": "test"})
    saved.save(tmp_path)
    back = CalibrationSet.load(tmp_path)
    assert back.model is not None and back.record == {"note": "test"}
    np.testing.assert_allclose(back.model.apply(c, s, models).quantiles, cal.apply(c, s, models).quantiles,
                               rtol=1e-4)


def test_mean_base_must_be_given_when_chosen_and_bad_input_is_refused() -> None:
    c, s, y, models, groups = _rows({"short-model": 400, "long-model": 400}, seed=3)
    head = np.expm1(c) * 1.1  # a candidate base for the mean
    cal = fit_calibration(c, s, y, models, groups, mean_bases={"head": head})
    if cal.mean_base == "head":
        with pytest.raises(ValueError, match="mean_bases"):
            cal.apply(c, s, models)
    with pytest.raises(ValueError):
        fit_calibration(c[:10], s[:10], y[:9], models[:10], groups[:10])


def test_base_from_quantiles_reads_centre_and_spread() -> None:
    taus = (0.1, 0.5, 0.9)
    q = np.array([[np.expm1(1.0), np.expm1(2.0), np.expm1(3.0)]])
    c, s = base_from_quantiles(q, taus)
    assert c[0] == pytest.approx(2.0) and s[0] == pytest.approx(2.0 / (2 * 1.2815515655446004))


def test_int8_engine_prefers_its_own_calibration_file(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from models.request_load.calibration import load_calibration

    c, s, y, models, groups = _rows({"short-model": 200, "long-model": 200}, seed=4)
    fp32 = fit_calibration(c, s, y, models, groups)
    assert load_calibration(tmp_path) is None  # none fitted: uncalibrated answers, logged
    CalibrationSet(fp32, fp32, {"engine": "fp32"}).save(tmp_path)
    loaded = load_calibration(tmp_path, int8=True)  # no int8 file yet: the fp32 one, with a warning
    assert loaded is not None and loaded.record == {"engine": "fp32"}
    assert any("calibration_int8.json" in r.message for r in caplog.records)
    CalibrationSet(fp32, fp32, {"engine": "int8"}).save(tmp_path, int8=True)
    int8 = load_calibration(tmp_path, int8=True)
    fp = load_calibration(tmp_path)
    assert int8 is not None and int8.record == {"engine": "int8"}
    assert fp is not None and fp.record == {"engine": "fp32"}
