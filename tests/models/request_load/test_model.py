from __future__ import annotations

import pytest
import torch

from models.request_load.encoding import RowEncoder, collate, load_backbone, load_tokenizer, pack
from models.request_load.model import LengthModel, LengthModelConfig, find_layer_stack, length_loss


@pytest.fixture(scope="module")
def built(tiny_encoder: str) -> tuple[LengthModel, RowEncoder]:
    cfg = LengthModelConfig(encoder=tiny_encoder, n_soft=4, max_length=64, models=("gpt-3.5", "llama"))
    model = LengthModel(cfg, load_backbone(tiny_encoder)).eval()
    return model, RowEncoder(load_tokenizer(tiny_encoder), cfg.max_length, cfg.n_soft, cfg.max_model_tokens)


def test_shapes_and_quantile_order(built: tuple[LengthModel, RowEncoder]) -> None:
    model, rows = built
    prompts = ["write a long essay", "one word " * 100, "code"]
    names = ["gpt-3.5", "llama", "never-seen-model"]
    b = collate(rows.encode(prompts, names), model.model_ids(names), cap=rows.budget)
    assert b.input_ids.shape[0] == 3 and b.input_ids.shape[1] + 4 <= 64  # long prompt truncated to budget
    q, mean = model(b.input_ids, b.attention_mask, b.token_type_ids, b.model_ids)
    assert q.shape == (3, len(model.config.quantiles)) and mean.shape == (3,)
    assert (q[:, 1:] >= q[:, :-1]).all() and (mean >= 0).all()
    assert model.model_ids(names).tolist() == [1, 2, 0]  # unknown model -> index 0


def test_truncation_keeps_head_and_tail(built: tuple[LengthModel, RowEncoder]) -> None:
    _, rows = built
    ids, head = rows.encode(["a " * 200 + "code"], ["llama"])[0]
    assert len(ids) == 60 and head == 3  # [CLS] llama [SEP]
    assert ids[-2] == rows.tok.convert_tokens_to_ids("code")  # tail kept
    assert ids[-1] == rows.sep and ids[0] == rows.cls


def test_only_soft_prompt_head_embedding_and_last_layer_train(built: tuple[LengthModel, RowEncoder]) -> None:
    model, _ = built
    trainable = set(model.trainable_state())
    last = len(find_layer_stack(model.backbone)) - 1
    assert "soft_prompt" in trainable and "model_emb.weight" in trainable
    assert any(k.startswith(f"backbone.encoder.layer.{last}.") for k in trainable)
    assert not any(k.startswith("backbone.encoder.layer.0.") or "embeddings" in k.split(".")[1] for k in trainable
                   if k.startswith("backbone."))


def test_deterministic_in_eval(built: tuple[LengthModel, RowEncoder]) -> None:
    model, rows = built
    b = collate(rows.encode(["write a poem"] * 2, ["llama"] * 2), model.model_ids(["llama"] * 2))
    with torch.no_grad():
        a1 = model(b.input_ids, b.attention_mask, b.token_type_ids, b.model_ids)[0]
        a2 = model(b.input_ids, b.attention_mask, b.token_type_ids, b.model_ids)[0]
    torch.testing.assert_close(a1, a2)
    torch.testing.assert_close(a1[0], a1[1])


def test_padding_does_not_change_outputs(built: tuple[LengthModel, RowEncoder]) -> None:
    model, rows = built
    r = rows.encode(["write a poem about code"], ["llama"])
    tight = collate(r, model.model_ids(["llama"]), pad_multiple=1)
    padded = collate(r, model.model_ids(["llama"]), pad_to=tight.input_ids.shape[1] + 9)
    with torch.no_grad():
        q1 = model(tight.input_ids, tight.attention_mask, tight.token_type_ids, tight.model_ids)[0]
        q2 = model(padded.input_ids, padded.attention_mask, padded.token_type_ids, padded.model_ids)[0]
    torch.testing.assert_close(q1, q2, atol=1e-4, rtol=1e-4)


def test_loss_prefers_correct_quantiles() -> None:
    y = torch.tensor([100.0, 100.0])
    w = torch.ones(2)
    good = torch.log1p(y).unsqueeze(1).repeat(1, 3)
    bad = good + 2.0
    mean = y / 500
    assert length_loss(good, mean, y, w, (0.1, 0.5, 0.9), 500.0) < length_loss(bad, mean, y, w, (0.1, 0.5, 0.9), 500.0)


