"""Evaluation of a checkpoint against its baselines (fitted on the same training data, loaded from it).

Output (the issue's eval JSON plus breakdowns)::

  {"n", "split", "model": {mae, acc_25, acc_50, acc_100, r2, kendall_tau}, "p90_coverage",
   "coverage": {"p10": share of actual <= p10, ..., "p99": ...}, "mean_sum_ratio", "mean_sum_ratio_per_model",
   "baselines": {"global_mean": {...}, "per_model_mean": {...}, "prompt_length_linear": {...}},
   "best_baseline", "mae_ratio_to_best_baseline", "mae_ratio_ci95": [lo, hi],
   "fallback": {metrics, "coverage", "mean_sum_ratio", "mean_sum_ratio_per_model", "mae_ratio_to_best_baseline",
                "mae_ratio_ci95"},
   "per_source": {src: {"n", "model", "baselines", "coverage", "mean_sum_ratio", "fallback"}},
   "per_model": {name: {...}}, "point_estimate", "calibrated", "engine": {device, dtype, backend, int8, max_length}}

Point metrics (MAE, ...) are of ``p50`` for calibrated predictions (the median), of the checkpoint's
validation-chosen point otherwise; ``mean_sum_ratio`` is of ``mean`` (the expected length).

The rows are encoded by the engine itself, so its ``max_length`` truncates them exactly as serving does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from models.request_load.base_predictor import LengthPredictions
from models.request_load.baselines import BASELINE_NAMES, Baselines
from models.request_load.calibration import Calibration
from models.request_load.checkpoint import LoadedModel
from models.request_load.data import LengthExample, SplitConfig, split_examples
from models.request_load.engine import EngineConfig, LengthEngine, RawOutputs
from models.request_load.metrics import length_metrics
from models.request_load.train import encode_examples

__all__ = ["evaluate_predictions", "evaluate_checkpoint", "select_split", "coverage", "mean_sum_ratio",
           "bootstrap_mae_ratio", "raw_outputs", "model_predictions", "fallback_predictions"]


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


def _block(pred: np.ndarray, true: np.ndarray, base: dict[str, np.ndarray], mask: np.ndarray,
           model: LengthPredictions, fallback: LengthPredictions) -> dict[str, Any]:
    return {"n": int(mask.sum()), "model": length_metrics(pred[mask], true[mask]),
            "baselines": {k: length_metrics(v[mask], true[mask]) for k, v in base.items()},
            "coverage": coverage(model, true, mask), "mean_sum_ratio": mean_sum_ratio(model.mean, true, mask),
            "fallback": {"mae": round(float(np.abs(fallback.p50[mask] - true[mask]).mean()), 4),
                         "coverage": coverage(fallback, true, mask),
                         "mean_sum_ratio": mean_sum_ratio(fallback.mean, true, mask)}}


def coverage(pred: LengthPredictions, true: np.ndarray, mask: np.ndarray | None = None) -> dict[str, float]:
    """Share of actual lengths at or below each quantile ("p10" -> 0.10 when calibrated); "p90" at least."""
    qs = pred.quantiles or {"p90": pred.p90}
    m = np.ones(true.size, dtype=bool) if mask is None else mask
    return {k: round(float((true[m] <= v[m]).mean()), 4) for k, v in sorted(qs.items(), key=lambda kv: int(kv[0][1:]))}


def mean_sum_ratio(mean: np.ndarray, true: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Sum of predicted means / sum of actual lengths: what a scaler summing ``mean`` over requests sees."""
    m = np.ones(true.size, dtype=bool) if mask is None else mask
    return round(float(mean[m].sum() / max(true[m].sum(), 1e-9)), 4)


def bootstrap_mae_ratio(pred: np.ndarray, base: np.ndarray, true: np.ndarray, groups: Sequence[str],
                        n_boot: int = 2000, seed: int = 0) -> list[float]:
    """95% interval of MAE(pred) / MAE(base), paired, resampling whole prompt groups (alpaca_eval asks each
    instruction to 13 models, so its rows are not independent; resampling rows would narrow the interval)."""
    _, gid = np.unique(np.asarray(groups, dtype=object).astype(str), return_inverse=True)
    k = int(gid.max()) + 1
    e_pred = np.bincount(gid, np.abs(pred - true), k)
    e_base = np.bincount(gid, np.abs(base - true), k)
    rng = np.random.default_rng(seed)
    w = rng.multinomial(k, np.full(k, 1.0 / k), size=n_boot).astype(np.float64)  # (n_boot, k) group weights
    ratios = (w @ e_pred) / np.maximum(w @ e_base, 1e-9)
    return [round(float(v), 4) for v in np.quantile(ratios, [0.025, 0.975])]


