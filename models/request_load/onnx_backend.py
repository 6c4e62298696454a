"""ONNX Runtime forward of the length model, the CPU serving path.

Why: on a small CPU the encoder is compute-bound, and ONNX Runtime's int8 kernels (``MatMulInteger``, VNNI on
AVX-512 machines) and its own thread pool (no spinning) ran the model several times faster than torch's
dynamic int8 on the 2-core development machine, most of all at small batches (README, Speed).

The graph is exported once per (trained weights, encoder, int8) from the fp32 model with dynamic batch and
sequence axes and, if asked, quantised to int8 (dynamic: weights int8 per tensor, activations quantised per call;
ORT's offline transformer fusions were measured too and did not help here, so they are left out). The files are cached under ``cache_dir`` keyed by a hash of all
weights, so a restart skips the export. The session's outputs are exactly those of ``LengthModel.forward``.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from models.request_load.model import LengthModel

__all__ = ["OnnxForward", "load_onnx_forward", "default_cache_dir", "onnx_available"]

log = logging.getLogger(__name__)
INPUTS = ("input_ids", "attention_mask", "token_type_ids", "model_ids")
EXPORT_VERSION = 3  # part of the cache key: bump when the exported graph changes (3: prepared 4D mask)


def onnx_available() -> bool:
    try:
        import onnxruntime  # noqa: F401
        import onnxruntime.quantization  # noqa: F401
    except ImportError:
        return False
    return True


def default_cache_dir() -> Path:
    """``$PRESERVE_ONNX_CACHE``, else ``~/.cache/preserve/onnx``."""
    return Path(os.environ.get("PRESERVE_ONNX_CACHE") or Path.home() / ".cache" / "preserve" / "onnx")


def weights_key(model: LengthModel, int8: bool) -> str:
    """sha1 of every weight (frozen ones too: the encoder path may hold other weights) + config + int8."""
    h = hashlib.sha1(usedforsecurity=False)
    h.update(repr((sorted(model.config.to_dict().items()), int8, torch.__version__, EXPORT_VERSION)).encode())
    for name, tensor in model.state_dict().items():
        h.update(name.encode())
        h.update(tensor.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


class OnnxForward:
    """Callable with ``LengthModel.forward``'s signature, backed by an ONNX Runtime session."""

    def __init__(self, session: Any, path: Path) -> None:
        """:param session: an ``onnxruntime.InferenceSession`` of an exported length model."""
        self.session = session
        self.path = path

    def __call__(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor,
                 model_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feed = {name: t.numpy().astype(np.int64, copy=False)
                for name, t in zip(INPUTS, (input_ids, attention_mask, token_type_ids, model_ids), strict=True)}
        q, mean = self.session.run(None, feed)
        return torch.from_numpy(q), torch.from_numpy(mean)


def _export(model: LengthModel, path: Path) -> None:
    """fp32 export with dynamic (batch, sequence) axes."""
    B, T = 2, 16
    ids = torch.ones(B, T, dtype=torch.long)  # any valid id: the traced graph does not depend on values
    ones = torch.ones(B, T, dtype=torch.long)
    axes = {n: {0: "batch", 1: "seq"} for n in INPUTS[:3]} | {"model_ids": {0: "batch"}, "quantiles": {0: "batch"},
                                                               "mean": {0: "batch"}}
    # eager attention traces to plain MatMul/Softmax: the SDPA path adds mask ops (IsNaN/Where) that cost ~5% here
    backbone = model.backbone
    before = getattr(backbone.config, "_attn_implementation", None)
    switch = before not in (None, "eager") and hasattr(backbone, "set_attn_implementation")
    try:
        if switch:
            backbone.set_attn_implementation("eager")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(model, (ids, ones, ones, torch.zeros(B, dtype=torch.long)), str(path),
                              input_names=list(INPUTS), output_names=["quantiles", "mean"], dynamic_axes=axes,
                              opset_version=17, dynamo=False)
    finally:
        if switch:
            backbone.set_attn_implementation(before)


def _quantise(src: Path, dst: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8)


def load_onnx_forward(model: LengthModel, int8: bool = True, threads: int | None = None,
                      cache_dir: Path | None = None) -> OnnxForward:
    """Export (or reuse from the cache) and open the ONNX graph of ``model`` (fp32 on CPU, adapters merged).

    :param int8: dynamic int8 quantisation of the MatMuls; :param threads: intra-op threads (None = ORT's)."""
    import onnxruntime as ort

    model = model.merge_adapters().eval().to("cpu", torch.float32)
    cache = Path(cache_dir or default_cache_dir())
    cache.mkdir(parents=True, exist_ok=True)
    key = weights_key(model, int8)
    path = cache / f"length-{key}{'-int8' if int8 else ''}.onnx"
    if not path.is_file():
        log.info("exporting the length model to %s", path)
        # built in a private temp folder and moved in by one rename: concurrent starts never see a partial file
        with tempfile.TemporaryDirectory(dir=cache) as tmp:
            raw = Path(tmp) / "raw.onnx"
            _export(model, raw)
            if int8:
                _quantise(raw, Path(tmp) / "int8.onnx")
                raw = Path(tmp) / "int8.onnx"
            os.replace(raw, path)
    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    # no busy-waiting between ops: on a shared 2-core host a spinning pool thread steals the core its partner
    # needs; measured 1.3-3.8x faster without spinning at load 5-6 (README, Speed)
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return OnnxForward(ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"]), path)
