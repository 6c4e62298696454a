"""The sync-free attention mask, soft-prompt-aware padding and the CUDA-graph engine path (GPU part skipped on CPU)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import models.request_load.model as model_module
from models.request_load.encoding import RowEncoder, collate, load_backbone, load_tokenizer, pack
from models.request_load.engine import EngineConfig, LengthEngine
from models.request_load.model import LengthModel, LengthModelConfig

PROMPTS = ["write a long essay about code " * k + f"{k}" for k in range(1, 40)] + ["one word", "poem"]


@pytest.fixture(scope="module")
def built(tiny_encoder: str) -> tuple[LengthModel, RowEncoder]:
    cfg = LengthModelConfig(encoder=tiny_encoder, n_soft=4, max_length=128, models=("gpt-3.5", "llama"))
    model = LengthModel(cfg, load_backbone(tiny_encoder)).eval()
    return model, RowEncoder(load_tokenizer(tiny_encoder), cfg.max_length, cfg.n_soft, cfg.max_model_tokens)


def test_pack_rounds_positions_including_the_soft_prompt() -> None:
    rows = [([2, 5, 3, 9, 9, 3], 3), ([2, 5, 3, 7, 3], 3)]
    ids, lengths, _ = pack(rows, pad_multiple=8, offset=4)
    assert ids.shape == (2, 12) and lengths.tolist() == [6, 5]  # 6 ids + 4 soft vectors -> 16 positions
    assert pack(rows, pad_multiple=8, offset=4, cap=7)[0].shape == (2, 7)


@pytest.mark.parametrize("impl", ["sdpa", "eager"])
def test_prepared_mask_gives_the_same_outputs_as_the_2d_mask(built: tuple[LengthModel, RowEncoder], impl: str,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """The 4D mask (no host read) and transformers' own handling of the 2D mask agree, padding included."""
    model, rows = built
    if not model_module.FOUR_D_MASKS:
        pytest.skip("transformers < 5: the 2D mask is always used")
    model.backbone.set_attn_implementation(impl)
    b = collate(rows.encode(PROMPTS[:6], ["llama"] * 6), model.model_ids(["llama"] * 6), pad_multiple=16)
    assert (b.attention_mask == 0).any(), "the batch must hold padding"
    with torch.no_grad():
        prepared = model(b.input_ids, b.attention_mask, b.token_type_ids, b.model_ids)
        monkeypatch.setattr(model_module, "FOUR_D_MASKS", False)
        plain = model(b.input_ids, b.attention_mask, b.token_type_ids, b.model_ids)
    model.backbone.set_attn_implementation("sdpa")
    torch.testing.assert_close(prepared, plain)


def test_no_mask_equals_an_all_ones_mask(built: tuple[LengthModel, RowEncoder]) -> None:
    """``attention_mask=None`` (a batch without padding, run without a mask) is the same model."""
    model, rows = built
    r = rows.encode(PROMPTS[-5:-2], ["llama"] * 3)  # long: all truncated to the same length
    b = collate(r, model.model_ids(["llama"] * 3), pad_multiple=1, cap=124)
    assert bool((b.attention_mask == 1).all())
    with torch.no_grad():
        torch.testing.assert_close(model(b.input_ids, None, b.token_type_ids, b.model_ids),
                                   model(b.input_ids, b.attention_mask, b.token_type_ids, b.model_ids))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a GPU")
def test_graph_replay_matches_the_eager_forward(built: tuple[LengthModel, RowEncoder]) -> None:
    """Same answers with and without graphs over batches of several sizes and lengths (several graphs, shared
    pool, all launched before the one copy back), and the graphs are reused on a second call."""
    model, rows = built
    services = ["llama", "gpt-3.5", "other"] * 14
    prompts, services = PROMPTS * 3, services[:len(PROMPTS)] * 3
    cfg = EngineConfig(device="cuda", dtype="fp32", max_batch_size=16)
    graphed = LengthEngine(model, rows, cfg)
    assert graphed.graphed is not None
    eager = LengthEngine(model, rows, EngineConfig(device="cuda", dtype="fp32", max_batch_size=16, cuda_graphs=False))
    a = graphed.run(prompts, services)
    assert graphed.graphed is not None, "a capture failed (the engine logged why) and fell back to eager"
    n_graphs = len(graphed.graphed.graphs)
    b = eager.run(prompts, services)
    c = graphed.run(prompts, services)
    assert n_graphs >= 2 and len(graphed.graphed.graphs) == n_graphs
    np.testing.assert_allclose(a.quantiles, b.quantiles, rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(a.mean, b.mean, rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(a.quantiles, c.quantiles)
    # big batches without padding (here: rows truncated to the cap) run eagerly without a mask: same answers
    mixed = LengthEngine(model, rows, EngineConfig(device="cuda", dtype="fp32", max_batch_size=16,
                                                   eager_full_positions=64))
    np.testing.assert_allclose(mixed.run(prompts, services).quantiles, b.quantiles, rtol=1e-4, atol=1e-3)
    small = graphed.run(PROMPTS[:3], ["llama"] * 3)  # a 3-row batch in a 4-row graph: padding rows dropped
    np.testing.assert_allclose(small.quantiles, eager.run(PROMPTS[:3], ["llama"] * 3).quantiles, rtol=1e-4, atol=1e-3)
