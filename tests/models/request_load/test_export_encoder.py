"""The compact encoder copy (``export_encoder``): what the GPU device loads through ``PRESERVE_ENCODER_PATH``."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from models.request_load.encoding import load_backbone, load_tokenizer, resolve_encoder
from models.request_load.export_encoder import export_encoder
from models.request_load.model import find_layer_stack


def test_export_keeps_the_first_layers_in_fp16_and_the_same_tokenizer(tiny_encoder: str, tmp_path: Path) -> None:
    out = tmp_path / "enc"
    size = export_encoder(out, layers=1, encoder=tiny_encoder)
    assert (out / "model.safetensors").exists() and size > 0
    source = load_backbone(tiny_encoder)
    copy = load_backbone(str(out))  # upcast to fp32 on loading
    assert len(find_layer_stack(copy)) == 1 and copy.config.num_hidden_layers == 1
    kept = dict(copy.named_parameters())
    for name, p in source.named_parameters():
        if ".layer.1." in name:
            assert name not in kept
            continue
        assert kept[name].dtype == torch.float32
        assert torch.equal(kept[name], p.detach().to(torch.float16).to(torch.float32)), name
    text = "write a long story please"
    assert load_tokenizer(str(out))(text)["input_ids"] == load_tokenizer(tiny_encoder)(text)["input_ids"]


def test_default_encoder_resolves_to_the_copy(tiny_encoder: str, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "enc"
    export_encoder(out, layers=None, encoder=tiny_encoder)
    monkeypatch.setenv("PRESERVE_ENCODER_PATH", str(out))
    assert resolve_encoder("default") == str(out)
    assert len(find_layer_stack(load_backbone("default"))) == 2


def test_more_layers_than_the_encoder_has_is_an_error(tiny_encoder: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="encoder_layers=3"):
        export_encoder(tmp_path / "enc", layers=3, encoder=tiny_encoder)