def test_pack_pads_and_types(built: tuple[LengthModel, RowEncoder]) -> None:
    model, rows = built
    r = [([2, 5, 3, 9, 9, 3], 3), ([2, 5, 3, 7, 3], 3)]
    ids, lengths, heads = pack(r, pad_multiple=8)
    assert ids.tolist() == [[2, 5, 3, 9, 9, 3, 0, 0], [2, 5, 3, 7, 3, 0, 0, 0]]
    assert pack(r, pad_multiple=8, cap=7)[0].shape == (2, 7)
    b = collate(r, model.model_ids(["llama", "llama"]))
    assert b.attention_mask[1].tolist() == [1, 1, 1, 1, 1, 0, 0, 0]
    assert b.token_type_ids[0].tolist() == [0, 0, 0, 1, 1, 1, 0, 0]


def test_encoding_ignores_tokenizer_padding_and_truncation_state(tiny_encoder: str) -> None:
    """tokenizer.json files may switch on padding/truncation in the Rust backend (all-MiniLM-L6-v2 does);
    rows must not depend on that state nor change between calls."""
    tok = load_tokenizer(tiny_encoder)
    tok.backend_tokenizer.enable_truncation(4)
    tok.backend_tokenizer.enable_padding(length=30)
    rows = RowEncoder(tok, 64, 4, 12)
    first = rows.encode(["write a long essay about code please"], ["llama"])
    assert first == rows.encode(["write a long essay about code please"], ["llama"])
    ids, head = first[0]
    assert 0 not in ids and len(ids) == head + 7 + 1  # 7 prompt words, no pads, not truncated to 4


def test_lora_adapters_train_alone_and_merge_exactly(tiny_encoder: str) -> None:
    cfg = LengthModelConfig(encoder=tiny_encoder, n_soft=4, max_length=64, lora_rank=2)
    model = LengthModel(cfg, load_backbone(tiny_encoder)).eval()
    trainable = set(model.trainable_state())
    assert any("layer.0." in k and k.endswith("lora_a") for k in trainable)  # the frozen layer got adapters
    assert not any("layer.0." in k and k.endswith("base.weight") for k in trainable)
    for name, p in model.named_parameters():
        if name.endswith("lora_b"):
            p.data.normal_(0, 0.05)
    rows = RowEncoder(load_tokenizer(tiny_encoder), cfg.max_length, cfg.n_soft, cfg.max_model_tokens)
    b = collate(rows.encode(["write a poem", "code"], ["x", "y"]), model.model_ids(["x", "y"]))
    with torch.no_grad():
        before = model(b.input_ids, b.attention_mask, b.token_type_ids, b.model_ids)[0]
        after = model.merge_adapters()(b.input_ids, b.attention_mask, b.token_type_ids, b.model_ids)[0]
    assert not any(".lora_" in n for n, _ in model.named_parameters())
    torch.testing.assert_close(after, before, rtol=1e-4, atol=1e-4)


def test_encoder_layers_keeps_the_first_layers_and_trains_the_top_of_them(tiny_encoder: str) -> None:
    full = load_backbone(tiny_encoder)
    cfg = LengthModelConfig(encoder=tiny_encoder, n_soft=4, max_length=64, encoder_layers=1)
    model = LengthModel(cfg, load_backbone(tiny_encoder))
    assert len(find_layer_stack(model.backbone)) == 1 and model.backbone.config.num_hidden_layers == 1
    kept = model.backbone.encoder.layer[0].state_dict()
    for k, v in full.encoder.layer[0].state_dict().items():  # the FIRST layer is kept, unchanged
        torch.testing.assert_close(kept[k], v)
    trainable = set(model.trainable_state())
    assert any(k.startswith("backbone.encoder.layer.0.") for k in trainable)  # top of the kept stack
    assert not any(".layer.1." in k for k in model.state_dict())


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"encoder_layers": 3}, "encoder has 2 transformer layers"),
    ({"encoder_layers": 0}, "encoder_layers must be >= 1"),
    ({"encoder_layers": 1, "train_last_layers": 2}, "train_last_layers=2 exceeds encoder_layers=1"),
    ({"train_last_layers": 3}, "exceeds the encoder's 2 transformer layers"),
])
def test_bad_layer_counts_are_clear_errors(tiny_encoder: str, kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        LengthModel(LengthModelConfig(encoder=tiny_encoder, n_soft=4, max_length=64, **kwargs),
                    load_backbone(tiny_encoder))
