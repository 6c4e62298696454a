"""The real shared files (skipped without PRESERVE_DATA): Azure 2023 traces, ServeGen aggregate, prompts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from replay.length_pool import load_prompt_corpus
from replay.prompt_attach import attach_prompts
from replay.servegen_io import load_servegen
from replay.servegen_synth import SynthConfig, synthesize_arrivals, window_rates
from replay.trace_loader import load_trace
from replay.trace_transform import trace_stats


@pytest.mark.parametrize(("name", "rows", "prompt_mean", "output_mean"), [
    ("code", 8819, 2048, 28), ("conv", 19366, 1155, 211)])
def test_azure_2023_files_load_completely(shared_data: Path, name: str, rows: int, prompt_mean: float,
                                          output_mean: float) -> None:
    path = shared_data / "traces" / "azure2023" / f"AzureLLMInferenceTrace_{name}.csv"
    if not path.exists():
        pytest.skip(f"{path} not in the shared data")
    loaded = load_trace(path)
    assert loaded.fmt == "azure" and loaded.bad_rows == [] and len(loaded.df) == rows
    stats = trace_stats(loaded.df)
    assert stats.prompt_tokens[0] == pytest.approx(prompt_mean, abs=1)
    assert stats.output_tokens[0] == pytest.approx(output_mean, abs=1)
    assert 50 * 60 < stats.span_s < 60 * 60 and set(loaded.df["service"]) == {name}


def test_azure_conv_with_sharegpt_prompts(shared_data: Path) -> None:
    trace = shared_data / "traces" / "azure2023" / "AzureLLMInferenceTrace_conv.csv"
    corpus_path = shared_data / "prompts" / "sharegpt_pairs.jsonl.gz"
    if not trace.exists() or not corpus_path.exists():
        pytest.skip("Azure conv trace or ShareGPT pairs not in the shared data")
    df = load_trace(trace, duration_s=600).df
    out = attach_prompts(df, load_prompt_corpus(corpus_path), lengths="corpus", seed=0)
    assert out["prompt"].str.len().gt(0).all()
    ranks = np.corrcoef(out["prompt_tokens"].rank(), out["prompt"].str.len().rank())[0, 1]
    assert ranks > 0.9  # quantile matching keeps the order of prompt lengths


def test_servegen_synthesis_matches_the_aggregate_rate(shared_data: Path) -> None:
    folder = shared_data / "traces" / "servegen" / "m-small"
    aggregate = shared_data / "traces" / "servegen" / "servegen_m-small_window600s_aggregate.csv"
    if not folder.is_dir() or not aggregate.exists():
        pytest.skip("ServeGen m-small not in the shared data")
    cfg = SynthConfig(start_hour=12, hours=2, rate_scale=0.05)
    rows = window_rates(load_servegen(folder), cfg)
    arrival, _ = synthesize_arrivals(rows, np.random.default_rng(0))
    per_window = np.bincount((arrival // 600).astype(int), minlength=12) / 600 / cfg.rate_scale
    agg = pd.read_csv(aggregate).set_index("window_start_s")["req_per_s"]
    recorded = agg.loc[12 * 3600: 14 * 3600 - 1].to_numpy()
    np.testing.assert_allclose(per_window, recorded, rtol=0.02)
