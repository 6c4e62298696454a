from __future__ import annotations

import numpy as np

from models.request_load.data import LengthExample
from models.request_load.label_noise import (
    cross_model_oracle,
    model_offsets,
    perfect_median_metrics,
    two_way_residual_sd,
)


def _rows(n_prompts: int, noise: float, seed: int) -> list[LengthExample]:
    """Length = instruction size x model factor x exp(noise N(0,1)); model 'b' answers 2x as long as 'a'."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n_prompts):
        size = float(np.exp(rng.uniform(3, 7)))
        for model, factor in (("a", 1.0), ("b", 2.0), ("c", 1.0)):
            length = size * factor * float(np.exp(noise * rng.standard_normal()))
            out.append(LengthExample(f"prompt {seed} {i}", length, 10, model, "s"))
    return out


def test_offsets_recover_the_model_factor() -> None:
    b = model_offsets(_rows(300, 0.0, 0))
    assert abs((b["b"] - b["a"]) - np.log(2.0)) < 0.05  # log1p ~ log for lengths >> 1


def test_oracle_is_exact_without_noise_and_degrades_with_it() -> None:
    pred, true = cross_model_oracle(_rows(200, 0.0, 0), _rows(50, 0.0, 1))
    assert pred.shape == true.shape == (150,)
    assert np.median(np.abs(np.log1p(pred) - np.log1p(true))) < 0.05
    noisy_pred, noisy_true = cross_model_oracle(_rows(200, 0.5, 0), _rows(50, 0.5, 1))
    assert np.median(np.abs(np.log1p(noisy_pred) - np.log1p(noisy_true))) > 0.2


def test_residual_sd_measures_the_injected_noise() -> None:
    assert abs(two_way_residual_sd(_rows(400, 0.4, 2)) - 0.4) < 0.05


def test_perfect_median_accuracy_falls_with_noise() -> None:
    lengths = np.linspace(100.0, 600.0, 2000)
    quiet, loud = perfect_median_metrics(lengths, 0.05), perfect_median_metrics(lengths, 0.6)
    assert quiet["acc_100"] > 0.99 and loud["acc_100"] < 0.8 and loud["mae"] > quiet["mae"]
    assert loud["kendall_tau"] < quiet["kendall_tau"]
