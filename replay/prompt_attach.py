"""Attach real prompt/response pairs to a trace that has only token counts (Azure, Mooncake, BurstGPT, synth).

Matching is on input length. Two ways:

* ``match="rank"`` (default): quantile mapping. Each request's prompt length is turned into its rank quantile
  in the trace (ties broken at random), and it gets the corpus pair at the same quantile of the corpus's prompt
  lengths. The longest trace prompts get the longest corpus prompts, and every corpus pair is used about
  equally often. Azure prompts (median ~1,000 tokens) are much longer than ShareGPT's (median ~36), so the
  attached text is usually *shorter* than ``prompt_tokens``, which keeps the trace's value (the prefill cost
  the simulator charges); only the *order* of lengths is preserved.
* ``match="nearest"``: the corpus pair whose ``prompt_tokens_llama2`` is nearest (random among equals). Text and
  count then agree where the corpus has such lengths, but long trace prompts all share the corpus's few
  longest prompts (heavy reuse).

``lengths="trace"`` keeps the trace's output lengths (its load is unchanged; a predictor reading the text
cannot predict them, the text is unrelated). ``lengths="corpus"`` replaces ``output_tokens`` with the pair's
real response length, so a predictor's estimate from the text is meaningful (the decode load then follows the
corpus). Either way ``response_tokens_corpus`` records the pair's response length, and ``model`` the corpus
model that wrote it when the corpus has one.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd

__all__ = ["LengthsMode", "MatchMode", "attach_prompts", "match_rank", "match_nearest"]

LengthsMode = Literal["trace", "corpus"]
MatchMode = Literal["rank", "nearest"]


def match_rank(trace_tokens: np.ndarray, corpus_tokens: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Corpus row index for each trace request: same prompt-length quantile (random tie-breaks)."""
    n, m = len(trace_tokens), len(corpus_tokens)
    trace_order = np.lexsort((rng.random(n), trace_tokens))  # ascending length, ties in random order
    quantile = np.empty(n, dtype=np.float64)
    quantile[trace_order] = (np.arange(n) + rng.random(n)) / n
    corpus_order = np.lexsort((rng.random(m), corpus_tokens))
    return corpus_order[np.minimum((quantile * m).astype(np.int64), m - 1)]


def match_nearest(trace_tokens: np.ndarray, corpus_tokens: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Corpus row index for each trace request: nearest prompt length, uniformly at random among equals."""
    order = np.argsort(corpus_tokens, kind="stable")
    values = corpus_tokens[order]
    pos = np.clip(np.searchsorted(values, trace_tokens), 1, len(values) - 1) if len(values) > 1 else \
        np.zeros(len(trace_tokens), dtype=np.int64)
    below, above = values[np.maximum(pos - 1, 0)], values[pos]
    nearest = np.where(np.abs(trace_tokens - below) <= np.abs(above - trace_tokens), below, above)
    left = np.searchsorted(values, nearest, side="left")
    right = np.searchsorted(values, nearest, side="right")
    return order[left + (rng.random(len(trace_tokens)) * (right - left)).astype(np.int64)]


def attach_prompts(df: pd.DataFrame, corpus_df: pd.DataFrame, lengths: LengthsMode = "trace", seed: int = 0,
                   match: MatchMode = "rank") -> pd.DataFrame:
    """A copy of the normalised trace ``df`` with ``prompt``, ``response_tokens_corpus`` (and ``model``).

    :param corpus_df: from ``length_pool.load_prompt_corpus``: ``prompt, prompt_tokens, response_tokens[, model]``.
    :param lengths: ``trace`` keeps ``output_tokens``; ``corpus`` sets it to the pair's response length.
    :param match: ``rank`` (quantile mapping) or ``nearest`` (absolute length); see the module docstring.
    """
    if lengths not in ("trace", "corpus"):
        raise ValueError(f"lengths must be 'trace' or 'corpus', got {lengths!r}")
    if corpus_df.empty:
        raise ValueError("the prompt corpus is empty")
    rng = np.random.default_rng(seed)
    trace_tokens = df["prompt_tokens"].to_numpy(dtype=np.int64)
    corpus_tokens = corpus_df["prompt_tokens"].to_numpy(dtype=np.int64)
    matcher = {"rank": match_rank, "nearest": match_nearest}[match]
    pick = matcher(trace_tokens, corpus_tokens, rng) if len(df) else np.zeros(0, dtype=np.int64)
    out = df.copy()
    out["prompt"] = corpus_df["prompt"].to_numpy(dtype=object)[pick]
    response = corpus_df["response_tokens"].to_numpy(dtype=np.int64)[pick]
    out["response_tokens_corpus"] = response
    if lengths == "corpus":
        out["output_tokens"] = response
    if "model" in corpus_df and (corpus_df["model"].astype(str) != "").any():
        out["model"] = corpus_df["model"].to_numpy(dtype=object)[pick]
    return out
