"""What averaging several checkpoints of the same recipe (different training seeds) would buy, before building it.

Why: on the held-out part the shipped checkpoint's MAE ratio to the best baseline is 0.716 with a bootstrap
interval [0.669, 0.767], above the issue's 0.75 upper end; three seeds of the recipe scored 0.711-0.725, so the seed
noise is about as large as the gap. Averaging K members (mean of log1p quantiles, mean of expected lengths) cuts
that noise at K times the encoder compute. This study measures it the way ``preserve load-predictor eval`` would:
the ensemble's raw outputs get their own calibration fitted on the validation part (the same ``fit_calibration``
as ``calibrate``), and MAE (of calibrated p50), coverage, sum ratios and the bootstrap interval are reported on
validation (for choosing) and on the held-out test part (for reporting), for each member alone and for the
ensemble. Raw outputs are cached per checkpoint (``--cache``), so the forward runs once (e.g. on the GPU device,
``--raw-only``) and the study itself runs anywhere.

    python -m models.request_load.ensemble_study --data ../shared/data/prompts/alpaca_eval_pairs.jsonl.gz \\
        --data ../shared/data/prompts/sharegpt_pairs.jsonl.gz --cache out/raw \\
        models/request_load/checkpoints/default seed1 seed2
"""

from __future__ import annotations

import argparse
import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from models.request_load.calibration import base_from_quantiles, fit_calibration
from models.request_load.checkpoint import LoadedModel, load_checkpoint
from models.request_load.data import LengthExample, SplitConfig, read_pairs, split_examples
from models.request_load.engine import EngineConfig, LengthEngine, RawOutputs
from models.request_load.evaluate import evaluate_predictions, fallback_predictions, raw_outputs
from models.request_load.inference import MODEL_MEAN_BASE, outputs_from_raw, pack_raw

PARTS = ("val", "test")


def checkpoint_key(folder: Path) -> str:
    """Cache key of a checkpoint: a hash of its trained weights (two folders with equal weights share it)."""
    return hashlib.sha1((folder / "trainable.pt").read_bytes(), usedforsecurity=False).hexdigest()[:12]


def split_parts(loaded: LoadedModel, examples: Sequence[LengthExample]) -> dict[str, list[LengthExample]]:
    split = SplitConfig(**{k: v for k, v in loaded.meta.split.items() if k in ("seed", "test_frac", "val_frac")})
    return split_examples(examples, split)


def cached_raw(folder: Path, examples: dict[str, list[LengthExample]], cache: Path,
               device: str) -> dict[str, RawOutputs]:
    """Raw outputs (fp32) of the checkpoint in ``folder`` on the validation and test parts, from ``cache`` or run."""
    path = cache / f"raw_{checkpoint_key(folder)}.npz"
    if not path.exists():
        loaded = load_checkpoint(folder, device="cpu")
        engine = LengthEngine(loaded.model, loaded.rows, EngineConfig(device=device, dtype="fp32", max_batch_size=128,
                                                                      backend="torch", int8=False))
        arrays: dict[str, np.ndarray] = {}
        for part in PARTS:
            raw = raw_outputs(engine, examples[part])
            arrays[f"{part}_q"], arrays[f"{part}_mean"] = raw.quantiles, raw.mean
        cache.mkdir(parents=True, exist_ok=True)
        np.savez(path, val_q=arrays["val_q"], val_mean=arrays["val_mean"], test_q=arrays["test_q"],
                 test_mean=arrays["test_mean"])
    with np.load(path) as z:
        return {part: RawOutputs(quantiles=z[f"{part}_q"], mean=z[f"{part}_mean"]) for part in PARTS}


def average(members: Sequence[RawOutputs]) -> RawOutputs:
    """The ensemble's raw outputs: geometric mean of each quantile (the heads are fitted in log1p space; the mean
    of log1p keeps them monotone), arithmetic mean of the expected lengths."""
    q = np.expm1(np.mean([np.log1p(np.maximum(m.quantiles, 0.0)) for m in members], axis=0))
    return RawOutputs(quantiles=q, mean=np.mean([m.mean for m in members], axis=0))


def score(raw: dict[str, RawOutputs], parts: dict[str, list[LengthExample]], loaded: LoadedModel) -> dict[str, Any]:
    """Calibrate on validation, then the eval JSON's headline figures on validation and on test."""
    val = parts["val"]
    taus = loaded.model.config.quantiles
    c, s = base_from_quantiles(raw["val"].quantiles, taus)
    cal = fit_calibration(c, s, np.array([e.output_tokens for e in val], dtype=np.float64), [e.model for e in val],
                          [e.prompt.strip() for e in val], {MODEL_MEAN_BASE: raw["val"].mean})
    out: dict[str, Any] = {"calibration": {"k": str(cal.k), "k_mean": str(cal.k_mean), "mean_base": cal.mean_base}}
    for part in PARTS:
        rows = parts[part]
        models = [e.model for e in rows]
        pred = outputs_from_raw(pack_raw(raw[part]), models, taus, cal, loaded.meta.point_estimate)
        ev = evaluate_predictions(pred, rows, loaded.baselines,
                                  fallback_predictions(loaded, [e.prompt_tokens for e in rows], models))
        out[part] = {"n": ev["n"], "mae": ev["model"]["mae"], "mae_ratio": ev["mae_ratio_to_best_baseline"],
                     "mae_ratio_ci95": ev["mae_ratio_ci95"], "coverage": ev["coverage"],
                     "mean_sum_ratio": ev["mean_sum_ratio"],
                     "per_model": {m: {"n": b["n"], "mae": b["model"]["mae"], "p10": b["coverage"]["p10"],
                                       "p90": b["coverage"]["p90"], "mean_sum_ratio": b["mean_sum_ratio"]}
                                   for m, b in ev["per_model"].items()}}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoints", nargs="+", type=Path, help="checkpoint folders of one recipe (same split)")
    ap.add_argument("--data", action="append", required=True, help="the checkpoints' training files (repeat)")
    ap.add_argument("--cache", type=Path, default=Path("out/ensemble_raw"), help="raw outputs per checkpoint")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--raw-only", action="store_true", help="only compute and cache the raw outputs")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    loaded = [load_checkpoint(f, device="cpu") for f in args.checkpoints]
    if any(m.meta.split != loaded[0].meta.split for m in loaded):
        raise SystemExit("the checkpoints were split differently: their validation/test parts differ")
    examples = [e for path in args.data for e in read_pairs(path)[0]]
    parts = split_parts(loaded[0], examples)
    raws = [cached_raw(f, parts, args.cache, args.device) for f in args.checkpoints]
    if args.raw_only:
        print(f"cached raw outputs of {len(raws)} checkpoint(s) in {args.cache}")
        return
    result: dict[str, Any] = {}
    for folder, raw in zip(args.checkpoints, raws, strict=True):
        result[str(folder)] = score(raw, parts, loaded[0])
    if len(raws) > 1:
        result["ensemble"] = score({p: average([r[p] for r in raws]) for p in PARTS}, parts, loaded[0])
    for name, r in result.items():
        print(f"{name}: val MAE {r['val']['mae']:.1f} ratio {r['val']['mae_ratio']:.4f} | test MAE {r['test']['mae']:.1f}"
              f" ratio {r['test']['mae_ratio']:.4f} {r['test']['mae_ratio_ci95']} p10 {r['test']['coverage']['p10']:.3f}"
              f" p90 {r['test']['coverage']['p90']:.3f} sum {r['test']['mean_sum_ratio']:.3f}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
