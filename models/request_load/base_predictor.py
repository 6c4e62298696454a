"""The interface the simulator, the harness and the `predict` agent use to get output-length predictions.

Implementations: the prompt-tuned encoder, the fallback (per-model mean by prompt-length bucket),
an oracle (true lengths) and a noisy oracle (ablation). ``source`` says which one answered, so events and
metrics can flag fallback use.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

__all__ = ["LengthPredictions", "LengthPredictor"]


@dataclass(frozen=True)
class LengthPredictions:
    mean: np.ndarray  # (N,) float, expected output tokens
    p90: np.ndarray  # (N,) float, a conservative (upper) quantile of output tokens
    source: str  # "model", "fallback", "oracle", "noisy-oracle", ...


@runtime_checkable
class LengthPredictor(Protocol):
    def predict(self, prompts: Sequence[str | None], prompt_tokens: Sequence[int],
                services: Sequence[str]) -> LengthPredictions: ...
