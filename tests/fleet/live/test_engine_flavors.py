"""Per-engine dialects of the OpenAI-compatible adapter, command templates, the tiny GGUF, the demo's caps."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from fleet.live.base_engine_adapter import LiveRequest
from fleet.live.engine_demo import cap_tokens
from fleet.live.openai_engine import (
    OpenAIEngine,
    OpenAIEngineConfig,
    parse_llamacpp_metrics,
    parse_vllm_metrics,
)
from fleet.live.process_actuator import ProcessEngineSpec

LLAMACPP_METRICS = """# HELP llamacpp:requests_processing Number of requests processing.
# TYPE llamacpp:requests_processing gauge
llamacpp:requests_processing 3
llamacpp:requests_deferred 2
llamacpp:tokens_predicted_total 1234
vllm:num_requests_waiting 9
"""


def test_forced_lengths_per_flavor() -> None:
    req = LiveRequest("r", "s", 0.0, 5, output_tokens=17)
    llama = OpenAIEngine(OpenAIEngineConfig("http://x", "m", flavor="llama-cpp"))._body(req)
    vllm = OpenAIEngine(OpenAIEngineConfig("http://x", "m"))._body(req)
    assert llama["n_predict"] == llama["max_tokens"] == 17 and llama["ignore_eos"] and "min_tokens" not in llama
    assert vllm["min_tokens"] == vllm["max_tokens"] == 17 and vllm["ignore_eos"] and "n_predict" not in vllm
    with pytest.raises(ValueError, match="unknown engine flavor"):
        OpenAIEngineConfig("http://x", "m", flavor="tgi")


def test_metrics_parser_per_engine() -> None:
    assert parse_llamacpp_metrics(LLAMACPP_METRICS) == {"llamacpp:requests_processing": 3.0,
                                                        "llamacpp:requests_deferred": 2.0,
                                                        "llamacpp:tokens_predicted_total": 1234.0}
    assert parse_vllm_metrics(LLAMACPP_METRICS) == {"vllm:num_requests_waiting": 9.0}


def test_command_template_placeholders(tmp_path: Path) -> None:
    spec = ProcessEngineSpec("vllm serve {model} --host {host} --port {port} --x '{device} y'", "m/7b", tmp_path)
    assert spec.argv("3", 8001) == ["vllm", "serve", "m/7b", "--host", "127.0.0.1", "--port", "8001", "--x", "3 y"]
    with pytest.raises(ValueError, match="placeholders are"):
        ProcessEngineSpec("serve {gpu}", "m", tmp_path)
    with pytest.raises(ValueError, match="empty"):
        ProcessEngineSpec("serve", "m", tmp_path, devices=())


def test_cpu_caps_clip_token_counts() -> None:
    df = pd.DataFrame({"prompt_tokens": [0, 100, 5000], "output_tokens": [3, 900, 64]})
    out = cap_tokens(df, {"prompt_tokens": 256, "output_tokens": 64})
    assert out["prompt_tokens"].tolist() == [1, 100, 256] and out["output_tokens"].tolist() == [3, 64, 64]


def test_tiny_gguf_is_deterministic_and_readable(tmp_path: Path) -> None:
    from fleet.live.llama_cpp.locate import EngineNotBuilt, vocab_gguf
    from fleet.live.llama_cpp.tiny_gguf import TinyLlamaConfig, write_tiny_llama

    try:
        vocab = vocab_gguf()
    except EngineNotBuilt as e:
        pytest.skip(str(e))
    from gguf import GGUFReader

    cfg = TinyLlamaConfig(layers=1, hidden=64, heads=4, kv_heads=2, ffn=128)
    a = write_tiny_llama(tmp_path / "a.gguf", vocab, cfg)
    b = write_tiny_llama(tmp_path / "b.gguf", vocab, cfg)
    assert a.read_bytes() == b.read_bytes()
    r = GGUFReader(str(a))
    assert r.fields["llama.block_count"].contents() == 1 and r.fields["llama.attention.head_count_kv"].contents() == 2
    names = {t.name for t in r.tensors}
    assert {"token_embd.weight", "blk.0.attn_k.weight", "blk.0.ffn_down.weight"} <= names
    assert "output.weight" not in names  # tied to the embedding
