"""Batched forward passes of the length model: length bucketing, dynamic padding, bf16/fp16 on GPU,
int8 dynamic quantisation and thread count on CPU, optional torch.compile.

Rows are sorted by length and cut into batches of at most ``max_batch_size``, so each batch pads only to its
own longest row (rounded up to a multiple of 8). On GPU every batch is launched before any result is copied
back: the host collates batch k+1 while the device runs batch k, and there is one device->host copy per call.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from models.request_load.encoding import RowEncoder, collate
from models.request_load.model import LengthModel, quantile_tokens

__all__ = ["EngineConfig", "LengthEngine", "RawOutputs"]


@dataclass(frozen=True)
class EngineConfig:
    device: str = "cpu"
    dtype: str = "auto"  # "auto" = bf16 on CUDA, fp32 on CPU; or "fp32" / "bf16" / "fp16"
    max_batch_size: int = 256
    max_length: int | None = None  # truncate rows to this encoder length (incl. soft prompt); None = model's
    pad_multiple: int = 8
    int8: bool = False  # CPU only: torch dynamic int8 quantisation of the Linear layers
    threads: int | None = None  # CPU only: torch intra-op threads
    compile: bool = False  # torch.compile(dynamic=True) of the model

    def torch_dtype(self) -> torch.dtype:
        name = self.dtype if self.dtype != "auto" else ("bf16" if self.device.startswith("cuda") else "fp32")
        return {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[name]


@dataclass(frozen=True)
class RawOutputs:
    quantiles: np.ndarray  # (N, Q) tokens, ascending along Q
    mean: np.ndarray  # (N,) expected tokens


class LengthEngine:
    def __init__(self, model: LengthModel, rows: RowEncoder, cfg: EngineConfig) -> None:
        """:param model: a trained model (moved to ``cfg.device`` / dtype here; put in eval mode)."""
        self.cfg = cfg
        self.rows = rows
        self.device = torch.device(cfg.device)
        if cfg.threads and self.device.type == "cpu":
            torch.set_num_threads(cfg.threads)
        model = model.eval().to(self.device, cfg.torch_dtype())
        if cfg.int8:
            assert self.device.type == "cpu", "int8 dynamic quantisation is a CPU path"
            model = torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
        self.model = model
        self.forward = torch.compile(model, dynamic=True) if cfg.compile else model
        self.budget = (cfg.max_length or model.config.max_length) - model.config.n_soft
        self.mean_scale = model.config.mean_scale

    def encode(self, prompts: Sequence[str], services: Sequence[str]) -> list[tuple[list[int], list[int]]]:
        return self.rows.encode(prompts, services, budget=self.budget)

    @torch.inference_mode()
    def run_rows(self, rows: Sequence[tuple[list[int], list[int]]], services: Sequence[str]) -> RawOutputs:
        """Forward of already-encoded rows, in their given order."""
        n = len(rows)
        assert n == len(services) and n > 0
        order = np.argsort([len(r[0]) for r in rows], kind="stable")
        model_ids = self.model.model_ids(list(services))
        outs: list[tuple[torch.Tensor, torch.Tensor]] = []
        pin = self.device.type == "cuda"
        for start in range(0, n, self.cfg.max_batch_size):
            idx = order[start:start + self.cfg.max_batch_size]
            batch = collate([rows[i] for i in idx], model_ids[torch.from_numpy(idx)], self.cfg.pad_multiple,
                            cap=self.budget)
            if pin:
                batch = type(batch)(*(t.pin_memory() for t in (batch.input_ids, batch.attention_mask,
                                                                batch.token_type_ids, batch.model_ids)))
            b = batch.to(self.device)
            outs.append(self.forward(b.input_ids, b.attention_mask, b.token_type_ids, b.model_ids))
        q = torch.cat([o[0] for o in outs]).float()
        mean = torch.cat([o[1] for o in outs]).float()
        packed = torch.cat([quantile_tokens(q), (mean * self.mean_scale).unsqueeze(1)], dim=1).cpu().numpy()
        result = np.empty_like(packed)
        result[order] = packed  # undo the length sort
        return RawOutputs(quantiles=result[:, :-1], mean=result[:, -1])

    def run(self, prompts: Sequence[str], services: Sequence[str]) -> RawOutputs:
        return self.run_rows(self.encode(prompts, services), services)
