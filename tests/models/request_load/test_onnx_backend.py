from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from models.request_load.encoding import RowEncoder, load_backbone, load_tokenizer
from models.request_load.engine import EngineConfig, LengthEngine
from models.request_load.model import LengthModel, LengthModelConfig
from models.request_load.onnx_backend import weights_key

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

PROMPTS = ["write a long essay about code", "give one word", "translate " * 30, "poem"]
MODELS = ["llama", "gpt-3.5", "llama", "never-seen-model"]


def _engine(encoder: str, cache: Path, **cfg: object) -> LengthEngine:
    torch.manual_seed(0)  # the head's init draws from the global generator: same weights on every call
    mcfg = LengthModelConfig(encoder=encoder, n_soft=4, max_length=64, models=("gpt-3.5", "llama"), lora_rank=2)
    model = LengthModel(mcfg, load_backbone(encoder))
    gen = torch.Generator().manual_seed(0)
    for name, p in model.named_parameters():  # non-zero adapters, so the merge is exercised
        if "lora_b" in name:
            p.data.copy_(0.05 * torch.randn(p.shape, generator=gen))
    rows = RowEncoder(load_tokenizer(encoder), mcfg.max_length, mcfg.n_soft, mcfg.max_model_tokens)
    return LengthEngine(model, rows, EngineConfig(**cfg))  # type: ignore[arg-type]


def test_onnx_fp32_matches_torch_and_reuses_its_export(tiny_encoder: str, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PRESERVE_ONNX_CACHE", str(tmp_path))
    ref = _engine(tiny_encoder, tmp_path).run(PROMPTS, MODELS)
    onnx = _engine(tiny_encoder, tmp_path, backend="onnx", max_batch_size=3).run(PROMPTS, MODELS)
    np.testing.assert_allclose(np.log1p(onnx.quantiles), np.log1p(ref.quantiles), atol=1e-4)
    np.testing.assert_allclose(onnx.mean, ref.mean, rtol=1e-4)
    files = sorted(p.name for p in tmp_path.iterdir())
    assert len(files) == 1 and files[0].endswith(".onnx")  # no temp files left behind
    _engine(tiny_encoder, tmp_path, backend="onnx")
    assert sorted(p.name for p in tmp_path.iterdir()) == files  # same weights: the cached graph is reused


def test_onnx_int8_stays_close_to_fp32(tiny_encoder: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PRESERVE_ONNX_CACHE", str(tmp_path))
    ref = _engine(tiny_encoder, tmp_path).run(PROMPTS, MODELS)
    q8 = _engine(tiny_encoder, tmp_path, backend="onnx", int8=True).run(PROMPTS, MODELS)
    assert np.abs(np.log1p(q8.quantiles) - np.log1p(ref.quantiles)).max() < 0.1


def test_truncated_encoder_exports_under_its_own_key(tiny_encoder: str, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PRESERVE_ONNX_CACHE", str(tmp_path))
    cfg = LengthModelConfig(encoder=tiny_encoder, n_soft=4, max_length=64, models=("gpt-3.5", "llama"))
    torch.manual_seed(0)
    full = LengthModel(cfg, load_backbone(tiny_encoder))
    torch.manual_seed(0)
    cut = LengthModel(LengthModelConfig(**{**cfg.to_dict(), "encoder_layers": 1}), load_backbone(tiny_encoder))
    assert weights_key(cut, True) != weights_key(full, True)
    rows = RowEncoder(load_tokenizer(tiny_encoder), cfg.max_length, cfg.n_soft, cfg.max_model_tokens)
    ref = LengthEngine(cut, rows, EngineConfig()).run(PROMPTS, MODELS)
    onnx = LengthEngine(cut, rows, EngineConfig(backend="onnx")).run(PROMPTS, MODELS)
    np.testing.assert_allclose(np.log1p(onnx.quantiles), np.log1p(ref.quantiles), atol=1e-4)
