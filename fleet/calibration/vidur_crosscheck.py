"""Cross-check measured step times against Microsoft Vidur's published per-operator profiles, and derive the
A100 preset from the H100 calibration with Vidur's A100/H100 ratios.

Vidur sums (see ``<data>/profiles/README.md`` section 4): per layer, the nine non-attention ops of ``mlp.csv`` at
the batch's token count (rounded up to the profiled grid) plus the attention kernel, times 32 layers; no LM head,
sampling, launch gaps or CPU time. H100 has no attention profile, so H100 rows show the non-attention part only.

Run: ``python -m fleet.calibration.vidur_crosscheck [--measurements CSV] [--h100-json JSON] [--write-a100 JSON]``
"""

from __future__ import annotations

import argparse
import bisect
import csv
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from fleet.calibration.fit import nnls, read_measurements
from streams.policies.cost_model import CostModel
from streams.settings import data_path

__all__ = ["VidurProfiles", "a100_from_h100", "main"]

LAYERS = 32
NON_ATTN_OPS = ("input_layernorm", "attn_pre_proj", "attn_rope", "attn_post_proj", "post_attention_layernorm",
                "mlp_up_proj", "mlp_act", "mlp_down_proj", "add")
COMPUTE = "profiles/vidur/data/profiling/compute/{gpu}/meta-llama/Llama-2-7b-hf"


@dataclass(frozen=True)
class VidurProfiles:
    """Per-step (32-layer) seconds from Vidur's TP1 Llama-2-7B tables."""

    non_attn: dict[str, dict[int, float]]  # gpu -> num_tokens -> s
    a100_decode: dict[tuple[int, int], float]  # (batch, kv) -> s
    a100_prefill: dict[tuple[int, int], float]  # (chunk, kv) -> s

    @classmethod
    def load(cls, root: Path | None = None) -> VidurProfiles:
        root = root or data_path()
        non_attn = {gpu: _non_attn_table(root / COMPUTE.format(gpu=gpu) / "mlp.csv") for gpu in ("h100", "a100")}
        dec: dict[tuple[int, int], float] = {}
        pre: dict[tuple[int, int], float] = {}
        with (root / COMPUTE.format(gpu="a100") / "attention.EXCERPT_tp1.csv").open(newline="") as fh:
            for rec in csv.DictReader(fh):
                t = float(rec["time_stats.op.median_ms"]) * LAYERS / 1000.0
                if rec["op"] == "attn_decode":
                    dec[(int(rec["batch_size"]), int(rec["kv_cache_size"]))] = t
                else:
                    pre[(int(rec["prefill_chunk_size"]), int(rec["kv_cache_size"]))] = t
        return cls(non_attn, dec, pre)

    def non_attn_s(self, gpu: str, tokens: int) -> float:
        """Non-attention time at the smallest profiled token count >= tokens (Vidur rounds up)."""
        table = self.non_attn[gpu]
        keys = sorted(table)
        i = min(bisect.bisect_left(keys, tokens), len(keys) - 1)
        return table[keys[i]]

    def ratios(self) -> dict[str, float]:
        """A100/H100 ratios of the non-attention ops: weight-read-bound floor and compute-bound slope."""
        a, h = self.non_attn["a100"], self.non_attn["h100"]
        small = [n for n in a if n <= 64]
        floor = float(np.mean([a[n] / h[n] for n in small]))
        slope = (a[4096] - a[1024]) / (h[4096] - h[1024])
        return {"floor": floor, "slope": slope}


def _non_attn_table(path: Path) -> dict[int, float]:
    sums: dict[int, list[float]] = {}
    with path.open(newline="") as fh:
        for rec in csv.DictReader(fh):
            if int(rec["num_tensor_parallel_workers"]) != 1:
                continue
            ms = sum(float(rec[f"time_stats.{op}.median"]) for op in NON_ATTN_OPS)
            sums.setdefault(int(rec["num_tokens"]), []).append(ms * LAYERS / 1000.0)
    return {n: float(np.mean(v)) for n, v in sums.items()}  # 2048 and 4096 appear twice


def a100_attention_fit(v: VidurProfiles) -> tuple[float, float, float]:
    """(per-step constant, c_ctx, c_pf_attn) of Vidur's A100 attention excerpt, by NNLS like the main fit."""
    dec = np.array([[1.0, b * kv, t] for (b, kv), t in v.a100_decode.items()])
    cd = nnls(dec[:, :2], dec[:, 2])
    pre = np.array([[1.0, c * (kv + c), t] for (c, kv), t in v.a100_prefill.items()])
    cp = nnls(pre[:, :2], pre[:, 2])
    return float(cd[0]), float(cd[1]), float(cp[1])