def evaluate_predictions(model: LengthPredictions, examples: Sequence[LengthExample], baselines: Baselines,
                         fallback: LengthPredictions | None = None, n_boot: int = 2000) -> dict[str, Any]:
    """The eval JSON of predictions ``model`` (and ``fallback``, default: the baselines' table, uncalibrated)
    of ``examples``. MAE and the other point metrics are of ``p50`` (the median; the mean where a predictor
    has no quantiles), coverage of every quantile, ``mean_sum_ratio`` of ``mean``."""
    true = np.array([e.output_tokens for e in examples], dtype=np.float64)
    pt = [e.prompt_tokens for e in examples]
    models = [e.model for e in examples]
    groups = [e.prompt.strip() for e in examples]
    if fallback is None:
        from models.request_load.simple_predictors import FallbackPredictor

        fallback = FallbackPredictor(baselines.fallback).predict([None] * len(pt), pt, models)
    pred = model.p50
    base = {name: baselines.predict(name, pt, models) for name in BASELINE_NAMES}
    best = min(BASELINE_NAMES, key=lambda k: float(np.abs(base[k] - true).mean()))
    mods = np.array(models)
    out: dict[str, Any] = {"n": int(true.size), "model": length_metrics(pred, true),
                           "p90_coverage": round(float((true <= model.p90).mean()), 4),
                           "coverage": coverage(model, true), "mean_sum_ratio": mean_sum_ratio(model.mean, true),
                           "mean_sum_ratio_per_model": {m: mean_sum_ratio(model.mean, true, mods == m)
                                                        for m in sorted(set(models))},
                           "baselines": {k: length_metrics(v, true) for k, v in base.items()},
                           "fallback": {**length_metrics(fallback.p50, true),
                                        "p90_coverage": round(float((true <= fallback.p90).mean()), 4),
                                        "coverage": coverage(fallback, true),
                                        "mean_sum_ratio": mean_sum_ratio(fallback.mean, true),
                                        "mean_sum_ratio_per_model": {m: mean_sum_ratio(fallback.mean, true, mods == m)
                                                                     for m in sorted(set(models))}}}
    out["best_baseline"] = best
    out["mae_ratio_to_best_baseline"] = round(out["model"]["mae"] / max(1e-9, out["baselines"][best]["mae"]), 4)
    out["mae_ratio_ci95"] = bootstrap_mae_ratio(pred, base[best], true, groups, n_boot)
    out["fallback"]["mae_ratio_to_best_baseline"] = round(out["fallback"]["mae"] /
                                                          max(1e-9, out["baselines"][best]["mae"]), 4)
    out["fallback"]["mae_ratio_ci95"] = bootstrap_mae_ratio(fallback.p50, base[best], true, groups, n_boot)
    out["bootstrap"] = {"resamples": n_boot, "unit": "prompt text (paired: model and baseline on the same draw)"}
    srcs = np.array([e.source for e in examples])
    out["per_source"] = {s: _block(pred, true, base, srcs == s, model, fallback) for s in sorted(set(srcs.tolist()))}
    out["per_model"] = {m: _block(pred, true, base, mods == m, model, fallback) for m in sorted(set(models))}
    return out


def model_predictions(raw: RawOutputs, models: Sequence[str], loaded: LoadedModel,
                      calibration: Calibration | None) -> LengthPredictions:
    """What the serving predictor answers for these raw outputs (``inference.outputs_from_raw``)."""
    from models.request_load.inference import outputs_from_raw, pack_raw

    return outputs_from_raw(pack_raw(raw), models, loaded.model.config.quantiles, calibration,
                            loaded.meta.point_estimate)


def fallback_predictions(loaded: LoadedModel, prompt_tokens: Sequence[int], models: Sequence[str]) -> LengthPredictions:
    from models.request_load.simple_predictors import FallbackPredictor

    cal = loaded.calibration.fallback if loaded.calibration else None
    return FallbackPredictor(loaded.baselines.fallback, calibration=cal).predict([None] * len(models), prompt_tokens,
                                                                                 models)


def _engine_record(engine: LengthEngine) -> dict[str, Any]:
    """What the predictions came from: the eval JSON's ``engine`` (dtype resolved, max_length in effect)."""
    cfg = engine.cfg
    n_soft = engine.model.config.n_soft
    return {"device": cfg.device, "dtype": str(cfg.torch_dtype()).removeprefix("torch."), "backend": cfg.backend,
            "int8": cfg.int8, "max_length": min(engine.budget, engine.rows.budget) + n_soft}


def raw_outputs(engine: LengthEngine, examples: Sequence[LengthExample]) -> RawOutputs:
    """The engine's raw quantiles and head mean for ``examples`` (rows encoded by the engine's budget)."""
    return engine.run_rows(encode_examples(engine.rows, examples, engine.budget), [e.model for e in examples])


def evaluate_checkpoint(loaded: LoadedModel, examples: Sequence[LengthExample],
                        engine_cfg: EngineConfig, as_model: str | None = None) -> dict[str, Any]:
    """:param as_model: give the predictors this serving-model name instead of each row's (e.g. a name the
        checkpoint never saw: what an unseen or unmapped serving model gets); breakdowns and baselines keep the
        true names."""
    engine = LengthEngine(loaded.model, loaded.rows, engine_cfg)
    inputs = [replace(e, model=as_model) for e in examples] if as_model else list(examples)
    model_cal = loaded.calibration
    if engine_cfg.int8 and loaded.path is not None:  # what the int8 serving path loads (load_model_predictor)
        from models.request_load.calibration import load_calibration

        model_cal = load_calibration(loaded.path, int8=True)
    raw = raw_outputs(engine, inputs)
    models = [e.model for e in inputs]
    pred = model_predictions(raw, models, loaded, model_cal.model if model_cal else None)
    fb = fallback_predictions(loaded, [e.prompt_tokens for e in examples], models)
    out = evaluate_predictions(pred, examples, loaded.baselines, fb)
    out["point_estimate"] = "p50" if pred.quantiles else loaded.meta.point_estimate
    out["calibrated"] = {"model": bool(pred.quantiles), "fallback": bool(fb.quantiles),
                         "model_fitted_on": model_cal.record.get("engine") if model_cal else None}
    out["engine"] = _engine_record(engine)
    out["as_model"] = as_model
    return out
