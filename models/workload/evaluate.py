"""Rolling-origin evaluation of the forecasters on one series (the JSON of issue 6).

The networks are trained once on the first ``1 - test_frac`` of the series (early stopping on the training
part's own tail); every window of the last ``test_frac`` is then an origin: each model forecasts horizons
1..H from the data up to it. Pairs (origin, origin + h) are scored when both windows are valid (not gaps). All
models are scored on exactly the same pairs. MAPE skips zero actuals; SMAPE is ``2|e| / (|y| + |yhat|)`` with
0/0 = 0; both are fractions (0.1 = 10%). MAE is in the series' unit.

``split="validation"`` runs the same protocol inside the training part only: the series is cut to its first
``1 - test_frac`` and the origins are its last ``val_frac`` (the training configuration's early-stopping share).
Settings are chosen on that split, so the test part is never looked at while choosing them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from models.workload.baselines import BASELINES, baseline_forecast, seasonal_period
from models.workload.features import DAY_S, TARGETS, WEEK_S
from models.workload.model import ForecasterConfig
from models.workload.series_io import WorkloadSeries
from models.workload.train import TrainConfig, fit_forecaster

__all__ = ["ALL_MODELS", "metrics", "rolling_origin_eval"]

ALL_MODELS = ("mlstm", "lstm", "seasonal_naive_day", "seasonal_naive_week", "last_value", "ewma")


def metrics(pred: np.ndarray, actual: np.ndarray, mask: np.ndarray) -> dict[str, float]:
    """pred, actual, mask: same shape; returns mape, smape, mae over the masked entries."""
    p, y = pred[mask], actual[mask]
    denom = np.abs(y) + np.abs(p)
    smape = np.where(denom > 0, 2 * np.abs(p - y) / np.where(denom > 0, denom, 1), 0.0)
    nz = y != 0
    return {"mape": float(np.mean(np.abs(p[nz] - y[nz]) / np.abs(y[nz]))) if nz.any() else float("nan"),
            "smape": float(np.mean(smape)) if len(smape) else float("nan"),
            "mae": float(np.mean(np.abs(p - y))) if len(y) else float("nan")}


def _score(pred: np.ndarray, actual: np.ndarray, mask: np.ndarray) -> dict[str, Any]:
    """pred/actual/mask (S, H): overall metrics (all horizons pooled) plus ``by_horizon``."""
    out: dict[str, Any] = metrics(pred, actual, mask)
    out["by_horizon"] = {str(h + 1): metrics(pred[:, h], actual[:, h], mask[:, h]) for h in range(pred.shape[1])}
    return out


def _neural_forecasts(series: WorkloadSeries, split: int, origins: np.ndarray, cfg: ForecasterConfig,
                      tcfg: TrainConfig, refit_every: int) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Train on the first ``split`` windows, forecast every origin; optionally fine-tune as origins advance."""
    v, ws, ok = series.values, series.window_start, series.valid
    ff = fit_forecaster(v[:split], ws[:split], series.window_s, cfg, tcfg, valid=ok[:split])
    info = {k: ff.info[k] for k in ("epochs", "member_epochs", "train_s", "params", "params_per_member", "samples",
                                    "val_loss")}
    step = refit_every if refit_every > 0 else len(origins)
    fine = replace(tcfg, epochs=max(1, tcfg.epochs // 4))
    points, uppers = [], []
    for c0 in range(0, len(origins), step):
        chunk = origins[c0:c0 + step]
        if c0 > 0:  # only windows up to the chunk's first origin: no peeking at what is forecast
            end = int(chunk[0]) + 1
            ff = fit_forecaster(v[:end], ws[:end], series.window_s, cfg, fine, init=ff, valid=ok[:end])
            info["refits"] = info.get("refits", 0) + 1
            info["train_s"] += ff.info["train_s"]
        p, u = ff.predict(v, ws, chunk)
        points.append(p)
        uppers.append(u)
    return np.concatenate(points), np.concatenate(uppers), info


def rolling_origin_eval(series: WorkloadSeries, horizon: int, target: str, models: Sequence[str] = ALL_MODELS,
                        fcfg: ForecasterConfig | None = None, tcfg: TrainConfig | None = None, test_frac: float = 0.3,
                        on_done: Callable[[str], None] = lambda _: None, refit_every: int = 0,
                        split: str = "test") -> dict[str, Any]:
    """Score ``models`` on ``target`` (see the module docstring). ``refit_every`` > 0 fine-tunes the networks
    every that many origins on all windows up to the origin, as :class:`OnlineForecaster` does live.
    ``split`` is ``test`` (the last ``test_frac``) or ``validation`` (the tail of the training part)."""
    if target not in series.available:
        raise ValueError(f"target {target!r} not available in {series.source} (has {list(series.available)})")
    tcfg = tcfg or TrainConfig()
    if split == "validation":
        end = int(round(len(series.values) * (1 - test_frac)))
        series = replace(series, values=series.values[:end], window_start=series.window_start[:end],
                         valid=series.valid[:end])
        test_frac = tcfg.val_frac
    elif split != "test":
        raise ValueError(f"split must be test or validation, got {split!r}")
    ch = TARGETS.index(target)
    n = len(series.values)
    n_train = int(round(n * (1 - test_frac)))
    base = fcfg or ForecasterConfig()
    first_origin = max(n_train - 1, base.history - 1)
    origins = np.arange(first_origin, n - horizon)
    if len(origins) < 1:
        raise ValueError(f"series of {n} windows too short for a {horizon}-window horizon test")
    fut = origins[:, None] + np.arange(1, horizon + 1)[None, :]
    actual = series.values[fut, ch]
    mask = series.valid[fut] & series.valid[origins][:, None]
    result: dict[str, Any] = {"window_s": series.window_s, "horizon": horizon, "target": target,
                              "unit": series.unit, "series": series.source, "notes": series.notes,
                              "train_windows": n_train, "test_origins": int(len(origins)),
                              "scored_pairs": int(mask.sum()), "refit_every": refit_every, "split": split,
                              "models": {}}
    targets = tuple(TARGETS.index(t) for t in series.available)
    for name in models:
        if name in BASELINES:
            pred = baseline_forecast(name, series.values, origins, horizon, series.window_s)[:, :, ch]
            result["models"][name] = _score(pred, actual, mask)
            if name.startswith("seasonal"):  # a season longer than the history: it answered with the last value
                period = seasonal_period(series.window_s, DAY_S if name.endswith("day") else WEEK_S)
                result["models"][name]["last_value_fallback_origins"] = int(np.sum(origins + 1 < period))
            on_done(name)
            continue
        cfg = ForecasterConfig(**{**base.to_dict(), "backbone": name, "horizon": horizon,  # type: ignore[arg-type]
                                  "targets": targets})
        point, upper, info = _neural_forecasts(series, n_train, origins, cfg, tcfg, refit_every)
        j = targets.index(ch)
        scored = _score(point[:, :, j], actual, mask)
        scored["upper_coverage"] = float(np.mean(actual[mask] <= upper[:, :, j][mask]))
        scored["train"] = info
        result["models"][name] = scored
        on_done(name)
    return result
