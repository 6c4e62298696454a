"""Engine presets load, are self-consistent, and their KV arithmetic matches the documented numbers."""

from __future__ import annotations

import dataclasses
import json

import pytest

from streams.policies.cost_model import CostModel
from streams.policies.engine_profiles import (
    A100_MEMORY_BYTES,
    H100_MEMORY_BYTES,
    PRESETS,
    PROFILES_DIR,
    EngineConfig,
    get_preset,
    kv_capacity_tokens,
)


def test_required_presets_exist() -> None:
    assert {"llama2-7b-h100", "llama2-7b-a100"} <= set(PRESETS)


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_preset_is_self_consistent(name: str) -> None:
    p = get_preset(name)
    assert p.name == name
    assert p.kv_capacity_tokens % p.block_size == 0
    assert p.kv_capacity_tokens >= p.max_model_len * 8  # many full-length sequences fit
    assert p.max_batched_tokens >= p.max_num_seqs
    assert isinstance(p.cost_model, CostModel)
    # a single-token decode step costs milliseconds, a 2048-token prefill tens of milliseconds
    assert 0.002 < p.cost_model.step_time(0, 1, 1024) < 0.05
    assert 0.02 < p.cost_model.step_time(2048, 0, 0) < 0.5


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_calibration_file_documents_its_origin(name: str) -> None:
    data = json.loads((PROFILES_DIR / f"{name}.json").read_text())
    assert data["status"] and data["derivation"] and data["source"]


def test_a100_is_slower_than_h100() -> None:
    h100, a100 = get_preset("llama2-7b-h100").cost_model, get_preset("llama2-7b-a100").cost_model
    for args in [(0, 1, 1024), (0, 64, 64 * 1024), (2048, 0, 0), (512, 32, 32 * 2048)]:
        assert a100.step_time(*args) > h100.step_time(*args)


def test_kv_capacity_arithmetic() -> None:
    # documented in engine_profiles.py: 7,312 and 7,353 blocks of 16 tokens
    assert kv_capacity_tokens(H100_MEMORY_BYTES) == 7_312 * 16
    assert kv_capacity_tokens(A100_MEMORY_BYTES) == 7_353 * 16
    with pytest.raises(ValueError, match="does not fit"):
        kv_capacity_tokens(8 * 1024**3)


def test_unknown_preset_lists_known_names() -> None:
    with pytest.raises(KeyError, match="llama2-7b-h100"):
        get_preset("gpt-5-on-a-toaster")


def test_validation_rejects_inconsistent_configs() -> None:
    base = get_preset("llama2-7b-h100")
    with pytest.raises(ValueError, match="max_model_len"):
        dataclasses.replace(base, kv_capacity_tokens=1024)
    with pytest.raises(ValueError, match="multiple of block_size"):
        dataclasses.replace(base, kv_capacity_tokens=base.kv_capacity_tokens + 1)
    with pytest.raises(ValueError, match="chunked_prefill"):
        dataclasses.replace(base, chunked_prefill=False, max_batched_tokens=2048)
    assert isinstance(dataclasses.replace(base, chunked_prefill=False), EngineConfig)


def test_the_13b_preset_is_kv_tighter_and_slower_than_the_7b() -> None:
    b7, b13 = get_preset("llama2-7b-h100"), get_preset("llama2-13b-h100")
    assert b13.kv_capacity_tokens == 3_722 * 16  # documented in engine_profiles.py
    assert 0.45 < b13.kv_capacity_tokens / b7.kv_capacity_tokens < 0.55
    for args in [(0, 1, 1024), (0, 64, 64 * 2048), (2048, 0, 0), (512, 32, 32 * 2048)]:
        assert b13.cost_model.step_time(*args) > b7.cost_model.step_time(*args)
