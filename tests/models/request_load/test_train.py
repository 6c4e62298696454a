from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch

from models.request_load.baselines import fit_baselines
from models.request_load.checkpoint import CheckpointMeta, load_checkpoint, read_meta, save_checkpoint
from models.request_load.data import SplitConfig
from models.request_load.encoding import RowEncoder, load_backbone, load_tokenizer
from models.request_load.engine import EngineConfig, LengthEngine
from models.request_load.model import LengthModel, LengthModelConfig, find_layer_stack
from models.request_load.train import TrainConfig, length_batches, long_tail_weights, train
from tests.models.request_load.conftest import synthetic_examples


@pytest.fixture(scope="module")
def trained(tiny_encoder: str, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("ck")
    meta = train(synthetic_examples(160), out, TrainConfig(epochs=3, batch_size=16, lr_head=3e-3, seed=0),
                 LengthModelConfig(encoder=tiny_encoder, n_soft=4, max_length=48),
                 SplitConfig(seed=0, test_frac=0.15, val_frac=0.1), data_files=["synthetic.jsonl"])
    return out, meta


def test_tiny_training_lowers_the_loss(trained: tuple[Path, dict]) -> None:
    history = trained[1]["train"]["history"]
    assert history[-1]["train_loss"] < history[0]["train_loss"] * 0.8
    assert trained[1]["metrics"]["test"]["mae"] is not None


def test_checkpoint_holds_only_trained_parameters_and_round_trips(trained: tuple[Path, dict]) -> None:
    out, meta = trained
    assert sorted(p.name for p in out.iterdir()) == ["baselines.json", "config.json", "trainable.pt"]
    state = torch.load(out / "trainable.pt", weights_only=True)
    assert "soft_prompt" in state and not any("embeddings.word_embeddings" in k for k in state)
    a, b = load_checkpoint(out), load_checkpoint(out)
    assert a.meta.point_estimate == meta["point_estimate"]
    prompts, models = ["write a long essay about code", "give one word"], ["gpt-3.5", "unseen-model"]
    ra = LengthEngine(a.model, a.rows, EngineConfig()).run(prompts, models)
    rb = LengthEngine(b.model, b.rows, EngineConfig()).run(prompts, models)
    np.testing.assert_allclose(ra.quantiles, rb.quantiles)  # deterministic after reload
    assert (np.diff(ra.quantiles, axis=1) >= 0).all()


def test_model_learned_the_signal(trained: tuple[Path, dict]) -> None:
    loaded = load_checkpoint(trained[0])
    out = LengthEngine(loaded.model, loaded.rows, EngineConfig()).run(
        ["write a long essay please", "give one word please"], ["gpt-3.5", "gpt-3.5"])
    i50 = loaded.model.config.quantiles.index(0.5)
    assert out.quantiles[0, i50] > out.quantiles[1, i50]  # 'long' prompts predicted longer


def test_engine_batching_does_not_change_results(trained: tuple[Path, dict]) -> None:
    loaded = load_checkpoint(trained[0])
    prompts = [f"give one word {'code ' * i}" for i in range(9)]
    one = LengthEngine(loaded.model, loaded.rows, EngineConfig(max_batch_size=64)).run(prompts, ["gpt-3.5"] * 9)
    small = LengthEngine(loaded.model, loaded.rows, EngineConfig(max_batch_size=2)).run(prompts, ["gpt-3.5"] * 9)
    np.testing.assert_allclose(one.quantiles, small.quantiles, rtol=1e-4)
    # CPU defaults: buckets of cpu_batch_rows=8 and no pad_multiple; one padded batch of 9 gives the same answers
    padded = LengthEngine(loaded.model, loaded.rows, EngineConfig(max_batch_size=64, cpu_batch_rows=None,
                                                                  pad_multiple=8))
    assert padded.step == 64 and LengthEngine(loaded.model, loaded.rows, EngineConfig()).step == 8
    np.testing.assert_allclose(one.quantiles, padded.run(prompts, ["gpt-3.5"] * 9).quantiles, rtol=1e-4)


def test_long_tail_weights() -> None:
    y = np.array([50.0] * 90 + [3000.0] * 10)
    w = long_tail_weights(y, 0.5)
    assert w.mean() == pytest.approx(1.0)
    assert w[-1] == pytest.approx(w[0] * 3.0)  # (0.1 / 0.9) ** -0.5
    assert (long_tail_weights(y, 0.0) == 1.0).all()


def test_length_batches_cover_each_row_once() -> None:
    lengths = [random.Random(1).randint(1, 100) for _ in range(103)]
    batches = length_batches(lengths, 10, random.Random(0), pool=3)
    assert sorted(i for b in batches for i in b) == list(range(103))
    assert all(len(b) <= 10 for b in batches)


def test_swa_and_every_quantile_compete_on_validation(tiny_encoder: str, tmp_path: Path) -> None:
    meta = train(synthetic_examples(160), tmp_path, TrainConfig(epochs=3, batch_size=16, lr_head=3e-3, swa_from=2),
                 LengthModelConfig(encoder=tiny_encoder, n_soft=4, max_length=48, lora_rank=2),
                 SplitConfig(seed=0, test_frac=0.15, val_frac=0.1), data_files=["synthetic.jsonl"])
    history = meta["train"]["history"]
    assert "swaval_mae_p50" not in history[0] and "swaval_mae_p50" in history[2]  # average of epochs 2..3
    assert {f"val_mae_p{t}" for t in range(10, 100, 10)} | {"val_mae_mean"} <= set(history[0])
    tag = "swa" if meta["train"]["best_weights"] == "swa" else ""
    best = history[meta["train"]["best_epoch"] - 1]
    chosen = best[f"{tag}val_mae_{meta['point_estimate']}"]
    assert chosen == min(v for k, v in best.items() if k.startswith(f"{tag}val_mae_"))
    state = torch.load(tmp_path / "trainable.pt", weights_only=True)
    assert any(".lora_a" in k for k in state) and not any(k.endswith(".base.weight") for k in state)
    from models.request_load.inference import load_model_predictor

    pred = load_model_predictor(tmp_path, backend="torch", int8=False, cache_size=0)
    assert pred.engine is not None and pred.point_estimate == meta["point_estimate"]
    raw = pred.engine.run(["write a long essay please"], ["gpt-3.5"])
    names = [f"p{round(t * 100)}" for t in pred.engine.model.config.quantiles]
    want = raw.mean if meta["point_estimate"] == "mean" else raw.quantiles[:, names.index(meta["point_estimate"])]
    got = pred.predict(["write a long essay please"], [5], ["gpt-3.5"]).mean
    np.testing.assert_allclose(got, want, rtol=1e-5)


def test_truncated_encoder_checkpoint_round_trips(tiny_encoder: str, tmp_path: Path) -> None:
    cfg = LengthModelConfig(encoder=tiny_encoder, n_soft=4, max_length=48, models=("gpt-3.5",), encoder_layers=1)
    torch.manual_seed(0)
    model = LengthModel(cfg, load_backbone(tiny_encoder)).eval()
    with torch.no_grad():  # trained-looking weights that survive the checkpoint's fp16 storage exactly
        for p in model.parameters():
            if p.requires_grad:
                p.add_(0.05 * torch.randn_like(p)).copy_(p.half().float())
    rows = RowEncoder(load_tokenizer(tiny_encoder), cfg.max_length, cfg.n_soft, cfg.max_model_tokens)
    prompts, models = ["write a long essay about code", "give one word"], ["gpt-3.5", "unseen-model"]
    before = LengthEngine(model, rows, EngineConfig()).run(prompts, models)
    save_checkpoint(tmp_path, model, CheckpointMeta(), fit_baselines([3, 5], [10.0, 20.0], ["gpt-3.5"] * 2))
    assert read_meta(tmp_path)[0].encoder_layers == 1
    loaded = load_checkpoint(tmp_path)  # rebuilt from the full 2-layer encoder path + config.json
    assert len(find_layer_stack(loaded.model.backbone)) == 1
    after = LengthEngine(loaded.model, loaded.rows, EngineConfig()).run(prompts, models)
    np.testing.assert_allclose(after.quantiles, before.quantiles, rtol=1e-5)
    np.testing.assert_allclose(after.mean, before.mean, rtol=1e-5)
