"""Fit the step-time cost model to measured step times: non-negative least squares on relative error.

Pure functions (rows in, coefficients and errors out); reading and writing files is the CLI's job
(``preserve calibrate fit``). Relative (1/t-weighted) least squares, because step times span 5 ms to 200 ms and
a plain fit would sacrifice the short decode steps, which dominate a serving trace, for the long prefills.
"""

from __future__ import annotations

import csv
import itertools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from streams.policies.cost_model import FEATURE_NAMES, CostModel, step_features

__all__ = ["Measurement", "FitResult", "fit_cost_model", "nnls", "read_measurements", "KNEE_CANDIDATES"]

KNEE_CANDIDATES: tuple[float, ...] = (0.0, 64.0, 128.0, 192.0, 256.0, 384.0, 512.0)
REQUIRED_COLUMNS = ("prefill_tokens", "decode_seqs", "context_tokens", "prefill_pairs", "median_s")


@dataclass(frozen=True)
class Measurement:
    """One measured step (seconds)."""

    prefill_tokens: int
    decode_seqs: int
    context_tokens: int
    prefill_pairs: float
    seconds: float
    kind: str = ""


@dataclass(frozen=True)
class FitResult:
    model: CostModel
    mape: float  # mean absolute percentage error on the fitted rows, in %
    max_abs_pct: float  # largest absolute percentage error, in %
    worst: Measurement  # the row with the largest error
    rows: int


def read_measurements(path: str | Path, mode: str = "graph") -> list[Measurement]:
    """Rows of a measurements CSV (``measure_llama_step.py`` format) with the given ``mode`` column value.

    :raises ValueError: naming the line and the reason, for a missing column or a bad value.
    """
    rows: list[Measurement] = []
    with Path(path).open(newline="") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in REQUIRED_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{path}: missing columns {missing}")
        for line, rec in enumerate(reader, start=2):
            if rec.get("mode", mode) != mode:
                continue
            try:
                m = Measurement(int(rec["prefill_tokens"]), int(rec["decode_seqs"]), int(rec["context_tokens"]),
                                float(rec["prefill_pairs"]), float(rec["median_s"]), rec.get("kind", ""))
            except (TypeError, ValueError) as exc:
                raise ValueError(f"{path}:{line}: bad value ({exc})") from exc
            if m.seconds <= 0 or min(m.prefill_tokens, m.decode_seqs, m.context_tokens, m.prefill_pairs) < 0:
                raise ValueError(f"{path}:{line}: times must be > 0 and counts >= 0")
            rows.append(m)
    if not rows:
        raise ValueError(f"{path}: no rows with mode={mode!r}")
    return rows


def nnls(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Exact non-negative least squares by trying every support set (fine for the <= 8 columns used here)."""
    best_res, best = np.inf, np.zeros(a.shape[1])
    for size in range(1, a.shape[1] + 1):
        for support in itertools.combinations(range(a.shape[1]), size):
            cols = list(support)
            coef, *_ = np.linalg.lstsq(a[:, cols], b, rcond=None)
            if (coef < 0).any():
                continue
            res = float(np.sum((a[:, cols] @ coef - b) ** 2))
            if res < best_res:
                best_res, best = res, np.zeros(a.shape[1])
                best[cols] = coef
    return best


def _design(rows: list[Measurement], knee: float) -> np.ndarray:
    return np.array([step_features(r.prefill_tokens, r.decode_seqs, r.context_tokens, r.prefill_pairs, knee)
                     for r in rows])


def fit_cost_model(rows: list[Measurement], knees: tuple[float, ...] = KNEE_CANDIDATES,
                   cpu_overhead_s: float = 0.0, cpu_per_seq_s: float = 0.0, source: str = "") -> FitResult:
    """Best relative-NNLS fit over the candidate knees; CPU overheads are carried through, not fitted."""
    if len(rows) < len(FEATURE_NAMES):
        raise ValueError(f"need at least {len(FEATURE_NAMES)} measurements, got {len(rows)}")
    y = np.array([r.seconds for r in rows])
    best: tuple[float, np.ndarray, float] | None = None
    for knee in knees:
        x = _design(rows, knee)
        coef = nnls(x / y[:, None], np.ones_like(y))
        rel = np.abs(x @ coef - y) / y
        score = float(np.mean(rel**2))
        if best is None or score < best[2]:
            best = (knee, coef, score)
    assert best is not None
    knee, coef, _ = best
    model = CostModel(**{n: float(c) for n, c in zip(FEATURE_NAMES, coef, strict=True)}, tok_knee=knee,
                      cpu_overhead_s=cpu_overhead_s, cpu_per_seq_s=cpu_per_seq_s, source=source)
    pred = np.array([_gpu_time(model, r) for r in rows])
    rel = np.abs(pred - y) / y
    worst = int(np.argmax(rel))
    return FitResult(model, float(rel.mean() * 100), float(rel.max() * 100), rows[worst], len(rows))


def _gpu_time(model: CostModel, r: Measurement) -> float:
    """The model's step time without the CPU overheads (which the GPU measurement does not contain)."""
    return (model.step_time(r.prefill_tokens, r.decode_seqs, r.context_tokens, r.prefill_pairs)
            - model.cpu_overhead_s - model.cpu_per_seq_s * r.decode_seqs)
