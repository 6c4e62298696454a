"""Post-hoc calibration of output-length predictions: honest quantiles and an unbiased mean per serving model.

Why: the encoder's pinball-trained quantiles are too narrow on held-out prompts (p10 covered 26%, p90 83%) and
its point estimate (the validation-MAE-best quantile, p40) is not an expected length, yet the scaler sums
``mean`` and the router reads a quantile. Retraining cannot fix what validation reveals after training; a
calibration fitted on the *validation* part (never on test) and stored next to the checkpoint can.

Method (normalised split-conformal, per serving model with a pooled back-off):

- Each row's base prediction is reduced to a centre ``c`` and a spread ``s`` in ``log1p(tokens)``:
  for the encoder ``c = log1p(p50)``, ``s = (log1p(p90) - log1p(p10)) / (2 z90)``; for the fallback table
  ``c = log1p(cell mean)``, ``s`` from the cell's p90 (``base_from_fallback``).
- On validation, the standardised residuals ``z = (log1p(y) - c) / s`` give, per serving model, an empirical
  quantile function ``Z_m(tau)`` on the grid ``tau = 0.01 .. 0.99``, shrunk toward the pooled one:
  ``Z_m = (n_m Z_emp,m + k Z_pool) / (n_m + k)``. ``k`` (pseudo-rows of the pooled curve) is chosen by
  cross-validation *inside* validation, grouped by prompt text, on the pinball loss summed over the grid.
- Quantile ``tau`` of a row: ``expm1(c + s Z_m(tau))``. Its expected length integrates that quantile
  function over the grid's midpoints (the smearing estimate), times a per-model ratio
  ``a_m = sum(y) / sum(integral)`` on validation (shrunk toward the pooled ratio with the same ``k``), so
  summed means match summed lengths per serving model.

Pure numpy; no torch, no I/O apart from ``save``/``load`` of ``calibration.json``.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["CALIBRATION_FILE", "CALIBRATION_FILE_INT8", "calibration_file", "GRID", "OUTPUT_TAUS", "POOLED", "Z90", "Calibration", "CalibrationSet",
           "CalibratedOutputs", "base_from_quantiles", "base_from_fallback", "fit_calibration", "pinball",
           "quantile_name", "load_calibration"]

log = logging.getLogger(__name__)

CALIBRATION_FILE = "calibration.json"
# The CPU serving path (ONNX Runtime / torch dynamic int8) answers slightly differently from fp32 (its raw p90
# covered 0.79 vs 0.83), enough to move calibrated coverage and sums by several points: it gets its own file.
CALIBRATION_FILE_INT8 = "calibration_int8.json"


def calibration_file(int8: bool = False) -> str:
    return CALIBRATION_FILE_INT8 if int8 else CALIBRATION_FILE
GRID = np.round(np.arange(1, 100) / 100.0, 2)  # taus of the stored quantile function
OUTPUT_TAUS: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99)
POOLED = "*"
Z90 = 1.2815515655446004
MIN_SPREAD = 0.05  # log units: a row never claims to know its length better than about +-5%
K_GRID: tuple[float, ...] = (0.0, 10.0, 30.0, 100.0, 300.0, 1000.0, float("inf"))
SMEAR = "smear"
# fitting caps labels here: the data's serving models have 4k contexts, so longer "responses" are counting artefacts
LABEL_CAP = 4096.0


def quantile_name(tau: float) -> str:
    """0.1 -> "p10", 0.95 -> "p95"."""
    return f"p{round(tau * 100)}"


def _grid_index(tau: float) -> int:
    i = int(np.argmin(np.abs(GRID - tau)))
    if abs(GRID[i] - tau) > 1e-9:
        raise ValueError(f"tau {tau} is not on the calibration grid (0.01 .. 0.99)")
    return i


def base_from_quantiles(quantiles: np.ndarray, taus: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """(centre, spread) in log1p tokens from raw token quantiles (N, Q) with taus holding 0.1, 0.5 and 0.9."""
    lq = np.log1p(np.maximum(np.asarray(quantiles, dtype=np.float64), 0.0))
    t = [round(x, 4) for x in taus]
    c = lq[:, t.index(0.5)]
    s = (lq[:, t.index(0.9)] - lq[:, t.index(0.1)]) / (2 * Z90)
    return c, np.maximum(s, MIN_SPREAD)


def base_from_fallback(mean: np.ndarray, p90: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(centre, spread) of fallback cells (mean and p90 of a cell): the cell mean as centre and the mean->p90
    gap as the spread unit; calibration then fixes location and shape per serving model."""
    c = np.log1p(np.maximum(np.asarray(mean, dtype=np.float64), 0.0))
    s = (np.log1p(np.maximum(np.asarray(p90, dtype=np.float64), 0.0)) - c) / Z90
    return c, np.maximum(s, MIN_SPREAD)


