"""Baseline forecasters: last value, seasonal naive (daily and weekly), EWMA.

Vectorised over forecast origins so that the rolling-origin evaluation and the online forecaster share the same
code. ``values`` is (N, C); ``origins`` are indices of the last observed window; the result is (S, H, C).
Where a seasonal lag reaches before the start of the series, the last value is used (and reported by
:func:`seasonal_available`).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from models.workload.features import DAY_S, WEEK_S

__all__ = ["BASELINES", "EWMA_ALPHA", "last_value", "seasonal_naive", "ewma", "seasonal_period",
           "seasonal_available", "baseline_forecast"]

EWMA_ALPHA = 0.5  # weight of the newest window; fixed (not tuned per series)


def seasonal_period(window_s: float, season_s: float) -> int:
    return max(1, int(round(season_s / window_s)))


def last_value(values: np.ndarray, origins: np.ndarray, horizon: int, window_s: float) -> np.ndarray:
    return np.repeat(values[origins][:, None, :], horizon, axis=1)


def seasonal_naive(values: np.ndarray, origins: np.ndarray, horizon: int, period: int) -> np.ndarray:
    """y[t+h] = y[t+h-k*period] with the smallest k >= 1 that lands at or before t (falls back to last value)."""
    h = np.arange(1, horizon + 1)
    k = np.ceil(h / period).astype(int)  # horizons longer than the period reach back several periods
    idx = origins[:, None] + h[None, :] - k[None, :] * period  # (S, H)
    out = values[np.maximum(idx, 0)]
    short = idx < 0
    if short.any():
        out[short] = np.repeat(values[origins][:, None, :], horizon, axis=1)[short]
    return out


def seasonal_available(origin: int, period: int) -> bool:
    return origin - period + 1 >= 0


def ewma(values: np.ndarray, origins: np.ndarray, horizon: int, alpha: float = EWMA_ALPHA) -> np.ndarray:
    """Flat forecast at the exponentially weighted level of the windows up to each origin."""
    level = np.empty_like(values, dtype=float)
    level[0] = values[0]
    for t in range(1, len(values)):
        level[t] = alpha * values[t] + (1 - alpha) * level[t - 1]
    return np.repeat(level[origins][:, None, :], horizon, axis=1)


Baseline = Callable[[np.ndarray, np.ndarray, int, float], np.ndarray]

BASELINES: dict[str, Baseline] = {
    "last_value": last_value,
    "seasonal_naive_day": lambda v, o, h, w: seasonal_naive(v, o, h, seasonal_period(w, DAY_S)),
    "seasonal_naive_week": lambda v, o, h, w: seasonal_naive(v, o, h, seasonal_period(w, WEEK_S)),
    "ewma": lambda v, o, h, w: ewma(v, o, h),
}


def baseline_forecast(name: str, values: np.ndarray, origins: np.ndarray, horizon: int, window_s: float) -> np.ndarray:
    if name not in BASELINES:
        raise ValueError(f"unknown baseline {name!r}; choose one of {sorted(BASELINES)}")
    return BASELINES[name](np.asarray(values, dtype=float), np.asarray(origins, dtype=np.int64), horizon, window_s)
