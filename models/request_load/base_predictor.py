"""The interface the simulator, the harness and the `predict` agent use to get output-length predictions.

Implementations: the prompt-tuned encoder, the fallback (per-model mean by prompt-length bucket),
an oracle (true lengths) and a noisy oracle (ablation). ``source`` says which one answered, so events and
metrics can flag fallback use.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np

__all__ = ["LengthPredictions", "LengthPredictor"]


@dataclass(frozen=True)
class LengthPredictions:
    """Honest names: ``mean`` is the expected length (what a scaler sums), ``quantiles["pNN"]`` the NN-th
    percentile (what a router takes as a conservative size); ``p90`` is ``quantiles["p90"]`` where given.
    Calibrated predictors fill ``quantiles`` with p10 .. p90, p95, p99 (``calibration.OUTPUT_TAUS``)."""

    mean: np.ndarray  # (N,) float, expected output tokens
    p90: np.ndarray  # (N,) float, the 90th percentile of output tokens (a conservative size)
    source: str  # "model", "fallback", "oracle", "noisy-oracle", ...
    quantiles: dict[str, np.ndarray] = field(default_factory=dict)  # "p10" -> (N,) tokens, ...
    # (N,) bool: the row's service has no entry in the service -> serving-model map (None: no map in use)
    unmapped: np.ndarray | None = None

    @property
    def p50(self) -> np.ndarray:
        """The median (the MAE-optimal point); the mean where a predictor gives no quantiles."""
        return self.quantiles.get("p50", self.mean)


@runtime_checkable
class LengthPredictor(Protocol):
    def predict(self, prompts: Sequence[str | None], prompt_tokens: Sequence[int],
                services: Sequence[str]) -> LengthPredictions: ...