def pinball(z: np.ndarray, q: np.ndarray, taus: np.ndarray) -> float:
    """Mean pinball loss of quantile curves ``q`` (N, T) for observations ``z`` (N,) at ``taus`` (T,)."""
    d = z[:, None] - q
    return float(np.mean(np.maximum(taus * d, (taus - 1) * d)))


@dataclass(frozen=True)
class Calibration:
    """Fitted calibration of one predictor: ``curves[name]`` = Z(tau) on ``GRID`` and ``ratios[name]`` = mean
    de-bias factor, per serving model and for ``POOLED`` (models without an entry use the pooled one)."""

    curves: dict[str, np.ndarray]
    ratios: dict[str, float]
    counts: dict[str, int] = field(default_factory=dict)
    k: float = 0.0  # pseudo-rows of the pooled curve in each model's (chosen by CV on validation)
    k_mean: float = 0.0  # the same for the mean's ratio
    mean_base: str = "smear"  # what the ratio multiplies: the curve's integral or a named base (e.g. "head")
    record: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if POOLED not in self.curves or POOLED not in self.ratios:
            raise ValueError("a calibration needs a pooled ('*') entry")
        for name, z in self.curves.items():
            if z.shape != GRID.shape or not np.all(np.diff(z) >= -1e-12):
                raise ValueError(f"calibration curve of {name!r} must be {GRID.size} non-decreasing values")

    def known(self, model: str) -> bool:
        return model in self.curves

    def apply(self, centre: np.ndarray, spread: np.ndarray, models: Sequence[str],
              mean_bases: dict[str, np.ndarray] | None = None,
              taus: Sequence[float] = OUTPUT_TAUS) -> CalibratedOutputs:
        """Calibrated quantiles (tokens) at ``taus`` and the de-biased expected length of each row;
        ``mean_bases`` must hold ``mean_base`` unless that is the integral ("smear")."""
        c = np.asarray(centre, dtype=np.float64)
        s = np.asarray(spread, dtype=np.float64)
        names = [m if m in self.curves else POOLED for m in models]
        curve = np.stack([self.curves[m] for m in names]) if names else np.empty((0, GRID.size))
        ratio = np.array([self.ratios[m] for m in names], dtype=np.float64)
        idx = [_grid_index(t) for t in taus]
        q = np.expm1(c[:, None] + s[:, None] * curve[:, idx])
        if self.mean_base == SMEAR:
            base = _smeared_mean(c, s, curve)
        elif mean_bases is None or self.mean_base not in mean_bases:
            raise ValueError(f"this calibration scales the {self.mean_base!r} output; pass it in mean_bases")
        else:
            base = np.asarray(mean_bases[self.mean_base], dtype=np.float64)
        mean = ratio * base
        return CalibratedOutputs(taus=tuple(taus), quantiles=np.maximum(q, 0.0), mean=np.maximum(mean, 0.0))

    def to_dict(self) -> dict[str, Any]:
        return {"grid": GRID.tolist(), "k": _num(self.k), "k_mean": _num(self.k_mean), "mean_base": self.mean_base,
                "record": self.record,
                "models": {m: {"z": [round(float(v), 5) for v in self.curves[m]], "mean_ratio": self.ratios[m],
                               "n": self.counts.get(m, 0)} for m in sorted(self.curves)}}

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Calibration:
        if [round(float(g), 2) for g in raw["grid"]] != GRID.tolist():
            raise ValueError("calibration grid differs from 0.01 .. 0.99")
        models = raw["models"]
        return cls(curves={m: np.asarray(v["z"], dtype=np.float64) for m, v in models.items()},
                   ratios={m: float(v["mean_ratio"]) for m, v in models.items()},
                   counts={m: int(v.get("n", 0)) for m, v in models.items()}, k=float(raw["k"]),
                   k_mean=float(raw.get("k_mean", raw["k"])), mean_base=str(raw.get("mean_base", SMEAR)),
                   record=dict(raw.get("record", {})))


def _num(k: float) -> float | str:
    return k if np.isfinite(k) else "inf"


