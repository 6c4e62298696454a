"""Metrics of output-length predictions (the issue's eval JSON keys). Pure numpy (no scipy)."""

from __future__ import annotations

import numpy as np

__all__ = ["length_metrics", "kendall_tau_b"]


def kendall_tau_b(x: np.ndarray, y: np.ndarray, chunk: int = 512) -> float:
    """Kendall's tau-b (ties handled) by chunked pairwise signs: O(n^2) time, O(chunk * n) memory —
    about a second for 20k points."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    assert x.shape == y.shape and x.ndim == 1
    s = nx = ny = 0.0
    for start in range(0, x.size, chunk):
        sx = np.sign(x[start:start + chunk, None] - x[None, :])  # (c, n)
        sy = np.sign(y[start:start + chunk, None] - y[None, :])
        s += float((sx * sy).sum())
        nx += float(np.count_nonzero(sx))
        ny += float(np.count_nonzero(sy))
    if nx == 0 or ny == 0:
        return float("nan")
    return s / np.sqrt(nx * ny)


def length_metrics(pred: np.ndarray, true: np.ndarray) -> dict[str, float | None]:
    """mae (tokens), acc_25/50/100 (share with |error| <= k tokens), r2, kendall_tau."""
    pred = np.asarray(pred, dtype=np.float64)
    true = np.asarray(true, dtype=np.float64)
    assert pred.shape == true.shape and pred.size > 0, "need equally long, non-empty arrays"
    err = np.abs(pred - true)
    ss_tot = float(((true - true.mean()) ** 2).sum())
    r2 = 1.0 - float(((pred - true) ** 2).sum()) / ss_tot if ss_tot > 0 else float("nan")
    out = {"mae": float(err.mean()), "acc_25": float((err <= 25).mean()), "acc_50": float((err <= 50).mean()),
           "acc_100": float((err <= 100).mean()), "r2": r2,
           "kendall_tau": kendall_tau_b(pred, true) if pred.size > 1 else float("nan")}
    return {k: round(v, 4) if np.isfinite(v) else None for k, v in out.items()}  # JSON has no NaN
