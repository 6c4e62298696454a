from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from models.request_load.data import InvalidDataFile, SplitConfig, read_pairs, split_examples, split_of
from tests.models.request_load.conftest import synthetic_examples

LINES = [
    {"prompt": "hello there", "response_tokens_llama2": 12, "model": "m1", "source": "s"},
    {"prompt": "count me", "response": "one two three", "model": "m2"},
    "not json",
    {"prompt": "", "response_tokens_llama2": 3},
    {"prompt": "negative", "response_tokens_llama2": -4},
    {"prompt": "no label"},
]


def _write(path: Path, gz: bool) -> Path:
    text = "\n".join(x if isinstance(x, str) else json.dumps(x) for x in LINES) + "\n"
    if gz:
        with gzip.open(path, "wt") as f:
            f.write(text)
    else:
        path.write_text(text)
    return path


@pytest.mark.parametrize("gz", [False, True])
def test_read_pairs_plain_and_gzip_with_bad_lines(tmp_path: Path, gz: bool) -> None:
    path = _write(tmp_path / ("d.jsonl.gz" if gz else "d.jsonl"), gz)
    examples, bad = read_pairs(path, counter=lambda text: len(text.split()))
    assert [e.prompt for e in examples] == ["hello there", "count me"]
    assert examples[1].output_tokens == 3 and examples[1].source == "d" and examples[0].model == "m1"
    assert [b.line for b in bad] == [3, 4, 5, 6]
    assert "missing or empty 'prompt'" in str(bad[1]) and str(bad[1]).startswith(f"{path}:4:")


def test_read_pairs_fail_mode_names_the_line(tmp_path: Path) -> None:
    with pytest.raises(InvalidDataFile, match=r"d.jsonl:3:"):
        read_pairs(_write(tmp_path / "d.jsonl", False), on_bad="fail", counter=len)


def test_response_without_counter_is_a_bad_line(tmp_path: Path) -> None:
    _, bad = read_pairs(_write(tmp_path / "d.jsonl", False))
    assert any(b.line == 2 and "token counter" in b.reason for b in bad)


def test_split_is_by_prompt_and_reproducible() -> None:
    examples = synthetic_examples(300)
    doubled = examples + [e for e in examples[:100]]  # same prompts served by another model
    cfg = SplitConfig(seed=3, test_frac=0.2, val_frac=0.1)
    parts = split_examples(doubled, cfg)
    prompts = {k: {e.prompt for e in v} for k, v in parts.items()}
    assert not (prompts["train"] & prompts["test"]) and not (prompts["train"] & prompts["val"])
    assert not (prompts["val"] & prompts["test"])
    assert 0.1 < len(parts["test"]) / len(doubled) < 0.3
    assert split_examples(list(reversed(doubled)), cfg)["test"] == list(reversed(parts["test"]))
    assert split_of("x", cfg) == split_of("  x \n", cfg)  # whitespace around the text does not matter


def test_real_alpaca_instructions_stay_in_one_part(shared_data: Path) -> None:
    path = shared_data / "prompts" / "alpaca_eval_pairs.jsonl.gz"
    if not path.exists():
        pytest.skip(f"{path} not found")
    examples, _ = read_pairs(path)
    parts = split_examples(examples, SplitConfig())
    test_prompts = {e.prompt for e in parts["test"]}
    assert test_prompts and not test_prompts & {e.prompt for e in parts["train"]}
    assert all(sum(e.prompt == p for e in parts["test"]) >= 12 for p in list(test_prompts)[:5])