@dataclass(frozen=True)
class CalibratedOutputs:
    taus: tuple[float, ...]
    quantiles: np.ndarray  # (N, len(taus)) tokens, non-decreasing along axis 1
    mean: np.ndarray  # (N,) expected tokens

    def by_name(self) -> dict[str, np.ndarray]:
        return {quantile_name(t): self.quantiles[:, i] for i, t in enumerate(self.taus)}


def _smeared_mean(c: np.ndarray, s: np.ndarray, curve: np.ndarray) -> np.ndarray:
    """E[y] of each row: the mean of expm1(c + s Z(tau)) over the grid (midpoint rule over tau in (0, 1); the
    outer 1% each side is the grid's end value — the ratio fitted on validation absorbs what that misses)."""
    return np.expm1(c[:, None] + s[:, None] * curve).mean(axis=1) if c.size else np.empty(0)


def _curve(z: np.ndarray) -> np.ndarray:
    return np.quantile(z, GRID) if z.size else np.zeros(GRID.size)


def _shrink(own: float, n: int, pooled: float, k: float) -> float:
    return pooled if not np.isfinite(k) else (n * own + k * pooled) / (n + k) if n + k > 0 else pooled


def _blend(own: np.ndarray, n: int, pooled: np.ndarray, k: float) -> np.ndarray:
    if not np.isfinite(k):
        return pooled.copy()
    w = n / (n + k) if n + k > 0 else 0.0
    return np.maximum.accumulate(w * own + (1 - w) * pooled)


def _curves(c: np.ndarray, s: np.ndarray, y: np.ndarray, models: np.ndarray,
            k: float) -> tuple[dict[str, np.ndarray], dict[str, int]]:
    z = (np.log1p(y) - c) / s
    pooled = _curve(z)
    curves = {POOLED: pooled}
    counts = {POOLED: int(z.size)}
    for m in sorted(set(models.tolist())):
        sel = models == m
        counts[m] = int(sel.sum())
        curves[m] = _blend(_curve(z[sel]), counts[m], pooled, k)
    return curves, counts


def _row_curves(curves: dict[str, np.ndarray], models: np.ndarray) -> np.ndarray:
    return np.stack([curves.get(m, curves[POOLED]) for m in models]) if models.size else np.empty((0, GRID.size))


def _ratios(base: np.ndarray, y: np.ndarray, models: np.ndarray, k: float) -> dict[str, float]:
    pooled = float(y.sum() / max(base.sum(), 1e-9))
    out = {POOLED: pooled}
    for m in sorted(set(models.tolist())):
        sel = models == m
        out[m] = _shrink(float(y[sel].sum() / max(base[sel].sum(), 1e-9)), int(sel.sum()), pooled, k)
    return out


def _folds(groups: Sequence[str], n_folds: int) -> np.ndarray:
    """Fold of each row by a hash of its group (prompt text), so one prompt's rows stay in one fold."""
    return np.array([int.from_bytes(hashlib.sha1(g.encode(), usedforsecurity=False).digest()[:4], "big") % n_folds
                     for g in groups])


