"""Prompt/response pairs for the request-load predictor: loading (JSON lines, plain or gzip) and the split.

Each line needs ``prompt`` and either ``response_tokens_llama2`` (the label) or ``response`` (then the label is
counted, see ``count_tokens``); ``model``, ``source`` and ``prompt_tokens_llama2`` are optional (``model``
defaults to ``"unknown"``, ``source`` to the file name).

The split is by prompt text so no prompt is in two parts (alpaca_eval asks each instruction to 13 models):
``u = sha1(f"{seed}:{prompt.strip()}")`` read as a number in [0, 1); ``u < test_frac`` is test, the next
``val_frac`` is validation (early stopping), the rest train. It depends only on the text and the seed, not on
file order or the other files, so it is the same on every machine and for any mix of files.
"""

from __future__ import annotations

import gzip
import hashlib
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

__all__ = ["LengthExample", "BadLine", "InvalidDataFile", "read_pairs", "split_of", "split_examples",
           "SplitConfig", "wordpiece_counter", "LLAMA2_PER_WORDPIECE"]

# Llama-2 tokens per MiniLM/BERT WordPiece token, measured on ../shared/data/prompts (responses with both
# counts, ratio of sums): used only when a line has a ``response`` text but no ``response_tokens_llama2``.
LLAMA2_PER_WORDPIECE = 1.13


@dataclass(frozen=True)
class LengthExample:
    prompt: str
    output_tokens: float  # label: response length in Llama-2 tokens
    prompt_tokens: int  # prompt length in Llama-2 tokens (counted if absent)
    model: str  # the serving model that produced the response
    source: str  # the data source (file or dataset split)


@dataclass(frozen=True)
class BadLine:
    path: str
    line: int  # 1-based
    reason: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.reason}"


class InvalidDataFile(ValueError):
    """A data file has bad lines (with ``on_bad="fail"``) or no usable line at all."""


@dataclass(frozen=True)
class SplitConfig:
    seed: int = 0
    test_frac: float = 0.10
    val_frac: float = 0.05

    def __post_init__(self) -> None:
        assert 0 <= self.test_frac and 0 <= self.val_frac and self.test_frac + self.val_frac < 1


TokenCounter = Callable[[str], int]


def wordpiece_counter(tokenizer: Any) -> TokenCounter:
    """Approximate Llama-2 token count of a text from a Hugging Face (WordPiece) tokenizer."""

    def count(text: str) -> int:
        n = len(tokenizer(text, add_special_tokens=False, truncation=False)["input_ids"])
        return int(round(n * LLAMA2_PER_WORDPIECE))

    return count


def _open_text(path: Path) -> Iterator[str]:
    with path.open("rb") as probe:
        gz = probe.read(2) == b"\x1f\x8b"
    with (gzip.open(path, "rt", encoding="utf-8") if gz else path.open("rt", encoding="utf-8")) as f:
        yield from f


def _parse(obj: Any, default_source: str, counter: TokenCounter | None) -> LengthExample:
    """One JSON object -> example; raises ``ValueError`` with the reason."""
    if not isinstance(obj, dict):
        raise ValueError(f"expected a JSON object, got {type(obj).__name__}")
    prompt = obj.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise ValueError("missing or empty 'prompt'")
    label = obj.get("response_tokens_llama2")
    if label is None:
        response = obj.get("response")
        if not isinstance(response, str):
            raise ValueError("needs 'response_tokens_llama2' or a 'response' text")
        if counter is None:
            raise ValueError("'response' given without 'response_tokens_llama2' and no token counter")
        label = counter(response)
    if isinstance(label, bool) or not isinstance(label, int | float) or not 0 <= label < 1e7:
        raise ValueError(f"'response_tokens_llama2' must be a number in [0, 1e7), got {label!r}")
    pt = obj.get("prompt_tokens_llama2")
    if pt is None:
        pt = counter(prompt) if counter is not None else max(1, round(len(prompt) / 4))
    if isinstance(pt, bool) or not isinstance(pt, int | float) or pt < 0:
        raise ValueError(f"'prompt_tokens_llama2' must be a non-negative number, got {pt!r}")
    model, source = obj.get("model"), obj.get("source")
    return LengthExample(prompt=prompt, output_tokens=float(label), prompt_tokens=int(pt),
                         model=str(model) if model else "unknown", source=str(source) if source else default_source)


def read_pairs(path: str | Path, on_bad: Literal["skip", "fail"] = "skip",
               counter: TokenCounter | None = None) -> tuple[list[LengthExample], list[BadLine]]:
    """All usable examples of one file plus its bad lines (``on_bad="fail"`` raises on the first one)."""
    path = Path(path)
    default_source = path.name.removesuffix(".gz").removesuffix(".jsonl")
    examples: list[LengthExample] = []
    bad: list[BadLine] = []
    for i, line in enumerate(_open_text(path), start=1):
        if not line.strip():
            continue
        try:
            examples.append(_parse(json.loads(line), default_source, counter))
        except (ValueError, TypeError) as err:  # json.JSONDecodeError is a ValueError
            bad.append(BadLine(str(path), i, str(err)))
            if on_bad == "fail":
                raise InvalidDataFile(str(bad[-1])) from err
    if not examples:
        raise InvalidDataFile(f"{path}: no usable line" + (f" (first bad: {bad[0]})" if bad else ""))
    return examples, bad


def split_of(prompt: str, cfg: SplitConfig) -> str:
    """``"test"``, ``"val"`` or ``"train"`` from the prompt text alone."""
    digest = hashlib.sha1(f"{cfg.seed}:{prompt.strip()}".encode(), usedforsecurity=False).digest()
    u = int.from_bytes(digest[:8], "big") / 2.0**64
    if u < cfg.test_frac:
        return "test"
    return "val" if u < cfg.test_frac + cfg.val_frac else "train"


def split_examples(examples: Sequence[LengthExample], cfg: SplitConfig) -> dict[str, list[LengthExample]]:
    parts: dict[str, list[LengthExample]] = {"train": [], "val": [], "test": []}
    for ex in examples:
        parts[split_of(ex.prompt, cfg)].append(ex)
    return parts
