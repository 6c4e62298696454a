from __future__ import annotations

import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from models.request_load.data import SplitConfig
from models.request_load.engine import RawOutputs
from models.request_load.inference import ModelPredictor, load_model_predictor
from models.request_load.micro_batcher import MicroBatcher
from models.request_load.model import LengthModelConfig
from models.request_load.train import TrainConfig, train
from tests.models.request_load.conftest import synthetic_examples


@pytest.fixture(scope="module")
def ckpt(tiny_encoder: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ck_inf")
    train(synthetic_examples(80), out, TrainConfig(epochs=1, batch_size=16),
          LengthModelConfig(encoder=tiny_encoder, n_soft=4, max_length=48), SplitConfig(test_frac=0.1))
    return out


def test_model_predictor_answers_and_caches(ckpt: Path) -> None:
    pred = load_model_predictor(ckpt)
    assert isinstance(pred, ModelPredictor) and pred.available
    first = pred.predict(["give one word", "write a long essay"], [3, 4], ["gpt-3.5", "gpt-3.5"])
    assert first.source == "model" and (first.p90 >= first.mean).all()
    again = pred.predict(["write a long essay"], [4], ["gpt-3.5"])
    assert pred.stats.cache_hits == 1 and pred.stats.model_rows == 2
    assert again.mean[0] == pytest.approx(first.mean[1])


def test_cache_keys_on_what_the_model_sees(ckpt: Path) -> None:
    """Two long prompts that differ only in a middle the row never holds share one cache entry."""
    pred = load_model_predictor(ckpt)
    assert isinstance(pred, ModelPredictor) and pred.engine is not None
    pad = "one word " * (pred.engine.budget * 3)  # longer than the clip's head and tail

    def prompt(head: str, middle: str) -> str:
        return f"write a {head} essay {pad}{middle}{pad} a poem"

    first = pred.predict([prompt("long", "code")], [900], ["gpt-3.5"])
    again = pred.predict([prompt("long", "story")], [900], ["gpt-3.5"])
    assert pred.stats.cache_hits == 1 and again.mean[0] == first.mean[0]
    pred.predict([prompt("short", "code")], [900], ["gpt-3.5"])  # the head differs: a miss
    assert pred.stats.cache_hits == 1 and pred.stats.model_rows == 2


def test_missing_prompt_rows_use_the_fallback(ckpt: Path) -> None:
    pred = load_model_predictor(ckpt)
    out = pred.predict(["give one word", None], [3, 400], ["gpt-3.5", "gpt-3.5"])
    assert out.source == "model+fallback"
    fb_mean, _ = pred.fallback.lookup([400], ["gpt-3.5"])
    assert out.mean[1] == fb_mean[0]


def test_missing_checkpoint_falls_back(tmp_path: Path) -> None:
    pred = load_model_predictor(tmp_path / "absent")
    assert not pred.available and "config.json" in pred.unavailable
    assert pred.predict(["hello"], [2], ["x"]).source == "fallback"


def test_corrupt_checkpoint_falls_back(ckpt: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(ckpt, broken)
    (broken / "trainable.pt").write_bytes(b"not a torch file")
    pred = load_model_predictor(broken)
    out = pred.predict(["hello"], [2], ["gpt-3.5"])
    assert out.source == "fallback" and not pred.available
    assert out.mean[0] == pred.fallback.lookup([2], ["gpt-3.5"])[0][0]  # its own baselines still load


class _SlowEngine:
    """Wraps a real engine and delays it, to exercise the timeout path."""

    def __init__(self, engine: object, delay_s: float) -> None:
        self.inner, self.delay_s, self.model = engine, delay_s, engine.model  # type: ignore[attr-defined]
        self.budget = engine.budget  # type: ignore[attr-defined]

    def run(self, prompts: list[str], services: list[str]) -> RawOutputs:
        time.sleep(self.delay_s)
        return self.inner.run(prompts, services)  # type: ignore[attr-defined]


def test_slow_model_times_out_to_fallback_then_fills_cache(ckpt: Path) -> None:
    base = load_model_predictor(ckpt)
    pred = ModelPredictor(_SlowEngine(base.engine, 0.5), base.fallback, timeout_s=0.05)  # type: ignore[arg-type]
    out = pred.predict(["give one word"], [3], ["gpt-3.5"])
    assert out.source == "fallback" and pred.stats.timeouts == 1
    assert pred.predict(["other prompt"], [3], ["gpt-3.5"]).source == "fallback"  # busy: no queueing
    time.sleep(0.8)
    assert pred.predict(["give one word"], [3], ["gpt-3.5"]).source == "model"  # late result was cached
    pred.close()


def test_micro_batcher_groups_requests(ckpt: Path) -> None:
    pred = load_model_predictor(ckpt)
    batcher = MicroBatcher(pred, max_batch_size=8, max_wait_s=0.2)
    futs = [batcher.submit(f"give one word {i}", 3, "gpt-3.5") for i in range(12)]
    res = [f.result(timeout=30) for f in futs]
    batcher.close()
    assert batcher.batches == 2 and all(r.source == "model" and r.mean > 0 for r in res)
    direct = pred.predict(["give one word 5"], [3], ["gpt-3.5"])
    assert res[5].mean == pytest.approx(float(direct.mean[0]))
    assert np.isfinite([r.p90 for r in res]).all()


def test_parallel_tokenization_answers_as_the_serial_path(ckpt: Path) -> None:
    """A tokenizer pool working on chunks of a call (overlapping the forward) changes nothing in the answers."""
    # fp32: dynamic int8 quantises activations per batch, so a different batching would change the answers
    serial = load_model_predictor(ckpt, backend="torch", int8=False, cache_size=0)
    par = load_model_predictor(ckpt, backend="torch", int8=False, cache_size=0, tokenizer_threads=3,
                               tokenize_rows=4)
    assert isinstance(par, ModelPredictor) and par.engine is not None and par.engine.cfg.tokenize_rows == 4
    prompts = [f"{'write a long essay' if i % 3 else 'give one word'} about {i} " * (1 + i % 5) for i in range(37)]
    services = ["gpt-3.5" if i % 2 else "llama-2-7b-chat-hf" for i in range(37)]
    a = serial.predict(prompts, [10] * 37, services)
    b = par.predict(prompts, [10] * 37, services)
    np.testing.assert_allclose(b.mean, a.mean, rtol=1e-5)
    np.testing.assert_allclose(b.p90, a.p90, rtol=1e-5)
