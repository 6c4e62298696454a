from __future__ import annotations

import numpy as np
import pytest

from models.workload import protocol as pr
from models.workload.evaluate import protocol_eval
from models.workload.series_io import WorkloadSeries


def test_provisioning_hand_computed() -> None:
    fc = np.array([[10.0], [25.0], [5.0]])
    y = np.array([[12.0], [18.0], [4.0]])
    out = pr.provisioning(fc, y, np.ones_like(y, bool), capacity=10.0, window_s=3600.0)
    # instances 1, 3, 1; needed 2, 2, 1 -> window 0 under-provisioned, window 1 one idle instance for an hour
    assert out["under_share"] == pytest.approx(1 / 3)
    assert out["over_instance_hours"] == pytest.approx(1.0)
    assert out["needed_instance_hours"] == pytest.approx(5.0)
    m = pr.matched_headroom(fc, y, np.ones_like(y, bool), 10.0, 3600.0, under_share=0.0)
    assert m["headroom"] == pytest.approx(1.01) and m["under_share"] == 0.0  # 10.1 -> 2 instances


def test_rolling_conformal_covers_and_follows_a_noise_change() -> None:
    rng = np.random.default_rng(0)
    n_cal, n = 300, 900
    origins = np.arange(n_cal, n_cal + n)
    sd = np.where(origins < n_cal + 300, 0.1, 0.3)  # the test gets noisier than the calibration period
    point = np.full((n, 2), 100.0)
    actual = np.expm1(np.log1p(point) + rng.normal(0, 1, (n, 2)) * sd[:, None])
    cal_point = np.full((n_cal, 2), 100.0)
    cal_actual = np.expm1(np.log1p(cal_point) + rng.normal(0, 0.1, (n_cal, 2)))
    mask = np.ones((n, 2), bool)
    q = pr.rolling_conformal(point, origins, pr.log_residuals(cal_point, cal_actual), np.arange(n_cal),
                             np.ones((n_cal, 2), bool), pr.log_residuals(point, actual), mask, window=200)
    late = slice(600, None)  # after the window has refilled with the noisier residuals
    cov = pr.coverage({k: v[late] for k, v in q.items()}, actual[late], mask[late])
    assert abs(cov["0.9"] - 0.9) < 0.05 and abs(cov["0.5"] - 0.5) < 0.06 and cov["0.99"] > 0.96
    assert np.all(q["0.5"] <= q["0.9"]) and np.all(q["0.9"] <= q["0.99"])
    # a residual is used only once its outcome is known: changing a future outcome changes no earlier quantile
    actual2 = actual.copy()
    actual2[500, 0] *= 100
    q2 = pr.rolling_conformal(point, origins, pr.log_residuals(cal_point, cal_actual), np.arange(n_cal),
                              np.ones((n_cal, 2), bool), pr.log_residuals(point, actual2), mask, window=200)
    assert np.array_equal(q2["0.99"][:501], q["0.99"][:501]) and not np.array_equal(q2["0.99"], q["0.99"])


def test_block_bootstrap_paired_difference() -> None:
    rng = np.random.default_rng(1)
    a = rng.random(600)
    mask = np.ones(600, bool)
    same = pr.block_bootstrap(a, mask, a.copy())
    assert same["value"] == 0 and same["lo"] == 0 and same["hi"] == 0
    shifted = pr.block_bootstrap(a + 0.1, mask, a)
    assert shifted["value"] == pytest.approx(0.1) and shifted["lo"] == pytest.approx(0.1)
    noisy = pr.block_bootstrap(a, mask)
    assert noisy["lo"] < a.mean() < noisy["hi"]


def test_protocol_eval_periods_do_not_overlap_and_validation_never_reads_the_test() -> None:
    n = 400
    t = np.arange(n)
    req = 100 + 30 * np.sin(2 * np.pi * t / 24)
    s = WorkloadSeries(values=np.stack([req, req * 10, req * 5], 1), window_start=t * 3600.0, window_s=3600.0,
                       valid=np.ones(n, bool), available=("requests", "prompt_tokens", "output_tokens"),
                       unit="per_window", source="synthetic")
    r = protocol_eval(s, 3, "requests", ["last_value", "ewma"])
    p = r["periods"]
    assert p["train_windows"] == [0, p["calibration_origins"][0] + 1]
    assert p["calibration_origins"][1] + 1 == p["test_origins"][0] == round(n * 0.7) - 1
    s2 = WorkloadSeries(values=s.values.copy(), window_start=s.window_start, window_s=3600.0, valid=s.valid,
                        available=s.available, unit="per_window", source="synthetic")
    s2.values[round(n * 0.7):] *= 1000  # only the test period differs
    v1, v2 = (protocol_eval(x, 3, "requests", ["last_value"], split="validation") for x in (s, s2))
    assert v1["models"] == v2["models"] and v1["periods"]["test_origins"][1] < round(n * 0.7)


def test_online_choice_switches_to_the_candidate_with_the_smaller_recent_error() -> None:
    s, h = 200, 2
    actual = np.full((s, h), 100.0)
    net = np.where(np.arange(s)[:, None] < 100, 100.0, 300.0) * np.ones((s, h))  # good, then far off
    lv = np.full((s, h), 110.0)
    out = pr.online_choice({"net": net, "lv": lv}, actual, np.ones((s, h), bool), prefer="net", window=10, min_n=5)
    assert (out[:100] == 100.0).all()  # the network is better: kept
    assert (out[100:102] == 300.0).all()  # its errors are not known yet at these origins
    assert (out[120:] == 110.0).all()  # persistence once the network's recent errors are larger
