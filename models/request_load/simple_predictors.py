"""Predictors without a neural network: the fallback, the oracle and the noisy oracle.

- ``FallbackPredictor``: per-model mean (and p90) of output tokens by prompt-length bucket, fitted from data
  and saved with the encoder checkpoint. It answers when the encoder is missing, broken or too slow, and for
  requests without a prompt text. Sparse cells back off: (model, bucket) -> (model) -> (bucket) -> global.
- ``OraclePredictor``: the true output lengths (upper bound for ablations).
- ``NoisyOraclePredictor``: true lengths times log-normal noise ``exp(sigma * N(0, 1))`` (ablation of how
  prediction error hurts the router/scaler).

None of them import torch, so the simulator can use them without it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from models.request_load.base_predictor import LengthPredictions
from models.request_load.calibration import Calibration, base_from_fallback

__all__ = ["FallbackPredictor", "FallbackTable", "OraclePredictor", "NoisyOraclePredictor",
           "DEFAULT_BUCKET_EDGES", "Z90"]

# Prompt-length bucket edges in prompt tokens (log2-spaced: response length changes slowly with prompt length).
DEFAULT_BUCKET_EDGES: tuple[int, ...] = (16, 32, 64, 128, 256, 512, 1024, 2048, 4096)
Z90 = 1.2815515655446004  # standard-normal 90th percentile
_GLOBAL = "*"


@dataclass(frozen=True)
class FallbackTable:
    """Fitted parameters: ``cells[(service, bucket)] = (mean, p90, n)``; ``service == "*"`` / ``bucket == -1``
    are the pooled rows used for back-off."""

    edges: tuple[int, ...]
    min_count: int
    cells: dict[tuple[str, int], tuple[float, float, int]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"edges": list(self.edges), "min_count": self.min_count,
                "cells": [[s, b, m, p, n] for (s, b), (m, p, n) in sorted(self.cells.items())]}

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> FallbackTable:
        cells = {(str(s), int(b)): (float(m), float(p), int(n)) for s, b, m, p, n in raw["cells"]}
        if (_GLOBAL, -1) not in cells:
            raise ValueError("fallback table has no global cell")
        return cls(edges=tuple(int(e) for e in raw["edges"]), min_count=int(raw["min_count"]), cells=cells)


def bucket_of(prompt_tokens: np.ndarray, edges: Sequence[int]) -> np.ndarray:
    """Bucket index 0..len(edges) of each prompt length (bucket i holds lengths < edges[i])."""
    return np.searchsorted(np.asarray(edges), np.asarray(prompt_tokens), side="right")


def fit_fallback(prompt_tokens: Sequence[int], output_tokens: Sequence[float], services: Sequence[str],
                 edges: Sequence[int] = DEFAULT_BUCKET_EDGES, min_count: int = 20) -> FallbackTable:
    """Mean and p90 per (service, bucket), per service, per bucket and overall; cells with fewer than
    ``min_count`` samples are dropped so prediction backs off to a pooled cell."""
    pt = np.asarray(prompt_tokens, dtype=np.int64)
    y = np.asarray(output_tokens, dtype=np.float64)
    sv = np.asarray([str(s) for s in services], dtype=object)
    assert pt.shape == y.shape == sv.shape and y.size > 0, "need equally long, non-empty inputs"
    bk = bucket_of(pt, edges)
    cells: dict[tuple[str, int], tuple[float, float, int]] = {}
    groups: list[tuple[str, int, np.ndarray]] = [(_GLOBAL, -1, np.ones(y.size, dtype=bool))]
    for s in sorted(set(sv.tolist())):
        ms = sv == s
        groups.append((s, -1, ms))
        groups += [(s, int(b), ms & (bk == b)) for b in np.unique(bk[ms])]
    groups += [(_GLOBAL, int(b), bk == b) for b in np.unique(bk)]
    for s, b, mask in groups:
        n = int(mask.sum())
        if n >= min_count or (s, b) == (_GLOBAL, -1):
            vals = y[mask]
            cells[(s, b)] = (float(vals.mean()), float(np.quantile(vals, 0.9)), n)
    return FallbackTable(edges=tuple(int(e) for e in edges), min_count=min_count, cells=cells)


class FallbackPredictor:
    """Per-model mean by prompt-length bucket, with back-off for unseen models and sparse buckets."""

    # the name under which the calibration gets the cell mean as a candidate base of the expected length
    MEAN_BASE = "cell_mean"

    def __init__(self, table: FallbackTable, source: str = "fallback", calibration: Calibration | None = None) -> None:
        """:param table: fitted parameters (``fit_fallback`` or ``FallbackTable.from_dict``).
        :param source: the ``LengthPredictions.source`` it reports.
        :param calibration: fitted on validation (``calibration.json``): then ``predict`` gives calibrated
            quantiles p10..p99 and a de-biased mean per serving model; without it, the cell mean and p90."""
        self.table = table
        self.source = source
        self.calibration = calibration

    @classmethod
    def fit(cls, prompt_tokens: Sequence[int], output_tokens: Sequence[float], services: Sequence[str],
            **kwargs: Any) -> FallbackPredictor:
        return cls(fit_fallback(prompt_tokens, output_tokens, services, **kwargs))

    def lookup(self, prompt_tokens: Sequence[int], services: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """(mean, p90) per request, from the most specific cell that has enough samples."""
        cells = self.table.cells
        bk = bucket_of(np.asarray(prompt_tokens, dtype=np.int64), self.table.edges)
        mean = np.empty(len(bk), dtype=np.float64)
        p90 = np.empty(len(bk), dtype=np.float64)
        for i, (s, b) in enumerate(zip(services, bk.tolist(), strict=True)):
            cell = (cells.get((s, b)) or cells.get((s, -1)) or cells.get((_GLOBAL, b))
                    or cells[(_GLOBAL, -1)])
            mean[i], p90[i] = cell[0], cell[1]
        return mean, p90

    def predict(self, prompts: Sequence[str | None], prompt_tokens: Sequence[int],
                services: Sequence[str]) -> LengthPredictions:
        assert len(prompt_tokens) == len(services), "prompt_tokens and services differ in length"
        mean, p90 = self.lookup(prompt_tokens, services)
        if self.calibration is None:
            return LengthPredictions(mean=mean, p90=p90, source=self.source)
        c, s = base_from_fallback(mean, p90)
        out = self.calibration.apply(c, s, services, {self.MEAN_BASE: mean})
        q = out.by_name()
        return LengthPredictions(mean=out.mean, p90=q["p90"], source=self.source, quantiles=q)


class OraclePredictor:
    """The true output lengths, for the upper-bound ablation.

    Either pass ``true_output_tokens`` to each ``predict`` call, or give the whole trace's lengths at
    construction: calls then consume them in order (the harness predicts requests in arrival order), and
    ``reset()`` rewinds for another replay.
    """

    source = "oracle"

    def __init__(self, true_lengths: Sequence[float] | np.ndarray | None = None) -> None:
        """:param true_lengths: output tokens of every request, in the order ``predict`` will see them."""
        self.true_lengths = None if true_lengths is None else np.asarray(true_lengths, dtype=np.float64)
        self._cursor = 0

    def reset(self) -> None:
        self._cursor = 0

    def _truth(self, n: int, true_output_tokens: Sequence[float] | None) -> np.ndarray:
        if true_output_tokens is not None:
            truth = np.asarray(true_output_tokens, dtype=np.float64)
            assert truth.shape == (n,), f"true_output_tokens has shape {truth.shape}, expected ({n},)"
            return truth
        if self.true_lengths is None:
            raise ValueError(f"{self.source} predictor needs true lengths: pass true_lengths=... to the "
                             "constructor or true_output_tokens=... to predict()")
        end = self._cursor + n
        if end > self.true_lengths.size:
            raise IndexError(f"{self.source} predictor ran out of true lengths ({self.true_lengths.size}); "
                             "call reset() before replaying again")
        truth = self.true_lengths[self._cursor:end]
        self._cursor = end
        return truth

    def predict(self, prompts: Sequence[str | None], prompt_tokens: Sequence[int], services: Sequence[str],
                true_output_tokens: Sequence[float] | None = None) -> LengthPredictions:
        truth = self._truth(len(services), true_output_tokens)
        return LengthPredictions(mean=truth.copy(), p90=truth.copy(), source=self.source)


class NoisyOraclePredictor(OraclePredictor):
    """True length x ``exp(sigma * z)``, ``z ~ N(0, 1)`` seeded; p90 is the noisy value x ``exp(Z90 * sigma)``
    (the 90th percentile of the truth given the noisy value)."""

    source = "noisy-oracle"

    def __init__(self, sigma: float, true_lengths: Sequence[float] | np.ndarray | None = None,
                 seed: int = 0) -> None:
        """:param sigma: standard deviation of the log-space noise (0.3 = about +-30%).
        :param seed: seed of the noise generator, so an ablation is reproducible."""
        if not (sigma >= 0.0 and math.isfinite(sigma)):
            raise ValueError(f"sigma must be finite and >= 0, got {sigma}")
        super().__init__(true_lengths)
        self.sigma = float(sigma)
        self.seed = seed
        self._rng = np.random.default_rng(seed)

    def reset(self) -> None:
        super().reset()
        self._rng = np.random.default_rng(self.seed)

    def predict(self, prompts: Sequence[str | None], prompt_tokens: Sequence[int], services: Sequence[str],
                true_output_tokens: Sequence[float] | None = None) -> LengthPredictions:
        truth = self._truth(len(services), true_output_tokens)
        noisy = truth * np.exp(self.sigma * self._rng.standard_normal(truth.size))
        return LengthPredictions(mean=noisy, p90=noisy * math.exp(Z90 * self.sigma), source=self.source)
