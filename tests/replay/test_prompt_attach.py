"""Prompt attachment: rank and nearest matching, both length modes, determinism."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from replay.prompt_attach import attach_prompts, match_nearest, match_rank

CORPUS = pd.DataFrame({
    "prompt": ["short", "medium prompt", "a rather long prompt indeed", "the longest prompt of them all, really"],
    "prompt_tokens": [2, 5, 9, 14],
    "response_tokens": [11, 22, 33, 44],
    "model": ["m-a", "m-b", "m-a", "m-b"],
})


def _trace(prompt_tokens: list[int]) -> pd.DataFrame:
    n = len(prompt_tokens)
    return pd.DataFrame({"request_id": [f"r{i}" for i in range(n)], "arrival_s": np.arange(n, dtype=float),
                         "service": "conv", "prompt_tokens": prompt_tokens, "output_tokens": [7] * n})


def test_rank_matching_maps_quantiles_monotonically() -> None:
    trace = _trace([4000, 100, 2000, 900])  # much longer than the corpus: only the order matters
    out = attach_prompts(trace, CORPUS, lengths="trace", seed=0)
    assert out["prompt"].tolist() == [CORPUS["prompt"][3], CORPUS["prompt"][0], CORPUS["prompt"][2],
                                      CORPUS["prompt"][1]]
    assert out["prompt_tokens"].tolist() == [4000, 100, 2000, 900]  # the trace's prefill load is kept


def test_lengths_trace_keeps_outputs_corpus_replaces_them() -> None:
    trace = _trace([1, 3, 8, 20])
    kept = attach_prompts(trace, CORPUS, lengths="trace", seed=1)
    assert kept["output_tokens"].tolist() == [7, 7, 7, 7]
    assert kept["response_tokens_corpus"].tolist() == [11, 22, 33, 44]
    assert kept["model"].tolist() == ["m-a", "m-b", "m-a", "m-b"]
    real = attach_prompts(trace, CORPUS, lengths="corpus", seed=1)
    assert real["output_tokens"].tolist() == [11, 22, 33, 44]
    assert real["output_tokens"].tolist() == real["response_tokens_corpus"].tolist()
    assert trace["output_tokens"].tolist() == [7, 7, 7, 7]  # input untouched
    with pytest.raises(ValueError):
        attach_prompts(trace, CORPUS, lengths="both")  # type: ignore[arg-type]


def test_rank_uses_the_whole_corpus_evenly_and_is_seeded() -> None:
    rng = np.random.default_rng(0)
    trace = _trace(list(rng.integers(100, 8000, 4000)))
    a = attach_prompts(trace, CORPUS, seed=5)
    counts = a["prompt"].value_counts()
    assert len(counts) == 4 and counts.min() == 1000  # quantiles split the trace evenly
    assert a.equals(attach_prompts(trace, CORPUS, seed=5))


def test_nearest_matching_by_absolute_length_random_among_equals() -> None:
    corpus_tokens = np.array([2, 5, 5, 9, 14])
    picks = match_nearest(np.array([1, 5, 7, 100, 12] * 200), corpus_tokens, np.random.default_rng(0))
    chosen = corpus_tokens[picks].reshape(200, 5)
    assert (chosen[:, 0] == 2).all() and (chosen[:, 1] == 5).all() and (chosen[:, 3] == 14).all()
    assert set(chosen[:, 2]) <= {5, 9} and (chosen[:, 4] == 14).all()
    assert set(picks.reshape(200, 5)[:, 1]) == {1, 2}  # ties shared at random


def test_match_rank_ties_spread_over_corpus() -> None:
    picks = match_rank(np.full(1000, 50), np.array([1, 2, 3, 4]), np.random.default_rng(0))
    assert np.bincount(picks, minlength=4).tolist() == [250, 250, 250, 250]