def fit_calibration(centre: np.ndarray, spread: np.ndarray, actual: np.ndarray, models: Sequence[str],
                    groups: Sequence[str], mean_bases: dict[str, np.ndarray] | None = None,
                    k_grid: Sequence[float] = K_GRID, n_folds: int = 5,
                    label_cap: float = LABEL_CAP) -> Calibration:
    """Fit on validation rows. Choices, each by ``n_folds``-fold cross-validation inside these rows (folds by
    ``groups``, the prompt text, so a prompt's rows stay together):

    - ``k`` of the quantile curves' back-off: lowest pinball loss over the grid (z units);
    - the mean's base — ``"smear"`` (the calibrated quantile function's integral) or one of ``mean_bases``
      (e.g. the encoder's expected-length head) — and the ``k`` of its per-model ratio: lowest squared error.

    Labels are capped at ``label_cap`` tokens for fitting: a few counting artefacts (a 37,621-token "response"
    in ShareGPT's validation part, beyond any of the data's serving models' context) would otherwise move a
    model's summed-length ratio by ~9%."""
    c = np.asarray(centre, dtype=np.float64)
    s = np.maximum(np.asarray(spread, dtype=np.float64), MIN_SPREAD)
    y = np.minimum(np.asarray(actual, dtype=np.float64), label_cap)
    mo = np.asarray([str(m) for m in models], dtype=object)
    bases = {k: np.asarray(v, dtype=np.float64) for k, v in (mean_bases or {}).items()}
    if not (c.shape == s.shape == y.shape == mo.shape and y.size >= 2 and len(groups) == y.size):
        raise ValueError("centre, spread, actual, models and groups must be equally long (>= 2 rows)")
    if any(v.shape != y.shape for v in bases.values()) or SMEAR in bases:
        raise ValueError(f"mean_bases must be arrays of the rows' length, not named {SMEAR!r}")
    fold = _folds(groups, n_folds)
    z = (np.log1p(y) - c) / s
    q_loss = dict.fromkeys(k_grid, 0.0)
    m_loss: dict[tuple[str, float, float], float] = {}
    for f in range(n_folds):
        tr, te = fold != f, fold == f
        if not te.any() or not tr.any():
            continue
        for kq in k_grid:
            curves, _ = _curves(c[tr], s[tr], y[tr], mo[tr], kq)
            q_loss[kq] += pinball(z[te], _row_curves(curves, mo[te]), GRID) * int(te.sum())
            cands = {SMEAR: _smeared_mean(c, s, _row_curves(curves, mo)), **bases}
            for name, base in cands.items():
                for km in k_grid:
                    r = _ratios(base[tr], y[tr], mo[tr], km)
                    pred = base[te] * np.array([r.get(m, r[POOLED]) for m in mo[te]])
                    key = (name, kq, km)
                    m_loss[key] = m_loss.get(key, 0.0) + float(((pred - y[te]) ** 2).sum())
    kq = min(q_loss, key=q_loss.__getitem__)
    name, _, km = min((key for key in m_loss if key[1] == kq), key=m_loss.__getitem__)
    curves, counts = _curves(c, s, y, mo, kq)
    base = _smeared_mean(c, s, _row_curves(curves, mo)) if name == SMEAR else bases[name]
    return Calibration(curves=curves, ratios=_ratios(base, y, mo, km), counts=counts, k=kq, k_mean=km,
                       mean_base=name, record={"cv_pinball": {str(k): round(v / y.size, 5) for k, v in q_loss.items()},
                                               "cv_mean_rmse": round(float(np.sqrt(m_loss[(name, kq, km)] / y.size)),
                                                                     2), "label_cap": label_cap})


@dataclass(frozen=True)
class CalibrationSet:
    """The calibrations stored next to a checkpoint (``calibration.json``): one for the encoder, one for the
    fallback table, and a record of how they were fitted."""

    model: Calibration | None
    fallback: Calibration
    record: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"format": 1, "model": None if self.model is None else self.model.to_dict(),
                "fallback": self.fallback.to_dict(), "record": self.record}

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> CalibrationSet:
        if raw.get("format") != 1:
            raise ValueError(f"unknown calibration format {raw.get('format')!r}")
        return cls(model=None if raw.get("model") is None else Calibration.from_dict(raw["model"]),
                   fallback=Calibration.from_dict(raw["fallback"]), record=dict(raw.get("record", {})))

    def save(self, directory: Path, int8: bool = False) -> Path:
        path = Path(directory) / calibration_file(int8)
        path.write_text(json.dumps(self.to_dict(), separators=(",", ":")))
        return path

    @classmethod
    def load(cls, directory: Path, int8: bool = False) -> CalibrationSet:
        return cls.from_dict(json.loads((Path(directory) / calibration_file(int8)).read_text()))


def load_calibration(directory: Path, int8: bool = False) -> CalibrationSet | None:
    """The checkpoint's calibration (``calibration_int8.json`` for an int8 engine where fitted, else
    ``calibration.json``), or None (logged) when it has none or it is unusable: predictions then keep the
    uncalibrated outputs (``mean`` = the validation-MAE-best point, ``p90`` the raw head)."""
    folder = Path(directory)
    if int8 and (folder / CALIBRATION_FILE_INT8).exists():
        name = CALIBRATION_FILE_INT8
    else:
        name = CALIBRATION_FILE
        if int8 and (folder / name).exists():
            log.warning("no %s in %s: the int8 engine uses the fp32 calibration (coverage may be a few points off; "
                        "run `preserve load-predictor calibrate --backend onnx --int8`)", CALIBRATION_FILE_INT8, folder)
    if not (folder / name).exists():
        log.warning("no %s in %s: uncalibrated outputs (run `preserve load-predictor calibrate`)", name, folder)
        return None
    try:
        return CalibrationSet.load(folder, int8=name == CALIBRATION_FILE_INT8)
    except (OSError, ValueError, KeyError, TypeError) as err:
        log.warning("unusable %s in %s (%s): uncalibrated outputs", name, folder, err)
        return None
