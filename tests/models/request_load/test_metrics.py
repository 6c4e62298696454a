from __future__ import annotations

import itertools

import numpy as np
import pytest

from models.request_load.metrics import kendall_tau_b, length_metrics


def _tau_brute(x: np.ndarray, y: np.ndarray) -> float:
    s = nx = ny = 0
    for i, j in itertools.combinations(range(len(x)), 2):
        a, b = np.sign(x[i] - x[j]), np.sign(y[i] - y[j])
        s += a * b
        nx += a != 0
        ny += b != 0
    return s / np.sqrt(nx * ny)


def test_kendall_matches_brute_force_with_ties() -> None:
    rng = np.random.default_rng(0)
    x = rng.integers(0, 5, 60).astype(float)
    y = x + rng.integers(0, 3, 60)
    assert kendall_tau_b(x, y, chunk=7) == pytest.approx(_tau_brute(x, y))
    assert kendall_tau_b(x, x) == pytest.approx(1.0)
    assert kendall_tau_b(x, -x) == pytest.approx(-1.0)


def test_length_metrics_values() -> None:
    true = np.array([100.0, 200.0, 300.0, 400.0])
    pred = np.array([110.0, 260.0, 400.0, 600.0])
    m = length_metrics(pred, true)
    assert m["mae"] == pytest.approx((10 + 60 + 100 + 200) / 4)
    assert (m["acc_25"], m["acc_50"], m["acc_100"]) == (0.25, 0.25, 0.75)
    assert m["kendall_tau"] == pytest.approx(1.0)
    assert length_metrics(true, true)["r2"] == pytest.approx(1.0)
    assert length_metrics(np.full(4, 250.0), true)["kendall_tau"] is None  # constant prediction: undefined
