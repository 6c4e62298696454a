"""Baselines fitted on the same training data as the encoder and saved with its checkpoint.

The eval command compares the model with them in the same run, so evaluating a checkpoint on a new file
compares like with like. ``fallback`` (per-model mean by prompt-length bucket) is also the runtime fallback.
Torch-free: the fallback path must work where torch or the checkpoint weights are missing.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from models.request_load.simple_predictors import FallbackTable, fit_fallback

__all__ = ["Baselines", "fit_baselines", "BASELINE_NAMES", "BASELINES_FILE"]

BASELINES_FILE = "baselines.json"
BASELINE_NAMES = ("global_mean", "per_model_mean", "prompt_length_linear")


@dataclass(frozen=True)
class Baselines:
    global_mean: float
    per_model_mean: dict[str, float]  # unseen models get global_mean
    linear: tuple[float, float]  # output ~ intercept + slope * prompt_tokens (least squares)
    fallback: FallbackTable

    def predict(self, name: str, prompt_tokens: Sequence[int], models: Sequence[str]) -> np.ndarray:
        """Predicted output tokens of baseline ``name`` (one of ``BASELINE_NAMES``)."""
        n = len(models)
        if name == "global_mean":
            return np.full(n, self.global_mean)
        if name == "per_model_mean":
            return np.array([self.per_model_mean.get(m, self.global_mean) for m in models], dtype=np.float64)
        if name == "prompt_length_linear":
            a, b = self.linear
            return np.maximum(0.0, a + b * np.asarray(prompt_tokens, dtype=np.float64))
        raise KeyError(f"unknown baseline {name!r}; known: {BASELINE_NAMES}")

    def to_dict(self) -> dict[str, Any]:
        return {"global_mean": self.global_mean, "per_model_mean": self.per_model_mean,
                "prompt_length_linear": {"intercept": self.linear[0], "slope": self.linear[1]},
                "fallback": self.fallback.to_dict()}

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Baselines:
        lin = raw["prompt_length_linear"]
        return cls(global_mean=float(raw["global_mean"]),
                   per_model_mean={str(k): float(v) for k, v in raw["per_model_mean"].items()},
                   linear=(float(lin["intercept"]), float(lin["slope"])),
                   fallback=FallbackTable.from_dict(raw["fallback"]))

    def save(self, directory: Path) -> Path:
        path = Path(directory) / BASELINES_FILE
        path.write_text(json.dumps(self.to_dict(), indent=1))
        return path

    @classmethod
    def load(cls, directory: Path) -> Baselines:
        return cls.from_dict(json.loads((Path(directory) / BASELINES_FILE).read_text()))


def fit_baselines(prompt_tokens: Sequence[int], output_tokens: Sequence[float],
                  models: Sequence[str]) -> Baselines:
    pt = np.asarray(prompt_tokens, dtype=np.float64)
    y = np.asarray(output_tokens, dtype=np.float64)
    assert pt.shape == y.shape and y.size >= 2, "need at least two training examples"
    per_model = {m: float(y[np.asarray(models) == m].mean()) for m in sorted(set(models))}
    if np.ptp(pt) > 0:
        slope, intercept = np.polyfit(pt, y, 1)
    else:
        slope, intercept = 0.0, float(y.mean())
    return Baselines(global_mean=float(y.mean()), per_model_mean=per_model,
                     linear=(float(intercept), float(slope)),
                     fallback=fit_fallback(prompt_tokens, output_tokens, models))
