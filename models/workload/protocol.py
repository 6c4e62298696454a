"""Scoring tools of the v2 evaluation (issue 16): calibrated quantiles, provisioning cost, block bootstrap.

Everything here is pure numpy over forecasts that were already made, so networks and baselines are scored by
the same code.

**Calibrated quantiles (split + rolling conformal).** A model's point forecast ``p`` becomes a quantile
forecast ``expm1(log1p(p) + r_q)``, where ``r_q`` is the conformal q-quantile of past log residuals
``log1p(y) - log1p(p)`` of the *same* model at the *same* horizon. The residuals start with a calibration period
that lies before the test period and was not trained on; then, as the test goes on, each residual joins the
pool once its outcome is known (origin + h <= the current origin), and only the last ``window`` residuals are
kept. That is what a live forecaster can do (it sees its own errors), it never reads an outcome that was not
yet observed at the origin, and it follows a change of noise level between calibration and test (m-mid's test
period is noisier than its past). The quantile is the finite-sample conformal level ``ceil((n + 1) q) / n``,
of a level that adapts to the misses seen so far (:func:`aci_update`): the window alone lags behind a
noise level that keeps rising (validation of issue 16: q0.9 covered 0.83-0.89 without it).

**Provisioning score.** What the scaler does with a forecast: ``instances = max(1, ceil(f_q / capacity))`` for a
per-instance capacity in the series' unit; against the true load ``y`` a window is under-provisioned when
``y > instances * capacity``, and ``max(0, instances - max(1, ceil(y / capacity)))`` instances were idle for the
window (over-provisioned instance-hours). Last value and EWMA are scored the same way, with their own
conformal quantiles; ``matched_headroom`` scales the last value by the smallest headroom factor whose
under-provisioning is at most a given share, so a model can be compared with persistence *at equal
under-provisioning* (the factor is chosen on the test part itself: that favours persistence).

**Block bootstrap.** Test origins are consecutive and their errors correlated, so intervals resample blocks of
``block`` consecutive origins (default 36 = 6 h of 600 s windows) with replacement; a difference of two models
is resampled *paired* (same blocks for both).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["QUANTILES", "ACI_GAMMA", "aci_update", "log_residuals", "rolling_conformal", "online_choice", "coverage", "provisioning",
           "matched_headroom", "block_bootstrap", "smape_terms"]

QUANTILES: tuple[float, ...] = (0.5, 0.9, 0.99)
ACI_GAMMA = 0.005  # step of the adaptive conformal level (the paper's value)


def log_residuals(pred: np.ndarray, actual: np.ndarray) -> np.ndarray:
    """``log1p(y) - log1p(p)``, elementwise (both clipped at 0)."""
    return np.log1p(np.maximum(actual, 0.0)) - np.log1p(np.maximum(pred, 0.0))


def conformal_level(n: int, q: float) -> float:
    """Finite-sample split-conformal level for n residuals: ``min(1, ceil((n + 1) q) / n)``."""
    return min(1.0, float(np.ceil((n + 1) * q)) / n) if n > 0 else 1.0


def rolling_conformal(point: np.ndarray, origins: np.ndarray, cal_resid: np.ndarray, cal_origins: np.ndarray,
                      cal_mask: np.ndarray, resid: np.ndarray, mask: np.ndarray,
                      quantiles: Sequence[float] = QUANTILES, window: int = 288,
                      gamma: float = ACI_GAMMA) -> dict[str, np.ndarray]:
    """Quantile forecasts (see the module docstring).

    :param point: (S, H) point forecasts at the test origins ``origins`` (S,), consecutive and increasing.
    :param cal_resid: (Sc, H) log residuals of the same model at calibration origins ``cal_origins`` (all before
        the first test origin); ``cal_mask`` (Sc, H) marks the scored ones.
    :param resid: (S, H) log residuals at the test origins (used only once observed); ``mask`` marks real ones.
    :param gamma: step of the adaptive level (:func:`aci_update`); 0: plain rolling conformal.
    :returns: ``{str(q): (S, H)}``, nondecreasing in q.
    """
    s, horizon = point.shape
    all_o = np.concatenate([cal_origins, origins])
    all_r = np.concatenate([cal_resid, resid])
    all_m = np.concatenate([cal_mask, mask])
    out = {str(q): np.empty_like(point, dtype=float) for q in quantiles}
    logp = np.log1p(np.maximum(point, 0.0))
    for h in range(horizon):
        ok = all_m[:, h]
        o_h, r_h = all_o[ok], all_r[ok, h]
        # residual j is known at origin t when o_j + h + 1 <= t; o_h is sorted, so that is a prefix
        n_known = np.searchsorted(o_h, origins - (h + 1), side="right")
        delta = np.zeros(len(quantiles))
        for i in range(s):
            j = i - (h + 1)  # the newest test origin whose outcome at this horizon is known now
            if gamma > 0 and j >= 0 and mask[j, h]:
                miss = np.array([resid[j, h] > np.log1p(max(out[str(q)][j, h], 0.0)) - logp[j, h]
                                 for q in quantiles])
                delta = aci_update(delta, miss, quantiles, gamma)
            pool = r_h[max(0, n_known[i] - window):n_known[i]]
            if len(pool) == 0:
                for q in quantiles:
                    out[str(q)][i, h] = point[i, h]
                continue
            levels = [conformal_level(len(pool), min(1.0, max(0.0, q + d))) for q, d in zip(quantiles, delta,
                                                                                          strict=True)]
            qs = np.quantile(pool, levels, method="higher")
            for q, r in zip(quantiles, np.maximum.accumulate(qs), strict=True):
                out[str(q)][i, h] = np.expm1(logp[i, h] + r)
    return out


def aci_update(delta: np.ndarray, miss: np.ndarray, quantiles: Sequence[float], gamma: float) -> np.ndarray:
    """Adaptive conformal inference (Gibbs & Candes, NeurIPS 2021): after each known outcome, move quantile
    q's level by ``gamma * (miss - (1 - q))`` -- up after an outcome above the forecast quantile, slightly down
    otherwise -- so that the long-run miss rate is 1 - q even when the noise level drifts faster than the
    residual window follows. Bounded to [-0.5, 0.5]."""
    target = 1.0 - np.asarray(quantiles, dtype=float)
    return np.clip(delta + gamma * (miss.astype(float) - target), -0.5, 0.5)


def online_choice(cands: dict[str, np.ndarray], actual: np.ndarray, mask: np.ndarray, prefer: str,
                  window: int = 36, min_n: int = 12) -> np.ndarray:
    """(S, H) forecasts of the online choice of :class:`models.workload.online.OnlineForecaster`: at each origin,
    the candidate (``cands``: name -> (S, H) at consecutive origins) with the smallest mean absolute log error
    over its last ``window`` fully resolved origins (origin + H <= now), all horizons; ``prefer`` (the
    network) until it has ``min_n`` of them, and on ties. Only errors known at the origin are used."""
    s, horizon = actual.shape
    err = {n: np.where(mask, np.abs(log_residuals(p, actual)), np.nan) for n, p in cands.items()}
    per_origin = {n: np.nanmean(np.where(mask.any(1, keepdims=True), e, 0.0), axis=1) for n, e in err.items()}
    out = np.empty_like(actual, dtype=float)
    for i in range(s):
        known = i - horizon  # origins <= i - H are fully resolved at origin i
        best = prefer
        if known + 1 >= min_n:
            lo = max(0, known + 1 - window)
            scores = {n: float(np.mean(e[lo:known + 1])) for n, e in per_origin.items()}
            for n, sc in scores.items():
                if n != prefer and sc < scores[best] - 1e-12:
                    best = n
        out[i] = cands[best][i]
    return out


def coverage(quant: dict[str, np.ndarray], actual: np.ndarray, mask: np.ndarray) -> dict[str, float]:
    """Observed share of outcomes at or below each quantile forecast (pooled over horizons)."""
    return {q: float(np.mean(actual[mask] <= f[mask])) for q, f in quant.items()}


def _instances(load: np.ndarray, capacity: float) -> np.ndarray:
    return np.maximum(1.0, np.ceil(np.maximum(load, 0.0) / capacity - 1e-9))


def provisioning(forecast: np.ndarray, actual: np.ndarray, mask: np.ndarray, capacity: float,
                 window_s: float) -> dict[str, Any]:
    """Size instances from ``forecast`` (S, H) and score them against ``actual`` (S, H) on ``mask``.

    Returns per horizon (lists, h1..hH) the share of under-provisioned windows and the over-provisioned
    instance-hours, plus their totals over all horizons.
    """
    inst = _instances(forecast, capacity)
    need = _instances(actual, capacity)
    under = (actual > inst * capacity) & mask
    idle = np.where(mask, np.maximum(0.0, inst - need), 0.0) * window_s / 3600.0
    n = np.maximum(mask.sum(axis=0), 1)
    return {"under_share_by_horizon": (under.sum(axis=0) / n).round(5).tolist(),
            "over_instance_hours_by_horizon": idle.sum(axis=0).round(3).tolist(),
            "under_share": float(under.sum() / max(1, mask.sum())),
            "over_instance_hours": float(idle.sum()),
            "needed_instance_hours": float(np.where(mask, need, 0.0).sum() * window_s / 3600.0)}


def matched_headroom(point: np.ndarray, actual: np.ndarray, mask: np.ndarray, capacity: float, window_s: float,
                     under_share: float, grid: np.ndarray | None = None) -> dict[str, float]:
    """Smallest headroom factor on ``point`` (e.g. the last value) whose under-provisioned share is at most
    ``under_share``; returns the factor and the over-provisioned instance-hours it costs."""
    grid = np.round(np.linspace(1.0, 4.0, 301), 2) if grid is None else grid
    last: dict[str, Any] = {}
    for g in grid:
        last = provisioning(point * g, actual, mask, capacity, window_s)
        if last["under_share"] <= under_share + 1e-12:
            return {"headroom": float(g), "under_share": last["under_share"],
                    "over_instance_hours": last["over_instance_hours"]}
    return {"headroom": float(grid[-1]), "under_share": last["under_share"],
            "over_instance_hours": last["over_instance_hours"]}


def smape_terms(pred: np.ndarray, actual: np.ndarray) -> np.ndarray:
    """Elementwise SMAPE ``2|p - y| / (|p| + |y|)`` with 0/0 = 0."""
    denom = np.abs(actual) + np.abs(pred)
    return np.where(denom > 0, 2 * np.abs(pred - actual) / np.where(denom > 0, denom, 1), 0.0)


def block_bootstrap(terms: np.ndarray, mask: np.ndarray, terms_b: np.ndarray | None = None, block: int = 36,
                    n_boot: int = 2000, seed: int = 0, ratio: bool = False) -> dict[str, float]:
    """Mean of ``terms`` (S,) over ``mask`` -- or, with ``terms_b``, the paired difference (a - b) or ratio
    (a / b) of the means -- with a 95% percentile interval from a bootstrap over blocks of consecutive origins."""
    s = len(terms)
    blocks = [np.arange(b, min(s, b + block)) for b in range(0, s, block)]
    sa = np.array([np.where(mask[ix], terms[ix], 0.0).sum() for ix in blocks])
    cnt = np.array([mask[ix].sum() for ix in blocks], dtype=float)
    sb = (np.array([np.where(mask[ix], terms_b[ix], 0.0).sum() for ix in blocks]) if terms_b is not None
          else None)

    def stat(idx: np.ndarray | slice) -> np.ndarray:
        n = cnt[idx].sum(axis=-1)
        a = sa[idx].sum(axis=-1) / n
        if sb is None:
            return a
        b = sb[idx].sum(axis=-1) / n
        return a / b if ratio else a - b

    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(blocks), size=(n_boot, len(blocks)))
    boot = stat(draws)
    point = float(stat(slice(None)))
    lo, hi = np.percentile(boot, [2.5, 97.5])
    return {"value": point, "lo": float(lo), "hi": float(hi)}


def linear_oracle(values: np.ndarray, valid: np.ndarray, window_start: np.ndarray, window_s: float,
                  origins: np.ndarray, horizon: int, lags: int = 24, day_lags: int = 2,
                  ridge: float = 1e-3) -> np.ndarray:
    """(S, H) forecasts of an *in-sample* linear oracle: per horizon, a least-absolute-deviation regression of
    ``log1p(y[t+h]) - log1p(y[t])`` on the same information the networks get (the last ``lags`` windows, the
    previous days at t + h, time of day/week), fitted on the very origins it is scored on. It reads the test
    outcomes, so no forecaster could match it with these inputs and a linear map; it measures how much of the
    error is predictable at all from them (the noise floor of this information set, for linear predictors).
    EWMA levels (alpha 0.5, 0.25, 0.1) are among the inputs, so the EWMA baseline is inside the class.
    ``values`` (N,) one channel."""
    from models.workload.baselines import ewma
    from models.workload.features import DAY_S, calendar_features

    def ewma_level(v: np.ndarray, alpha: float) -> np.ndarray:
        return ewma(v[:, None], np.arange(len(v)), 1, alpha)[:, 0, 0]

    n = len(values)
    logv = np.log1p(np.maximum(values, 0.0))
    period = max(1, int(round(DAY_S / window_s)))
    cal = calendar_features(window_start, window_s)
    out = np.empty((len(origins), horizon))
    for h in range(1, horizon + 1):
        cols = [logv[np.maximum(origins - j, 0)] - logv[origins] for j in range(1, lags + 1)]
        for alpha in (0.5, 0.25, 0.1):  # the EWMA levels: the class contains the EWMA baseline's forecast
            cols.append(np.log1p(ewma_level(values, alpha)[origins]) - logv[origins])
        for d in range(1, day_lags + 1):
            idx = origins + h - d * period
            ok = (idx >= 0) & valid[np.clip(idx, 0, n - 1)]
            cols.append(np.where(ok, logv[np.clip(idx, 0, n - 1)] - logv[origins], 0.0))
            cols.append(ok.astype(float))
        x = np.column_stack([*cols, cal[origins], np.ones(len(origins))])
        fut = np.minimum(origins + h, n - 1)
        y = logv[fut] - logv[origins]
        fit = valid[fut] & valid[origins]
        a, b = x[fit], y[fit]
        w = np.ones(len(a))
        for _ in range(30):  # least absolute deviations (IRLS): the median, which SMAPE rewards
            aw = a * w[:, None]
            coef = np.linalg.solve(aw.T @ a + ridge * len(a) * np.eye(a.shape[1]), aw.T @ b)
            w = 1.0 / np.maximum(np.abs(b - a @ coef), 1e-3)
        out[:, h - 1] = np.expm1(logv[origins] + x @ coef)
    return out
