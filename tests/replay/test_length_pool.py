"""Length pools (for synthesis) and prompt corpora (for attachment) from traces and prompts JSONL files."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from replay.length_pool import is_prompt_corpus, load_length_pool, load_prompt_corpus
from replay.trace_schema import TraceFormatError
from streams.records import MAX_PROMPT_CHARS


def _pairs(path: Path, rows: list[tuple[str, int, int]]) -> Path:
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        for prompt, p, r in rows:
            fh.write(json.dumps({"source": "t", "id": 1, "model": "m1", "prompt": prompt, "response": "x",
                                 "prompt_tokens_llama2": p, "response_tokens_llama2": r}) + "\n")
    return path


def test_corpus_leaves_out_unusable_pairs(tmp_path: Path) -> None:
    path = _pairs(tmp_path / "p.jsonl.gz", [("ok", 3, 9), ("", 1, 5), ("no answer", 2, 0),
                                            ("x" * (MAX_PROMPT_CHARS + 1), 9, 9), ("fine", 4, 1)])
    assert is_prompt_corpus(path)
    corpus = load_prompt_corpus(path)
    assert corpus["prompt"].tolist() == ["ok", "fine"]
    assert corpus["response_tokens"].tolist() == [9, 1] and set(corpus["model"]) == {"m1"}


def test_length_pool_from_prompts_or_from_a_trace(tmp_path: Path) -> None:
    pool = load_length_pool(_pairs(tmp_path / "p.jsonl.gz", [("a", 3, 9), ("b", 4, 1)]))
    assert pool.to_dict("list") == {"prompt_tokens": [3, 4], "output_tokens": [9, 1]}
    trace = tmp_path / "t.csv"
    trace.write_text("arrival_s,prompt_tokens,output_tokens\n0,11,12\n1,13,14\n")
    assert not is_prompt_corpus(trace)
    assert load_length_pool(trace).to_dict("list") == {"prompt_tokens": [11, 13], "output_tokens": [12, 14]}


def test_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="missing.csv"):
        load_length_pool(tmp_path / "missing.csv")
    trace = tmp_path / "t.csv"
    trace.write_text("arrival_s,prompt_tokens,output_tokens\n0,1,1\n")
    with pytest.raises(TraceFormatError, match="not a prompts JSONL"):
        load_prompt_corpus(trace)
