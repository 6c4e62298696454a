"""How much of the length-prediction error is noise in the labels: estimates from data where several serving
models answer the same instruction (alpaca_eval: 13 models per instruction).

- ``cross_model_oracle``: predicts model m's length on instruction i from the *actual* lengths of the other
  models on i (median of their log lengths minus per-model offsets, offsets fitted on a training part) — more
  than a prompt-only predictor can know, so its accuracy is a generous reference for what the prompt allows.
- ``two_way_residual_sd``: sd of ``e`` in ``log1p(L) = instruction + model + e``: the spread left when both the
  instruction and the model are known (interaction + sampling noise).
- ``perfect_median_metrics``: the metrics of a predictor that knows each row's median exactly when the truth
  scatters around it by ``exp(sd * N(0, 1))`` — the best any point predictor can do under that noise.

    python -m models.request_load.label_noise ../shared/data/prompts/alpaca_eval_pairs.jsonl.gz \\
        ../shared/data/prompts/sharegpt_pairs.jsonl.gz
"""

from __future__ import annotations

import sys
from collections import defaultdict
from collections.abc import Sequence

import numpy as np

from models.request_load.data import LengthExample, SplitConfig, read_pairs, split_examples
from models.request_load.metrics import length_metrics

__all__ = ["model_offsets", "cross_model_oracle", "two_way_residual_sd", "perfect_median_metrics"]


MIN_MODELS = 3  # answers by at least this many distinct models make an instruction a cross-model group


def _groups(examples: Sequence[LengthExample]) -> list[list[LengthExample]]:
    """Rows by instruction text, keeping instructions answered by >= MIN_MODELS distinct models (a prompt that
    recurs in a single-model file, like "hi" in ShareGPT, says nothing about differences between models)."""
    by: dict[str, list[LengthExample]] = defaultdict(list)
    for e in examples:
        by[e.prompt.strip()].append(e)
    return [g for g in by.values() if len({e.model for e in g}) >= MIN_MODELS]


def model_offsets(examples: Sequence[LengthExample]) -> dict[str, float]:
    """Per-model mean of ``log1p(L) - mean over the instruction's answers``."""
    acc: dict[str, list[float]] = defaultdict(list)
    for g in _groups(examples):
        mu = float(np.mean([np.log1p(e.output_tokens) for e in g]))
        for e in g:
            acc[e.model].append(float(np.log1p(e.output_tokens)) - mu)
    return {m: float(np.mean(v)) for m, v in acc.items()}


def cross_model_oracle(train: Sequence[LengthExample],
                       test: Sequence[LengthExample]) -> tuple[np.ndarray, np.ndarray]:
    """(predictions, truths) for every test row of a cross-model group (other models' answers in ``test``)."""
    b = model_offsets(train)
    pred, true = [], []
    for g in _groups(test):
        for e in g:
            others = [np.log1p(o.output_tokens) - b.get(o.model, 0.0) for o in g if o is not e]
            if others:
                pred.append(float(np.expm1(np.median(others) + b.get(e.model, 0.0))))
                true.append(e.output_tokens)
    return np.array(pred), np.array(true)


def two_way_residual_sd(examples: Sequence[LengthExample], robust: bool = False) -> float:
    """sd of the residuals; ``robust``: 1.4826 x median |residual| (the sd a normal core would have, so a few
    wild answers, e.g. refusals or runaway generations, do not dominate)."""
    b = model_offsets(examples)
    res: list[float] = []
    sizes: list[int] = []
    for g in _groups(examples):
        centred = [float(np.log1p(e.output_tokens)) - b[e.model] for e in g]
        res += [c - float(np.mean(centred)) for c in centred]
        sizes.append(len(g))
    k = float(np.mean(sizes))
    spread = 1.4826 * float(np.median(np.abs(res))) if robust else float(np.std(res))
    return spread * float(np.sqrt(k / (k - 1)))  # undo the shrinkage of centring on k answers


def perfect_median_metrics(lengths: np.ndarray, sd: float, draws: int = 20, seed: int = 0) -> dict[str, float]:
    """Mean metrics over ``draws`` of truths ``lengths * exp(sd N(0,1))`` predicted by ``lengths`` itself."""
    rng = np.random.default_rng(seed)
    runs = [length_metrics(lengths, lengths * np.exp(sd * rng.standard_normal(lengths.size))) for _ in range(draws)]
    return {k: round(float(np.mean([r[k] for r in runs])), 4) for k in ("mae", "acc_100", "kendall_tau")}


def main(paths: Sequence[str]) -> None:
    parts: dict[str, list[LengthExample]] = defaultdict(list)
    for path in paths:
        for name, rows in split_examples(read_pairs(path)[0], SplitConfig()).items():
            parts[name] += rows
    pred, true = cross_model_oracle(parts["train"], parts["test"])
    if true.size:
        print(f"cross-model oracle on {true.size} test rows:", length_metrics(pred, true))
    sd, robust = two_way_residual_sd(parts["train"]), two_way_residual_sd(parts["train"], robust=True)
    lengths = np.array([e.output_tokens for e in parts["test"]], dtype=np.float64)
    print(f"two-way log residual sd (train): {sd:.3f}, robust {robust:.3f}")
    for s in (0.3, robust, 0.4, sd):
        print(f"perfect-median predictor, noise sd {s:.3f}, all test lengths:", perfect_median_metrics(lengths, s))


if __name__ == "__main__":
    main(sys.argv[1:])
