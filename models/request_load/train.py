"""Training of the length model: split by prompt, baselines on the training part, prompt tuning with long-tail
re-weighting, best epoch chosen on the validation part, held-out metrics recorded in the checkpoint.
"""

from __future__ import annotations

import copy
import math
import random
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from models.request_load.baselines import fit_baselines
from models.request_load.checkpoint import CheckpointMeta, save_checkpoint
from models.request_load.data import LengthExample, SplitConfig, split_examples
from models.request_load.encoding import RowEncoder, collate, load_backbone, load_tokenizer
from models.request_load.engine import EngineConfig, LengthEngine
from models.request_load.metrics import length_metrics
from models.request_load.model import POINT_MEAN, LengthModel, LengthModelConfig, length_loss, quantile_name

__all__ = ["TrainConfig", "train", "long_tail_weights", "length_batches", "point_predictions", "encode_examples"]

TAIL_EDGES = (64, 128, 256, 512, 1024, 2048)  # output-token bins for long-tail re-weighting


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = field(default=10, metadata={"help": "passes over the training part"})
    batch_size: int = field(default=64, metadata={"help": "rows per optimiser step"})
    lr_soft: float = field(default=1e-2, metadata={"help": "learning rate of the soft prompt"})
    lr_head: float = field(default=2e-3, metadata={"help": "learning rate of head + model embedding"})
    lr_layer: float = field(default=2e-4, metadata={"help": "learning rate of the unfrozen encoder layer"})
    lr_lora: float = field(default=1e-3, metadata={"help": "learning rate of the low-rank adapters (if any)"})
    weight_decay: float = field(default=0.01, metadata={"help": "AdamW weight decay (not on the soft prompt)"})
    warmup_frac: float = field(default=0.05, metadata={"help": "linear warm-up share of steps, cosine after"})
    # off by default: the target metric (MAE) is unweighted and re-weighting moves the fitted median; on
    # validation alpha 0.5 cost 3-5 tokens of MAE (2 seeds each, README "Recipe"). The p90 serves the tail.
    tail_alpha: float = field(default=0.0, metadata={"help": "long-tail re-weighting: weight = bin "
                                                               "frequency^-alpha (0 = off)"})
    name_dropout: float = field(default=0.1, metadata={"help": "share of rows trained as 'unknown model'"})
    seed: int = field(default=0, metadata={"help": "seed of init order, shuffling and dropout"})
    device: str = field(default="cpu", metadata={"help": "cpu or cuda"})
    eval_batch_size: int = field(default=256, metadata={"help": "rows per forward when evaluating"})
    swa_from: int = field(default=4, metadata={
        "help": "from this epoch on, the running average of the trained weights (SWA) competes on validation "
                "(0 = off)"})
    max_seconds: float | None = field(default=None, metadata={"help": "stop after the epoch that passes this"})


def long_tail_weights(y: np.ndarray, alpha: float, edges: Sequence[int] = TAIL_EDGES) -> np.ndarray:
    """Per-row weights ``freq(bin)^-alpha`` normalised to mean 1, so rare long responses count more."""
    bins = np.searchsorted(np.asarray(edges), y, side="right")
    freq = np.bincount(bins, minlength=len(edges) + 1) / len(y)
    w = freq[bins] ** -alpha
    return w / w.mean()


def length_batches(lengths: Sequence[int], batch_size: int, rng: random.Random, pool: int = 50) -> list[list[int]]:
    """Shuffled batches of similar-length rows: shuffle, sort within pools of ``pool`` batches, cut, shuffle."""
    idx = list(range(len(lengths)))
    rng.shuffle(idx)
    batches: list[list[int]] = []
    step = batch_size * pool
    for start in range(0, len(idx), step):
        chunk = sorted(idx[start:start + step], key=lambda i: lengths[i])
        batches += [chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size)]
    rng.shuffle(batches)
    return batches


def point_predictions(engine: LengthEngine, rows: Sequence[Any], models: Sequence[str],
                      quantiles: Sequence[float]) -> dict[str, np.ndarray]:
    """Every candidate point estimate by name: one per quantile ("p10", "p50", ...) and "mean"."""
    out = engine.run_rows(rows, models)
    return {**{quantile_name(t): out.quantiles[:, i] for i, t in enumerate(quantiles)}, POINT_MEAN: out.mean}


