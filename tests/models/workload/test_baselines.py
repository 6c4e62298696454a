from __future__ import annotations

import numpy as np
import pytest

from models.workload.baselines import baseline_forecast, ewma, seasonal_naive


def _series(n: int) -> np.ndarray:
    return np.arange(n, dtype=float)[:, None] * np.array([[1.0, 10.0, 100.0]])


def test_last_value() -> None:
    v = _series(10)
    out = baseline_forecast("last_value", v, np.array([4, 9]), 3, 600.0)
    assert out.shape == (2, 3, 3)
    assert (out[0, :, 0] == 4).all() and (out[1, :, 2] == 900).all()


def test_seasonal_naive_day_uses_same_time_yesterday() -> None:
    period = 144  # 600 s windows
    v = np.tile(np.arange(period, dtype=float), 3)[:, None].repeat(3, axis=1)
    origin = 2 * period + 10
    out = baseline_forecast("seasonal_naive_day", v, np.array([origin]), 6, 600.0)
    assert out[0, :, 0].tolist() == [11, 12, 13, 14, 15, 16]


def test_seasonal_naive_horizon_longer_than_period_and_short_history() -> None:
    v = np.arange(20, dtype=float)[:, None]
    # period 4: h=5 reaches back two periods (t+5-8); an origin without a full period falls back to last value
    out = seasonal_naive(v, np.array([10, 1]), 5, 4)
    assert out[0, :, 0].tolist() == [7, 8, 9, 10, 7]
    assert out[1, :, 0].tolist()[-1] == 1  # 1 + 5 - 8 < 0


def test_seasonal_naive_week() -> None:
    v = np.zeros((2100, 3))
    v[2015 + 2 - 1008] = 7.0  # seen at horizon 2 from origin 2015
    out = baseline_forecast("seasonal_naive_week", v, np.array([2015]), 3, 600.0)
    assert out[0, 1, 0] == 7.0 and out[0, 0, 0] == 0.0


def test_ewma_level() -> None:
    v = np.array([[0.0], [10.0], [10.0]])
    out = ewma(v, np.array([1, 2]), 2, alpha=0.5)
    assert out[:, 0, 0].tolist() == [5.0, 7.5] and (out[:, 0] == out[:, 1]).all()


def test_unknown_baseline() -> None:
    with pytest.raises(ValueError, match="unknown baseline"):
        baseline_forecast("prophet", _series(5), np.array([1]), 1, 600.0)
