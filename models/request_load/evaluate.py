"""Evaluation of a checkpoint against its baselines (fitted on the same training data, loaded from it).

Output (the issue's eval JSON plus breakdowns)::

  {"n", "split", "model": {mae, acc_25, acc_50, acc_100, r2, kendall_tau}, "p90_coverage",
   "baselines": {"global_mean": {...}, "per_model_mean": {...}, "prompt_length_linear": {...}},
   "fallback": {...}, "per_source": {src: {"n", "model", "baselines"}}, "per_model": {name: {...}},
   "point_estimate", "engine": {device, dtype, backend, int8, max_length}}

The rows are encoded by the engine itself, so its ``max_length`` truncates them exactly as serving does.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from models.request_load.baselines import BASELINE_NAMES, Baselines
from models.request_load.checkpoint import LoadedModel
from models.request_load.data import LengthExample, SplitConfig, split_examples
from models.request_load.engine import EngineConfig, LengthEngine
from models.request_load.metrics import length_metrics
from models.request_load.train import encode_examples, point_predictions

__all__ = ["evaluate_predictions", "evaluate_checkpoint", "select_split"]


def select_split(examples: Sequence[LengthExample], loaded: LoadedModel, split: str,
                 files: Sequence[str]) -> tuple[list[LengthExample], str]:
    """``split``: "all", "test", or "auto" = the checkpoint's held-out part if any file was in its training
    data (by file name), else all rows."""
    trained_on = {f.rsplit("/", 1)[-1] for f in loaded.meta.train.get("data_files", [])}
    if split == "auto":
        split = "test" if trained_on & {f.rsplit("/", 1)[-1] for f in files} else "all"
    if split == "all":
        return list(examples), "all"
    cfg = SplitConfig(**{k: v for k, v in loaded.meta.split.items() if k in ("seed", "test_frac", "val_frac")})
    return split_examples(examples, cfg)[split], split


def _block(pred: np.ndarray, true: np.ndarray, base: dict[str, np.ndarray], mask: np.ndarray) -> dict[str, Any]:
    return {"n": int(mask.sum()), "model": length_metrics(pred[mask], true[mask]),
            "baselines": {k: length_metrics(v[mask], true[mask]) for k, v in base.items()}}


def evaluate_predictions(pred: np.ndarray, p90: np.ndarray, examples: Sequence[LengthExample],
                         baselines: Baselines) -> dict[str, Any]:
    """The eval JSON for given point predictions and p90s of ``examples``."""
    true = np.array([e.output_tokens for e in examples], dtype=np.float64)
    pt = [e.prompt_tokens for e in examples]
    models = [e.model for e in examples]
    base = {name: baselines.predict(name, pt, models) for name in BASELINE_NAMES}
    fb_mean, fb_p90 = _fallback(baselines, pt, models)
    best = min(BASELINE_NAMES, key=lambda k: float(np.abs(base[k] - true).mean()))
    out: dict[str, Any] = {"n": int(true.size), "model": length_metrics(pred, true),
                           "p90_coverage": round(float((true <= p90).mean()), 4),
                           "baselines": {k: length_metrics(v, true) for k, v in base.items()},
                           "fallback": {**length_metrics(fb_mean, true),
                                        "p90_coverage": round(float((true <= fb_p90).mean()), 4)}}
    out["best_baseline"] = best
    out["mae_ratio_to_best_baseline"] = round(out["model"]["mae"] / max(1e-9, out["baselines"][best]["mae"]), 4)
    srcs = np.array([e.source for e in examples])
    out["per_source"] = {s: _block(pred, true, base, srcs == s) for s in sorted(set(srcs.tolist()))}
    mods = np.array(models)
    out["per_model"] = {m: _block(pred, true, base, mods == m) for m in sorted(set(models))}
    return out


def _fallback(baselines: Baselines, pt: Sequence[int], models: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    from models.request_load.simple_predictors import FallbackPredictor

    return FallbackPredictor(baselines.fallback).lookup(pt, models)


def _engine_record(engine: LengthEngine) -> dict[str, Any]:
    """What the predictions came from: the eval JSON's ``engine`` (dtype resolved, max_length in effect)."""
    cfg = engine.cfg
    n_soft = engine.model.config.n_soft
    return {"device": cfg.device, "dtype": str(cfg.torch_dtype()).removeprefix("torch."), "backend": cfg.backend,
            "int8": cfg.int8, "max_length": min(engine.budget, engine.rows.budget) + n_soft}


def evaluate_checkpoint(loaded: LoadedModel, examples: Sequence[LengthExample],
                        engine_cfg: EngineConfig) -> dict[str, Any]:
    engine = LengthEngine(loaded.model, loaded.rows, engine_cfg)
    preds = point_predictions(engine, encode_examples(engine.rows, examples, engine.budget), [e.model for e in examples],
                              loaded.model.config.quantiles)
    out = evaluate_predictions(preds[loaded.meta.point_estimate], preds["p90"], examples, loaded.baselines)
    out["point_estimate"] = loaded.meta.point_estimate
    out["engine"] = _engine_record(engine)
    return out