def _optimizer(model: LengthModel, cfg: TrainConfig) -> torch.optim.Optimizer:
    groups: dict[str, list[torch.nn.Parameter]] = {"soft": [], "head": [], "layer": [], "lora": []}
    for name, p in model.named_parameters():
        if p.requires_grad:
            kind = ("soft" if name == "soft_prompt" else "lora" if ".lora_" in name
                    else "layer" if name.startswith("backbone.") else "head")
            groups[kind].append(p)
    return torch.optim.AdamW([
        {"params": groups["soft"], "lr": cfg.lr_soft, "weight_decay": 0.0},
        {"params": groups["head"], "lr": cfg.lr_head, "weight_decay": cfg.weight_decay},
        {"params": groups["layer"], "lr": cfg.lr_layer, "weight_decay": cfg.weight_decay},
        {"params": groups["lora"], "lr": cfg.lr_lora, "weight_decay": 0.0}])


def _lr_factor(step: int, total: int, warmup: int) -> float:
    if step < warmup:
        return (step + 1) / warmup
    return 0.5 * (1.0 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))


def _run_epoch(model: LengthModel, opt: torch.optim.Optimizer, rows: list[Any], y: np.ndarray, w: np.ndarray,
               models: list[str], cfg: TrainConfig, rng: random.Random, step: int, total: int) -> tuple[float, int]:
    model.train()
    device = torch.device(cfg.device)
    warmup = max(1, int(cfg.warmup_frac * total))
    losses = []
    bar = tqdm(length_batches([len(r[0]) for r in rows], cfg.batch_size, rng), desc="train", leave=False)
    for batch_idx in bar:
        names = [models[i] if rng.random() >= cfg.name_dropout else "" for i in batch_idx]
        b = collate([rows[i] for i in batch_idx], model.model_ids(names),
                    cap=model.config.max_length - model.config.n_soft).to(device)
        for g, base in zip(opt.param_groups, (cfg.lr_soft, cfg.lr_head, cfg.lr_layer, cfg.lr_lora), strict=True):
            g["lr"] = base * _lr_factor(step, total, warmup)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            q, mean = model(b.input_ids, b.attention_mask, b.token_type_ids, b.model_ids)
        loss = length_loss(q, mean, torch.as_tensor(y[batch_idx], device=device, dtype=torch.float32),
                           torch.as_tensor(w[batch_idx], device=device, dtype=torch.float32),
                           model.config.quantiles, model.config.mean_scale)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], 1.0)
        opt.step()
        step += 1
        losses.append(loss.item())
        bar.set_postfix(loss=f"{np.mean(losses[-50:]):.3f}")
    return float(np.mean(losses)), step


def _validate(engine: LengthEngine, rows_va: Sequence[Any], va: Sequence[LengthExample],
              quantiles: Sequence[float]) -> tuple[dict[str, float], str, dict[str, float | None]]:
    """Validation MAE of every candidate point estimate, the best one's name and its metrics. The MAE-optimal
    point is the conditional median, but the long-tail weights shift the fitted quantiles, so every quantile
    and the expected length compete."""
    y_va = np.array([e.output_tokens for e in va])
    preds = point_predictions(engine, rows_va, [e.model for e in va], quantiles)
    maes = {k: float(np.abs(v - y_va).mean()) for k, v in preds.items()}
    point = min(maes, key=maes.__getitem__)
    return maes, point, length_metrics(preds[point], y_va)


def encode_examples(rows_enc: RowEncoder, examples: Sequence[LengthExample], budget: int | None = None,
                    chunk: int = 2048) -> list[Any]:
    """Rows of ``examples`` (ids per row: ``budget``, default the model's), tokenized in chunks with a progress bar."""
    out: list[Any] = []
    for s in tqdm(range(0, len(examples), chunk), desc="tokenize", leave=False):
        part = examples[s:s + chunk]
        out += rows_enc.encode([e.prompt for e in part], [e.model for e in part], budget=budget)
    return out


