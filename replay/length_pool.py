"""Pools of real (prompt_tokens, output_tokens) pairs, for synthesis, and prompt corpora, for attachment."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from replay.trace_loader import load_trace, open_text
from replay.trace_schema import TraceFormatError
from streams.records import MAX_PROMPT_CHARS
from streams.settings import data_path

__all__ = ["CORPUS_COLUMNS", "default_lengths_path", "is_prompt_corpus", "load_prompt_corpus", "load_length_pool"]

CORPUS_COLUMNS: tuple[str, ...] = ("prompt", "prompt_tokens_llama2", "response_tokens_llama2")


def default_lengths_path() -> Path:
    """The default length source: the Azure 2023 conversation trace of the shared data."""
    return data_path("traces", "azure2023", "AzureLLMInferenceTrace_conv.csv")


def is_prompt_corpus(path: str | Path) -> bool:
    """True for a prompts JSONL (first object has ``prompt_tokens_llama2`` and ``response_tokens_llama2``)."""
    with open_text(path) as fh:
        first = next((line for line in fh if line.strip()), "")
    try:
        obj = json.loads(first)
    except json.JSONDecodeError:
        return False
    return isinstance(obj, dict) and {"prompt_tokens_llama2", "response_tokens_llama2"} <= set(obj)


def load_prompt_corpus(paths: str | Path | list[Path]) -> pd.DataFrame:
    """Prompt/response pairs: ``prompt, prompt_tokens, response_tokens, model`` (+ ``source``, ``id``).

    Pairs with an empty prompt or a zero-token response are left out (they cannot stand for a served request),
    and so are prompts over ``MAX_PROMPT_CHARS`` (a RequestEvent would reject them).
    """
    files = [Path(p) for p in (paths if isinstance(paths, list) else [paths])]
    frames = []
    for path in files:
        if not is_prompt_corpus(path):
            raise TraceFormatError(f"{path}: not a prompts JSONL (needs {', '.join(CORPUS_COLUMNS)})")
        with open_text(path) as fh:
            frames.append(pd.read_json(fh, lines=True, dtype=False))
    raw = pd.concat(frames, ignore_index=True)
    corpus = pd.DataFrame({
        "prompt": raw["prompt"].fillna("").astype(str),
        "prompt_tokens": pd.to_numeric(raw["prompt_tokens_llama2"], errors="coerce"),
        "response_tokens": pd.to_numeric(raw["response_tokens_llama2"], errors="coerce"),
        "model": raw["model"].fillna("").astype(str) if "model" in raw else "",
    })
    ok = ((corpus["prompt"].str.strip() != "") & (corpus["prompt"].str.len() <= MAX_PROMPT_CHARS)
          & (corpus["prompt_tokens"] > 0) & (corpus["response_tokens"] > 0))
    corpus = corpus[ok].reset_index(drop=True)
    corpus["prompt_tokens"] = corpus["prompt_tokens"].astype("int64")
    corpus["response_tokens"] = corpus["response_tokens"].astype("int64")
    if corpus.empty:
        raise TraceFormatError(f"{', '.join(map(str, files))}: no usable prompt/response pairs")
    return corpus


def load_length_pool(path: str | Path | None = None) -> pd.DataFrame:
    """``prompt_tokens, output_tokens`` pairs from any loadable trace or a prompts JSONL (default: Azure conv)."""
    path = Path(path) if path is not None else default_lengths_path()
    if not path.exists():
        raise FileNotFoundError(f"length source {path} not found (pass --lengths FILE)")
    if is_prompt_corpus(path):
        corpus = load_prompt_corpus(path)
        return pd.DataFrame({"prompt_tokens": corpus["prompt_tokens"], "output_tokens": corpus["response_tokens"]})
    df = load_trace(path).df
    if df.empty:
        raise TraceFormatError(f"{path}: no requests to take lengths from")
    return df[["prompt_tokens", "output_tokens"]].reset_index(drop=True)
