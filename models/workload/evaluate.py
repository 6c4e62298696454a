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

__all__ = ["ALL_MODELS", "NEURAL_BACKBONES", "metrics", "rolling_origin_eval", "protocol_eval", "default_capacity"]

NEURAL_BACKBONES = ("mlstm", "lstm")
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


def default_capacity(values: np.ndarray, valid: np.ndarray, instances_at_median: float = 8.0) -> float:
    """Per-instance capacity (series unit) when none is profiled: the median valid load of the training part
    runs on ``instances_at_median`` instances, so sizing errors of one instance matter (a 10-instance service)."""
    v = values[valid]
    med = float(np.median(v)) if len(v) else 1.0
    return max(med, 1e-9) / instances_at_median


def _seed_forecasts(series: WorkloadSeries, train_end: int, origins: np.ndarray, cal_origins: np.ndarray,
                    cfg: ForecasterConfig, tcfg: TrainConfig) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Train on windows [0, train_end) only; point forecasts (all targets) at the test and calibration origins."""
    v, ws, ok = series.values, series.window_start, series.valid
    ff = fit_forecaster(v[:train_end], ws[:train_end], series.window_s, cfg, tcfg, valid=ok[:train_end])
    info = {k: ff.info[k] for k in ("epochs", "train_s", "params", "params_per_member", "samples", "val_loss")}
    point, _ = ff.predict(v, ws, origins, ok)
    cal, _ = ff.predict(v, ws, cal_origins, ok)
    return point, cal, info


def protocol_eval(series: WorkloadSeries, horizon: int, target: str, models: Sequence[str] = ALL_MODELS,
                  fcfg: ForecasterConfig | None = None, tcfg: TrainConfig | None = None, seeds: Sequence[int] = (0,),
                  split: str = "test", test_frac: float = 0.3, cal_frac: float = 0.15, val_test_frac: float = 0.25,
                  capacity: float | None = None, conformal_window: int = 288, block: int = 36, n_boot: int = 2000,
                  on_done: Callable[[str], None] = lambda _: None,
                  forecasts_out: dict[str, np.ndarray] | None = None) -> dict[str, Any]:
    """Issue-16 protocol: chronological train | calibration | test periods that do not overlap in time.

    Networks train on the windows before the calibration period (early stopping on their own tail), once per
    seed in ``seeds``; every model's point forecast at the calibration origins gives the conformal residuals
    that start :func:`models.workload.protocol.rolling_conformal`, which then adds test residuals as their
    outcomes become known. ``split="validation"`` cuts the series at the start of the test period and runs the
    same protocol inside it (its last ``val_test_frac`` as the test), for choosing settings: nothing from the
    test period is read. Per model: ``smape`` (mean over seeds for networks), ``smape_by_horizon`` (h1..hH),
    ``coverage`` (quantile -> share of outcomes at or below), ``provisioning`` (per quantile, see
    :func:`models.workload.protocol.provisioning`, and persistence at the model's q0.9 under-provisioning) and
    ``intervals`` (block-bootstrap 95% intervals of the SMAPE at h1, hH and over all horizons, and of its
    difference with last value, EWMA and the other network, paired). ``forecasts_out``, when given, receives
    the point forecasts (``<model>_s<seed>`` and ``..._cal``), actuals, masks and origins (to rescore later)."""
    from models.workload import protocol as pr

    if target not in series.available:
        raise ValueError(f"target {target!r} not available in {series.source} (has {list(series.available)})")
    tcfg = tcfg or TrainConfig()
    n_all = len(series.values)
    if split == "validation":
        end = int(round(n_all * (1 - test_frac)))
        series = replace(series, values=series.values[:end], window_start=series.window_start[:end],
                         valid=series.valid[:end])
        test_frac = val_test_frac
    elif split != "test":
        raise ValueError(f"split must be test or validation, got {split!r}")
    ch = TARGETS.index(target)
    n = len(series.values)
    base = fcfg or ForecasterConfig()
    first_origin = int(round(n * (1 - test_frac))) - 1
    train_end = first_origin + 1 - int(round(n * cal_frac))
    if train_end < base.history + horizon + 20:
        raise ValueError(f"series of {n} windows too short for train | calibration | test")
    origins = np.arange(first_origin, n - horizon)
    cal_origins = np.arange(max(train_end - 1, base.needed_history - 1), first_origin)

    def fut(o: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        f = o[:, None] + np.arange(1, horizon + 1)[None, :]
        return series.values[np.minimum(f, n - 1), ch], (series.valid[np.minimum(f, n - 1)]
                                                        & series.valid[o][:, None] & (f < n))

    actual, mask = fut(origins)
    cal_actual, cal_mask = fut(cal_origins)
    if forecasts_out is not None:
        forecasts_out.update(actual=actual, mask=mask, origins=origins, cal_actual=cal_actual, cal_mask=cal_mask,
                             cal_origins=cal_origins)
    cap = capacity if capacity is not None else default_capacity(series.values[:train_end, ch],
                                                                  series.valid[:train_end])
    result: dict[str, Any] = {
        "window_s": series.window_s, "horizon": horizon, "target": target, "unit": series.unit,
        "series": series.source, "notes": series.notes, "split": split, "seeds": list(seeds),
        "periods": {"train_windows": [0, train_end], "calibration_origins": [int(cal_origins[0]),
                                                                            int(cal_origins[-1])],
                    "test_origins": [int(origins[0]), int(origins[-1])]},
        "test_origins": int(len(origins)), "scored_pairs": int(mask.sum()), "capacity": cap,
        "conformal_window": conformal_window, "bootstrap": {"block": block, "n_boot": n_boot}, "models": {}}
    targets = tuple(TARGETS.index(t) for t in series.available)
    terms: dict[str, np.ndarray] = {}  # model -> (S, H) SMAPE terms (networks: mean over seeds)
    points: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}  # model -> per seed (test, calibration)
    infos: dict[str, list[dict[str, Any]]] = {}
    for name in models:
        if name in BASELINES:
            pts = [(baseline_forecast(name, series.values, origins, horizon, series.window_s)[:, :, ch],
                    baseline_forecast(name, series.values, cal_origins, horizon, series.window_s)[:, :, ch])]
        else:
            cfg = ForecasterConfig(**{**base.to_dict(), "backbone": name, "horizon": horizon,  # type: ignore[arg-type]
                                      "targets": targets})
            pts, infos[name] = [], []
            j = targets.index(ch)
            for sd in seeds:
                p, c, info = _seed_forecasts(series, train_end, origins, cal_origins, cfg, replace(tcfg, seed=sd))
                pts.append((p[:, :, j], c[:, :, j]))
                infos[name].append(info)
        points[name] = pts
        if forecasts_out is not None:
            for sd, (p, c) in zip(seeds if name not in BASELINES else [0], pts, strict=True):
                forecasts_out[f"{name}_s{sd}"], forecasts_out[f"{name}_s{sd}_cal"] = p, c
        on_done(name)
    # the online choice of OnlineForecaster (network vs last value / EWMA by recent error), replayed per seed
    for name in [n for n in list(points) if n in NEURAL_BACKBONES]:
        if "last_value" in points and "ewma" in points:
            chosen = []
            for p, c in points[name]:
                cands = {name: np.concatenate([c, p]), "last_value": np.concatenate(points["last_value"][0][::-1]),
                         "ewma": np.concatenate(points["ewma"][0][::-1])}
                both = pr.online_choice(cands, np.concatenate([cal_actual, actual]),
                                        np.concatenate([cal_mask, mask]), prefer=name)
                chosen.append((both[len(c):], both[:len(c)]))
            points[f"{name}_online_choice"] = chosen
    for name, pts in points.items():
        terms[name] = np.mean([pr.smape_terms(p, actual) for p, _ in pts], axis=0)
        per_seed: list[dict[str, Any]] = []
        for p, c in pts:
            quant = pr.rolling_conformal(p, origins, pr.log_residuals(c, cal_actual), cal_origins, cal_mask,
                                         pr.log_residuals(p, actual), mask, window=conformal_window)
            prov = {q: pr.provisioning(f, actual, mask, cap, series.window_s) for q, f in quant.items()}
            per_seed.append({"smape": metrics(p, actual, mask)["smape"], "coverage": pr.coverage(quant, actual, mask),
                             "provisioning": prov})
        m: dict[str, Any] = {
            "smape": float(np.mean([s["smape"] for s in per_seed])),
            "smape_by_horizon": [float(terms[name][:, h][mask[:, h]].mean()) for h in range(horizon)],
            "coverage": {q: float(np.mean([s["coverage"][q] for s in per_seed])) for q in per_seed[0]["coverage"]},
            "provisioning": {q: {k: (float(np.mean([s["provisioning"][q][k] for s in per_seed]))
                                     if not k.endswith("by_horizon") else
                                     np.mean([s["provisioning"][q][k] for s in per_seed], axis=0).round(5).tolist())
                                 for k in per_seed[0]["provisioning"][q]} for q in per_seed[0]["provisioning"]}}
        m.update(metrics(np.mean([p for p, _ in pts], axis=0), actual, mask) | {"smape": m["smape"]})
        if len(per_seed) > 1:
            m["per_seed"] = [{"seed": sd, **s} for sd, s in zip(seeds, per_seed, strict=True)]
        if name in infos:
            m["train"] = infos[name]
        result["models"][name] = m
    # the noise floor of the networks' information set for a linear map fitted on the test itself (see
    # protocol.linear_oracle): what "beat persistence by 10%" would need, at best
    orc = pr.linear_oracle(series.values[:, ch], series.valid, series.window_start, series.window_s, origins,
                           horizon)
    orc_terms = pr.smape_terms(orc, actual)
    result["linear_oracle_in_sample"] = {
        "smape": float(orc_terms[mask].mean()),
        "smape_by_horizon": [float(orc_terms[:, h][mask[:, h]].mean()) for h in range(horizon)]}
    # persistence at each model's q0.9 under-provisioning, and the intervals
    lv = baseline_forecast("last_value", series.values, origins, horizon, series.window_s)[:, :, ch]
    hs = {"h1": [0], f"h{horizon}": [horizon - 1], "all": list(range(horizon))}
    for name, m in result["models"].items():
        m["provisioning"]["last_value_at_equal_under_0.9"] = pr.matched_headroom(
            lv, actual, mask, cap, series.window_s, m["provisioning"]["0.9"]["under_share"])
        iv: dict[str, Any] = {}
        for label, cols in hs.items():
            t_a, mk = terms[name][:, cols].mean(axis=1), np.asarray(mask[:, cols].all(axis=1))
            iv[label] = {"smape": pr.block_bootstrap(t_a, mk, block=block, n_boot=n_boot)}
            for other in ("last_value", "ewma", "lstm", "mlstm"):
                if other != name and other in terms and name.split("_")[0] in NEURAL_BACKBONES:
                    t_b = terms[other][:, cols].mean(axis=1)
                    iv[label][f"minus_{other}"] = pr.block_bootstrap(t_a, mk, t_b, block=block, n_boot=n_boot)
                    iv[label][f"ratio_to_{other}"] = pr.block_bootstrap(t_a, mk, t_b, block=block, n_boot=n_boot,
                                                                        ratio=True)
        m["intervals"] = iv
    return result
