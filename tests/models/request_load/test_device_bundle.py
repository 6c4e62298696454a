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
