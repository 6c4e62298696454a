"""CUDA-graph replay of the length model's forward: one graph per (batch bucket, position bucket).

Why: at serving batch sizes the encoder's forward is ~150 small kernels launched one by one from Python; the host
spends about as long launching them as the GPU spends computing, and the two overlap only in part (README,
Speed). A captured graph launches the whole forward at once and the host is free to pack the next batch.

Shapes are bucketed (rows up to a power of two, positions incl. the soft prompt up to a multiple of
``seq_multiple``), so a few dozen graphs cover every batch the engine forms. Every graph takes an attention
mask, even for a batch without padding: under capture transformers cannot drop an all-ones mask (it treats a
capture like tracing) and expands one with a stride-0 last dimension that no fused kernel takes, so a mask-free
graph ran the fp32 math kernel, 3x slower than eager. With a prepared mask the graph runs the memory-efficient
kernel; measured on an H200 it is 1.0-3x the eager rate (the gain is at small batches, where launches dominate). All graphs share one memory pool:
they run on one stream, never concurrently, and each replay's outputs are copied out before the next replay.
Graphs are captured lazily, on a shape's first use (tens of milliseconds each). The forward must not read device
values on the host (``LengthModel._backbone_mask`` keeps it sync-free); ``LengthModel.mask_read_on_host``
says when it is not.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

from models.request_load.encoding import masks
from models.request_load.model import LengthModel

__all__ = ["GraphedForward"]


@dataclass
class _Graph:
    graph: torch.cuda.CUDAGraph
    ids: torch.Tensor  # (B, T) int32, static input
    lengths_heads: torch.Tensor  # (2, B) int64, static input
    model_ids: torch.Tensor  # (B,) int64, static input
    quantiles: torch.Tensor  # (B, Q) static output
    mean: torch.Tensor  # (B,) static output


class GraphedForward:
    """``(ids, lengths, heads, model_ids) -> (quantiles, mean)`` of the first B rows, on the device, by graph replay."""

    def __init__(self, model: LengthModel, device: torch.device, max_batch: int, seq_multiple: int = 32) -> None:
        """:param model: on ``device``, in eval mode, in its serving dtype; :param max_batch: the largest batch."""
        assert device.type == "cuda", "CUDA graphs need a CUDA device"
        self.model = model
        self.device = device
        self.max_batch = max_batch
        self.seq_multiple = seq_multiple
        self.n_soft = model.config.n_soft
        self.max_positions = model.config.max_length
        self.graphs: dict[tuple[int, int], _Graph] = {}  # (rows, id columns) -> graph
        self._pool = torch.cuda.graph_pool_handle()
        self._lock = threading.Lock()  # static buffers: one (copy in, replay, copy out) at a time

    def bucket(self, rows: int, ids_len: int) -> tuple[int, int]:
        """(rows, id columns) of the graph that serves a batch of ``rows`` x ``ids_len`` ids."""
        assert 0 < rows <= self.max_batch, f"batch of {rows} rows > max_batch {self.max_batch}"
        b = min(1 << (rows - 1).bit_length(), self.max_batch)
        m = self.seq_multiple
        positions = min(-(-(ids_len + self.n_soft) // m) * m, self.max_positions)
        assert positions >= ids_len + self.n_soft, "row longer than the model's max_length"
        return b, positions - self.n_soft

    def _capture(self, rows: int, cols: int) -> _Graph:
        d = self.device
        ids = torch.zeros((rows, cols), dtype=torch.int32, device=d)
        lh = torch.zeros((2, rows), dtype=torch.int64, device=d)
        lh[0] = cols  # full rows while warming up and capturing: every kernel sees real shapes
        mids = torch.zeros(rows, dtype=torch.int64, device=d)

        def forward() -> tuple[torch.Tensor, torch.Tensor]:
            mask, types = masks(cols, lh[0], lh[1])
            return self.model(ids, mask, types, mids)

        side = torch.cuda.Stream(d)
        side.wait_stream(torch.cuda.current_stream(d))
        # never the math kernel inside a graph (fp32 scores, 3x slower): if no fused kernel takes this batch the
        # capture fails and the engine runs eagerly instead
        with sdpa_kernel([SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION]):
            with torch.cuda.stream(side):  # warm-up off the capture: lazy library init, kernel selection
                for _ in range(2):
                    forward()
            torch.cuda.current_stream(d).wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph, pool=self._pool):
                q, mean = forward()
        return _Graph(graph, ids, lh, mids, q, mean)

    def __call__(self, ids: np.ndarray, lengths: np.ndarray, heads: np.ndarray,
                 model_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """:param ids: (B, T) int32 host array as ``encoding.pack`` gives it; :param model_ids: (B,) int64.
        :returns: (quantiles (B, Q), mean (B,)) on the device, no host sync."""
        n, t = ids.shape
        rows, cols = self.bucket(n, t)
        host_ids = np.zeros((rows, cols), dtype=np.int32)
        host_ids[:n, :t] = ids
        host_lh = np.zeros((2, rows), dtype=np.int64)  # padding rows: length 0, only the soft prompt attends
        host_lh[0, :n], host_lh[1, :n] = lengths, heads
        host_mids = np.zeros(rows, dtype=np.int64)
        host_mids[:n] = model_ids.numpy()
        with self._lock:
            g = self.graphs.get((rows, cols))
            if g is None:
                g = self.graphs[(rows, cols)] = self._capture(rows, cols)
            g.ids.copy_(torch.from_numpy(host_ids), non_blocking=True)
            g.lengths_heads.copy_(torch.from_numpy(host_lh), non_blocking=True)
            g.model_ids.copy_(torch.from_numpy(host_mids), non_blocking=True)
            g.graph.replay()
            return g.quantiles[:n].clone(), g.mean[:n].clone()
