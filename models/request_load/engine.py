"""Batched forward passes of the length model: length bucketing, dynamic padding, bf16/fp16 and CUDA graphs on
GPU, ONNX Runtime or torch int8 dynamic quantisation and thread count on CPU, optional torch.compile.

Rows are sorted by length and cut into batches of at most ``max_batch_size`` rows (on CPU ``cpu_batch_rows``),
so each batch pads only to its own longest row (on GPU: positions incl. the soft prompt rounded up to a multiple
of 8, or to the CUDA graph's bucket). On GPU every batch is launched before any result is copied back: the host
collates batch k+1 while the device runs batch k, and there is one device->host copy per call.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch

from models.request_load.cuda_graphs import GraphedForward
from models.request_load.encoding import Row, RowEncoder, masks, pack
from models.request_load.model import LengthModel, quantile_tokens

__all__ = ["EngineConfig", "LengthEngine", "RawOutputs"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EngineConfig:
    device: str = "cpu"
    dtype: str = "auto"  # "auto" = bf16 on CUDA, fp32 on CPU; or "fp32" / "bf16" / "fp16"
    max_batch_size: int = 256
    # rows per forward on CPU (None = max_batch_size): CPU throughput is flat from ~8 rows up (compute-bound, no
    # launch overhead to amortise) while a bigger batch pads more rows to its longest one (README, Speed)
    cpu_batch_rows: int | None = 8
    max_length: int | None = None  # truncate rows to this encoder length (incl. soft prompt); None = model's
    pad_multiple: int | None = None  # None = 8 on GPU (tensor-core shapes), 1 on CPU (padding there is pure waste)
    int8: bool = False  # CPU only: dynamic int8 quantisation (of the Linear layers / ONNX MatMuls)
    backend: str = "torch"  # CPU only: "torch" or "onnx" (ONNX Runtime, see onnx_backend.py)
    threads: int | None = None  # CPU only: torch intra-op threads
    compile: bool = False  # torch.compile(dynamic=True) of the model
    cuda_graphs: bool = True  # GPU only: replay captured graphs per shape bucket (cuda_graphs.py); off with compile
    # GPU: a batch without padding of at least this many positions (rows x (ids + soft prompt)) runs eagerly and
    # without a mask (flash kernel) rather than as its graph, which needs a mask (memory-efficient kernel): the
    # graph saves launches, which matter at small batches; flash wins on big ones (README, Speed; H200: graph
    # 1.9x eager at 64 x 128, about even at 256 x 128, eager 1.1x at 512 x 128 and 1.35x at 256 x 512)
    eager_full_positions: int = 65_536
    tokenizer_threads: int = 1  # batches tokenized concurrently by LengthEngine.run
    # With tokenizer_threads > 1: rows per tokenization chunk (and per forward) in LengthEngine.run, so one call's
    # chunks are tokenized by the pool in parallel while the calling thread launches the forward of each chunk as
    # it is ready (the device runs chunk k while the pool tokenizes k+1..); None = one chunk per forward batch.
    tokenize_rows: int | None = None

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
        assert cfg.backend in ("torch", "onnx"), f"unknown backend {cfg.backend!r}"
        model = model.eval().to(self.device, cfg.torch_dtype())
        self.forward: Callable[..., tuple[torch.Tensor, torch.Tensor]]
        if cfg.backend == "onnx":
            assert self.device.type == "cpu" and cfg.torch_dtype() == torch.float32, "ONNX is the fp32/int8 CPU path"
            from models.request_load.onnx_backend import load_onnx_forward

            self.forward = load_onnx_forward(model, int8=cfg.int8, threads=cfg.threads)
        else:
            if cfg.int8:
                assert self.device.type == "cpu", "int8 dynamic quantisation is a CPU path"
                model = torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
            self.forward = torch.compile(model, dynamic=True) if cfg.compile else model
        self.model = model
        self.budget = (cfg.max_length or model.config.max_length) - model.config.n_soft
        self.mean_scale = model.config.mean_scale
        self.pad_multiple = cfg.pad_multiple or (1 if self.device.type == "cpu" else 8)
        self.step = cfg.max_batch_size if self.device.type != "cpu" else min(cfg.max_batch_size,
                                                                           cfg.cpu_batch_rows or cfg.max_batch_size)
        self.graphed: GraphedForward | None = None
        if self.device.type == "cuda" and cfg.cuda_graphs and not cfg.compile:
            why_not = model.mask_read_on_host()
            if why_not is None:
                self.graphed = GraphedForward(model, self.device, cfg.max_batch_size)
            else:
                log.info("CUDA graphs off: %s", why_not)
        self._pool = ThreadPoolExecutor(cfg.tokenizer_threads, thread_name_prefix="tokenize") \
            if cfg.tokenizer_threads > 1 else None

    def encode(self, prompts: Sequence[str], services: Sequence[str]) -> list[Row]:
        return self.rows.encode(prompts, services, budget=self.budget)

    def _launch(self, rows: Sequence[Row], model_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Pack on the host, one host->device copy of the ids, masks built on the device, async forward (a graph
        replay where one is captured)."""
        n_soft = self.model.config.n_soft
        longest = max(len(r[0]) for r in rows)
        big_and_full = (len(rows) * (longest + n_soft) >= self.cfg.eager_full_positions
                        and all(len(r[0]) == longest for r in rows))
        if self.graphed is not None and not big_and_full:
            ids, lengths, heads = pack(rows, 1, cap=self.budget)  # the graph's bucket decides the padding
            try:
                return self.graphed(ids, lengths, heads, model_ids)
            except RuntimeError as err:  # a capture that fails once fails always: run eagerly from now on
                log.warning("CUDA graphs off after a failed capture: %s", err)
                self.graphed = None
        ids, lengths, heads = pack(rows, self.pad_multiple, cap=self.budget, offset=n_soft)
        d = self.device
        ids_d = torch.from_numpy(ids).to(d, non_blocking=True)
        lh = torch.from_numpy(np.stack([lengths, heads])).to(d, non_blocking=True)  # (2, B)
        mask, types = masks(ids.shape[1], lh[0], lh[1])
        # no padding (known here, on the host): no mask, so the GPU runs the flash kernel (ONNX wants the mask)
        full = d.type == "cuda" and int(lengths.min()) == ids.shape[1]
        return self.forward(ids_d, None if full else mask, types, model_ids.to(d, non_blocking=True))

    def _finish(self, outs: list[tuple[torch.Tensor, torch.Tensor]], order: np.ndarray) -> RawOutputs:
        q = torch.cat([o[0] for o in outs]).float()
        mean = torch.cat([o[1] for o in outs]).float()
        packed = torch.cat([quantile_tokens(q), (mean * self.mean_scale).unsqueeze(1)], dim=1).cpu().numpy()
        result = np.empty_like(packed)
        result[order] = packed  # back to the callers' order
        return RawOutputs(quantiles=result[:, :-1], mean=result[:, -1])

    @torch.inference_mode()
    def run_rows(self, rows: Sequence[Row], services: Sequence[str]) -> RawOutputs:
        """Forward of already-encoded rows (bucketed by token length), in their given order."""
        assert len(rows) == len(services) and rows
        order = np.argsort(np.fromiter((len(r[0]) for r in rows), np.int64, len(rows)), kind="stable")
        model_ids = self.model.model_ids(list(services))
        step = self.step
        outs = [self._launch([rows[i] for i in order[s:s + step]], model_ids[torch.from_numpy(order[s:s + step])])
                for s in range(0, len(rows), step)]
        return self._finish(outs, order)

    @torch.inference_mode()
    def run(self, prompts: Sequence[str], services: Sequence[str]) -> RawOutputs:
        """Tokenize + forward. Buckets by character length (a proxy for token length known before tokenizing),
        so the host tokenizes batch k+1 while the device runs batch k; with ``tokenizer_threads`` > 1 several
        batches are tokenized at once (the Rust tokenizer releases the GIL), in chunks of ``tokenize_rows``
        so that even one call's rows are spread over the pool and overlap the device."""
        assert len(prompts) == len(services) and prompts
        order = np.argsort(np.fromiter((len(p) for p in prompts), np.int64, len(prompts)), kind="stable")
        model_ids = self.model.model_ids(list(services))
        step = self.step
        if self._pool is not None and self.cfg.tokenize_rows:
            step = min(step, self.cfg.tokenize_rows)
        chunks = [order[s:s + step] for s in range(0, len(prompts), step)]

        def encode(idx: np.ndarray) -> list[Row]:
            return self.encode([prompts[i] for i in idx], [services[i] for i in idx])

        if self._pool is not None and len(chunks) > 1:
            encoded = self._pool.map(encode, chunks)  # in order, computed ahead
        else:
            encoded = map(encode, chunks)
        outs = [self._launch(rows, model_ids[torch.from_numpy(idx)]) for idx, rows in zip(chunks, encoded, strict=True)]
        return self._finish(outs, order)