def a100_from_h100(h100: CostModel, v: VidurProfiles) -> tuple[CostModel, dict[str, float]]:
    """A100 cost model: linear-op terms of the H100 fit scaled by Vidur's A100/H100 ratios (floor for c0/c_seq,
    slope for c_tok/c_tok_hinge); attention terms from Vidur's own A100 attention profile (no H100 one exists)."""
    r = v.ratios()
    _, c_ctx, c_pf = a100_attention_fit(v)
    values = asdict(h100)
    values.update(c0=h100.c0 * r["floor"], c_seq=h100.c_seq * r["floor"], c_tok=h100.c_tok * r["slope"],
                  c_tok_hinge=h100.c_tok_hinge * r["slope"], c_ctx=c_ctx, c_pf_attn=c_pf,
                  source="llama2-7b-h100 fit scaled by Vidur A100/H100 ratios; attention from Vidur A100 profile")
    return CostModel(**values), {**r, "vidur_a100_c_ctx": c_ctx, "vidur_a100_c_pf_attn": c_pf}


def comparison_rows(v: VidurProfiles, measurements: Path, h100: CostModel, a100: CostModel) -> list[list[str]]:
    """Table rows: step, measured H100, H100 fit, Vidur H100 non-attn, Vidur A100 (+attn where profiled), A100."""
    points = {(m.prefill_tokens, m.decode_seqs, m.context_tokens, m.prefill_pairs): m.seconds
              for m in read_measurements(measurements)}
    wanted = [("decode b1 ctx2048", 0, 1, 2048, 0), ("decode b32 ctx1024", 0, 32, 32 * 1024, 0),
              ("decode b32 ctx2048", 0, 32, 32 * 2048, 0), ("decode b64 ctx1024", 0, 64, 64 * 1024, 0),
              ("decode b128 ctx512", 0, 128, 128 * 512, 0), ("prefill 512", 512, 0, 0, 512 * 512),
              ("prefill 2048", 2048, 0, 0, 2048 * 2048), ("prefill 4096", 4096, 0, 0, 4096 * 4096)]
    rows = []
    for label, p, d, ctx, pairs in wanted:
        meas = points.get((p, d, ctx, float(pairs)))
        n = p + d
        a100_attn = v.a100_decode.get((d, ctx // d)) if d else v.a100_prefill.get((p, 0))
        vid_a100 = v.non_attn_s("a100", n) + a100_attn if a100_attn is not None else None
        cells = [meas, h100.step_time(p, d, ctx, pairs) - h100.cpu_overhead_s - h100.cpu_per_seq_s * d,
                 v.non_attn_s("h100", n), vid_a100,
                 a100.step_time(p, d, ctx, pairs) - a100.cpu_overhead_s - a100.cpu_per_seq_s * d]
        rows.append([label] + ["-" if c is None else f"{c * 1e3:.1f}" for c in cells])
    return rows


def main(argv: list[str] | None = None) -> int:
    here = Path(__file__).resolve().parent
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--measurements", type=Path, default=here / "h100_measurements.csv")
    p.add_argument("--h100-json", type=Path, default=here / "llama2-7b-h100.json")
    p.add_argument("--write-a100", type=Path, default=None, help="write the derived A100 cost-model JSON here")
    args = p.parse_args(argv)
    v = VidurProfiles.load()
    h100 = CostModel.from_json(args.h100_json)
    a100, info = a100_from_h100(h100, v)
    print("A100/H100 derivation:", json.dumps(info))
    header = ["step", "H100 measured", "H100 fit", "Vidur H100 non-attn", "Vidur A100 total", "A100 preset"]
    print("| " + " | ".join(header) + " |  (ms, GPU time only)")
    print("|" + "---|" * len(header))
    for row in comparison_rows(v, args.measurements, h100, a100):
        print("| " + " | ".join(row) + " |")
    if args.write_a100:
        a100.to_json(args.write_a100, extra={
            "status": "derived: llama2-7b-h100 calibration scaled by Vidur's A100/H100 profile ratios (no A100 "
                      "was available to measure)",
            "derivation": f"c0, c_seq x floor ratio {info['floor']:.3f} (A100/H100 non-attention ops at <= 64 "
                          f"tokens, weight-read bound); c_tok, c_tok_hinge x slope ratio {info['slope']:.3f} "
                          "(1024->4096 tokens, compute bound); c_ctx and c_pf_attn from NNLS on Vidur's A100 "
                          "attention excerpt; CPU overheads as in the H100 preset",
            "ratios": info})
        print(f"wrote {args.write_a100}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
