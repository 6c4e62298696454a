"""The device bundle (response-free prompt copies, encoder copy) and the ensemble study's averaging."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest

from models.request_load.data import read_pairs
from models.request_load.device_bundle import strip_responses, write_bundle
from models.request_load.engine import RawOutputs
from models.request_load.ensemble_study import average


def test_stripped_copy_reads_as_the_same_examples_without_response_text(tmp_path: Path) -> None:
    src = tmp_path / "pairs.jsonl"
    rows = [{"source": "s", "model": "m", "prompt": "Write a poem über Rome", "response": "x " * 500,
             "prompt_tokens_llama2": 7, "response_tokens_llama2": 512},
            {"source": "s", "model": "m2", "prompt": "Say hi", "response": "hi", "response_tokens_llama2": 2}]
    src.write_text("".join(json.dumps(r) + "\n" for r in rows) + "not json\n")
    dst = tmp_path / "out" / "pairs.jsonl.gz"
    assert strip_responses(src, dst) == 2
    with gzip.open(dst, "rt", encoding="utf-8") as f:
        lines = f.read().splitlines()
    assert all("response\"" not in line for line in lines[:2]) and lines[2] == "not json"
    before, after = read_pairs(src)[0], read_pairs(dst)[0]
    assert [(e.prompt, e.model, e.output_tokens, e.prompt_tokens) for e in before] == \
        [(e.prompt, e.model, e.output_tokens, e.prompt_tokens) for e in after]


def test_bundle_holds_the_encoder_and_the_data(tiny_encoder: str, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PRESERVE_ENCODER_PATH", tiny_encoder)
    src = tmp_path / "a.jsonl"
    src.write_text(json.dumps({"prompt": "p", "response": "r", "response_tokens_llama2": 3}) + "\n")
    sizes = write_bundle(tmp_path / "bundle", [src], layers=1)
    assert set(sizes) == {"encoder", "data/a.jsonl.gz"}
    assert (tmp_path / "bundle" / "encoder" / "model.safetensors").exists()
    assert read_pairs(tmp_path / "bundle" / "data" / "a.jsonl.gz")[0][0].output_tokens == 3


def test_ensemble_average_is_geometric_for_quantiles_and_arithmetic_for_the_mean() -> None:
    a = RawOutputs(quantiles=np.array([[9.0, 99.0]]), mean=np.array([50.0]))
    b = RawOutputs(quantiles=np.array([[99.0, 999.0]]), mean=np.array([150.0]))
    avg = average([a, b])
    np.testing.assert_allclose(avg.quantiles, [[np.expm1(np.log(10 * 100) / 2), np.expm1(np.log(100 * 1000) / 2)]])
    np.testing.assert_allclose(avg.mean, [100.0])
    same = average([a, a])
    np.testing.assert_allclose(same.quantiles, a.quantiles)


def test_ensemble_study_caches_raw_outputs_and_scores_members_and_their_average(
        tiny_encoder: str, tmp_path: Path) -> None:
    from models.request_load.checkpoint import load_checkpoint
    from models.request_load.data import SplitConfig
    from models.request_load.ensemble_study import PARTS, cached_raw, checkpoint_key, score, split_parts
    from models.request_load.model import LengthModelConfig
    from models.request_load.train import TrainConfig, train
    from tests.models.request_load.conftest import synthetic_examples

    examples = synthetic_examples(200)
    folders = []
    for seed in (0, 1):
        folder = tmp_path / f"seed{seed}"
        train(examples, folder, TrainConfig(epochs=2, batch_size=16, lr_head=3e-3, seed=seed),
              LengthModelConfig(encoder=tiny_encoder, n_soft=4, max_length=48),
              SplitConfig(seed=0, test_frac=0.2, val_frac=0.2), data_files=["synthetic.jsonl"])
        folders.append(folder)
    assert checkpoint_key(folders[0]) != checkpoint_key(folders[1])
    loaded = load_checkpoint(folders[0], device="cpu")
    parts = split_parts(loaded, examples)
    cache = tmp_path / "cache"
    raws = [cached_raw(f, parts, cache, "cpu") for f in folders]
    assert len(list(cache.glob("raw_*.npz"))) == 2
    stamp = {p: p.stat().st_mtime_ns for p in cache.glob("raw_*.npz")}
    again = cached_raw(folders[0], parts, cache, "cpu")  # read back, not recomputed
    assert {p: p.stat().st_mtime_ns for p in cache.glob("raw_*.npz")} == stamp
    np.testing.assert_allclose(again["test"].quantiles, raws[0]["test"].quantiles)
    assert raws[0]["val"].quantiles.shape == (len(parts["val"]), len(loaded.model.config.quantiles))
    single = score(raws[0], parts, loaded)
    same = score({p: average([raws[0][p], raws[0][p]]) for p in PARTS}, parts, loaded)
    assert same["test"]["mae"] == pytest.approx(single["test"]["mae"])
    both = score({p: average([r[p] for r in raws]) for p in PARTS}, parts, loaded)
    assert both["test"]["n"] == len(parts["test"]) and 0.0 <= both["test"]["coverage"]["p90"] <= 1.0