def train(examples: Sequence[LengthExample], out_dir: Path, cfg: TrainConfig, model_cfg: LengthModelConfig,
          split: SplitConfig | None = None, data_files: Sequence[str] = ()) -> dict[str, Any]:
    """Train, save the checkpoint in ``out_dir`` and return its recorded metadata."""
    split = split or SplitConfig()
    torch.manual_seed(cfg.seed)
    rng = random.Random(cfg.seed)
    parts = split_examples(examples, split)
    tr, va, te = parts["train"], parts["val"] or parts["train"][:256], parts["test"]
    assert tr, "no training examples after the split"
    baselines = fit_baselines([e.prompt_tokens for e in tr], [e.output_tokens for e in tr], [e.model for e in tr])
    model_cfg = LengthModelConfig.from_dict({**model_cfg.to_dict(), "models": sorted({e.model for e in tr})})
    model = LengthModel(model_cfg, load_backbone(model_cfg.encoder)).to(cfg.device)
    rows_enc = RowEncoder(load_tokenizer(model_cfg.encoder), model_cfg.max_length, model_cfg.n_soft,
                          model_cfg.max_model_tokens)
    rows_tr, rows_va = encode_examples(rows_enc, tr), encode_examples(rows_enc, va)
    y = np.array([e.output_tokens for e in tr], dtype=np.float64)
    w = long_tail_weights(y, cfg.tail_alpha)
    models = [e.model for e in tr]
    opt = _optimizer(model, cfg)
    total = cfg.epochs * math.ceil(len(tr) / cfg.batch_size)
    step, best, history = 0, (float("inf"), "p50", 0, "live"), []
    best_state = copy.deepcopy(model.trainable_state())
    eng_cfg = EngineConfig(device=cfg.device, dtype="fp32", max_batch_size=cfg.eval_batch_size)
    t0 = time.time()
    swa: dict[str, torch.Tensor] = {}
    for epoch in tqdm(range(cfg.epochs), desc="epochs"):
        loss, step = _run_epoch(model, opt, rows_tr, y, w, models, cfg, rng, step, total)
        live = copy.deepcopy(model.trainable_state())
        candidates = [("", live)]
        if cfg.swa_from and epoch + 1 >= cfg.swa_from:
            n_avg = epoch + 2 - cfg.swa_from
            swa = {k: v.float().clone() if not swa else swa[k] + (v.float() - swa[k]) / n_avg for k, v in live.items()}
            if n_avg >= 2:
                candidates.append(("swa", {k: v.to(live[k].dtype) for k, v in swa.items()}))
        record: dict[str, Any] = {"epoch": epoch + 1, "train_loss": round(loss, 4)}
        for tag, state in candidates:
            model.load_state_dict(state, strict=False)
            maes, point, val = _validate(LengthEngine(model, rows_enc, eng_cfg), rows_va, va, model_cfg.quantiles)
            record.update({f"{tag}val_mae_{k}": round(v, 2) for k, v in maes.items()})
            record.update({f"{tag}val_point": point, f"{tag}val_kendall_tau": val["kendall_tau"],
                           f"{tag}val_acc_100": val["acc_100"]})
            if maes[point] < best[0]:
                best, best_state = (maes[point], point, epoch + 1, tag or "live"), state
        model.load_state_dict(live, strict=False)
        history.append(record)
        tqdm.write(str(record))
        if cfg.max_seconds is not None and time.time() - t0 > cfg.max_seconds:
            tqdm.write(f"time budget {cfg.max_seconds}s spent after epoch {epoch + 1}")
            break
    model.load_state_dict(best_state, strict=False)
    meta = CheckpointMeta(point_estimate=best[1], split={**asdict(split), "n_train": len(tr), "n_val": len(va),
                                                         "n_test": len(te)},
                          train={**asdict(cfg), "best_epoch": best[2], "best_weights": best[3], "history": history,
                                 "seconds": round(time.time() - t0, 1), "data_files": list(data_files)})
    if te:
        engine = LengthEngine(model, rows_enc, eng_cfg)
        preds = point_predictions(engine, encode_examples(rows_enc, te), [e.model for e in te], model_cfg.quantiles)
        y_te = np.array([e.output_tokens for e in te])
        meta.metrics = {"test": length_metrics(preds[best[1]], y_te),
                        "test_p90_coverage": round(float((y_te <= preds["p90"]).mean()), 4)}
    save_checkpoint(out_dir, model, meta, baselines)
    return {"point_estimate": meta.point_estimate, "split": meta.split, "train": meta.train,
            "metrics": meta.metrics}
