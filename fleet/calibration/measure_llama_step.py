"""Measure engine-step times of a Llama-2-7B-architecture model on this GPU, the way a serving engine runs it.

Random fp16 weights (cost does not depend on weight values), a PREALLOCATED KV cache filled with random values,
PyTorch SDPA (flash attention; memory-efficient as fallback, never the math kernel) and a CUDA graph around every
step, so that kernel-launch gaps (which vLLM also removes with CUDA graphs) stay out of the numbers. A step is one
forward pass over a continuous batch: ``n_pf`` prompts (or chunks after a cached ``prefix``) of ``chunk`` tokens,
plus ``n_dec`` decoding sequences of context ``ctx`` each, then the LM head and greedy sampling of every
sequence's last token. The cache is contiguous per sequence (vLLM's is paged in 16-token blocks; the
flash-attention paged kernels read the same bytes). Each point: 2 eager warm-ups, graph capture, 3 replays, then
5..30 timed replays with CUDA events; the median is kept.

Usage (GPU machine): ``python fleet/calibration/measure_llama_step.py --out h100_measurements.csv``
Smoke test without a GPU: ``python fleet/calibration/measure_llama_step.py --tiny --out /tmp/m.csv``
"""

from __future__ import annotations

import argparse
import csv
import datetime
import json
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.nn.attention.bias import causal_lower_right


@dataclass(frozen=True)
class Arch:
    layers: int = 32
    hidden: int = 4096
    heads: int = 32
    inter: int = 11008
    vocab: int = 32000
    max_len: int = 4096
    eps: float = 1e-5

    @property
    def head_dim(self) -> int:
        return self.hidden // self.heads


LLAMA2_7B = Arch()
LLAMA2_13B = Arch(layers=40, hidden=5120, heads=40, inter=13824)  # the published Llama-2-13B shape
TINY = Arch(layers=2, hidden=256, heads=4, inter=688, vocab=1000)
ARCHS = {"llama2-7b": LLAMA2_7B, "llama2-13b": LLAMA2_13B}


@dataclass(frozen=True)
class Step:
    """One engine step: n_pf prompt chunks (chunk tokens after prefix cached ones) + n_dec decodes at ctx."""

    kind: str
    n_pf: int = 0
    chunk: int = 0
    prefix: int = 0
    n_dec: int = 0
    ctx: int = 0

    @property
    def kv_tokens(self) -> int:
        return self.n_pf * (self.prefix + self.chunk) + self.n_dec * self.ctx


def build_grid(kv_budget: int, max_batched: int = 8192, max_len: int = 4096) -> list[Step]:
    """Steps the simulator produces, within the KV budget of the card and vLLM's per-step limits."""
    steps: list[Step] = []
    for b in (1, 2, 4, 8, 16, 32, 48, 64, 96, 128, 160, 192, 256):
        for c in (128, 256, 512, 1024, 1536, 2048, 3072, 4096):
            steps.append(Step("decode", n_dec=b, ctx=c))
    for length in (32, 128, 256, 512, 1024, 2048, 3072, 4096):
        for m in (1, 2, 4, 8, 16, 32, 64):
            if m * length <= max_batched:
                steps.append(Step("prefill", n_pf=m, chunk=length))
    for chunk, prefix in ((256, 1024), (512, 512), (512, 2048), (1024, 1024), (1024, 3072), (2048, 2048),
                          (512, 3584), (2048, 1024)):
        steps.append(Step("chunked", n_pf=1, chunk=chunk, prefix=prefix))
    for chunk, prefix in ((128, 0), (512, 0), (512, 1536), (2048, 0), (2048, 2048)):
        for b, c in ((8, 1024), (32, 512), (32, 2048), (128, 512), (64, 1024), (192, 256)):
            steps.append(Step("mixed", n_pf=1, chunk=chunk, prefix=prefix, n_dec=b, ctx=c))
    return [s for s in steps if s.kv_tokens <= kv_budget and s.n_pf * s.chunk + s.n_dec <= max_batched
            and s.prefix + s.chunk <= max_len and s.ctx <= max_len]


def tiny_grid() -> list[Step]:
    return [Step("decode", n_dec=4, ctx=64), Step("prefill", n_pf=2, chunk=32),
            Step("chunked", n_pf=1, chunk=16, prefix=32), Step("mixed", n_pf=1, chunk=16, prefix=16, n_dec=3, ctx=40)]


class Llama:
    """Compact Llama forward over a preallocated KV cache: RMSNorm, rotary, SDPA, gated MLP."""

    def __init__(self, arch: Arch, kv_tokens: int, device: torch.device, dtype: torch.dtype) -> None:
        a, self.arch, self.device, self.dtype = arch, arch, device, dtype
        self.fused = False

        def rnd(*shape: int) -> torch.Tensor:
            return torch.randn(*shape, device=device, dtype=dtype).mul_(0.02)

        self.embed, self.lm_head = rnd(a.vocab, a.hidden), rnd(a.vocab, a.hidden)
        self.norm = torch.ones(a.hidden, device=device, dtype=dtype)
        self.layers = [dict(wqkv=rnd(3 * a.hidden, a.hidden), wo=rnd(a.hidden, a.hidden),
                            wgu=rnd(2 * a.inter, a.hidden), wd=rnd(a.hidden, a.inter),
                            ln1=torch.ones(a.hidden, device=device, dtype=dtype),
                            ln2=torch.ones(a.hidden, device=device, dtype=dtype)) for _ in range(a.layers)]
        # Random, not zeros: zeros can run faster than real data.
        self.kv = torch.empty(a.layers, 2, kv_tokens, a.heads, a.head_dim, device=device, dtype=dtype).normal_()
        inv = 1.0 / (10000.0 ** (torch.arange(0, a.head_dim, 2, device=device).float() / a.head_dim))
        freqs = torch.outer(torch.arange(a.max_len, device=device).float(), inv)
        emb = torch.cat((freqs, freqs), dim=-1)
        self.cos, self.sin = emb.cos().to(dtype), emb.sin().to(dtype)

    def inputs(self, s: Step) -> dict[str, torch.Tensor]:
        """Static input tensors of one step (token ids, positions, rows of the last tokens)."""
        dev = self.device
        pf_pos = (s.prefix + torch.arange(s.chunk, device=dev)).repeat(s.n_pf)
        dec_pos = torch.full((s.n_dec,), max(s.ctx - 1, 0), device=dev, dtype=torch.long)
        pos = torch.cat((pf_pos, dec_pos))
        last = torch.cat((torch.arange(1, s.n_pf + 1, device=dev) * s.chunk - 1,
                          s.n_pf * s.chunk + torch.arange(s.n_dec, device=dev)))
        ids = torch.randint(0, self.arch.vocab, (pos.numel(),)).to(dev)  # CPU generator: never in capture state
        return dict(ids=ids, cos=self.cos[pos].unsqueeze(1), sin=self.sin[pos].unsqueeze(1), last=last)

    def _attention(self, layer: int, s: Step, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        a = self.arch
        out = torch.empty_like(q)  # (T, H, D)
        tp = s.n_pf * s.chunk
        if s.n_pf:
            span = s.prefix + s.chunk
            kc = self.kv[layer, 0, :s.n_pf * span].view(s.n_pf, span, a.heads, a.head_dim)
            vc = self.kv[layer, 1, :s.n_pf * span].view(s.n_pf, span, a.heads, a.head_dim)
            kp = k[:tp].view(s.n_pf, s.chunk, a.heads, a.head_dim)
            vp = v[:tp].view(s.n_pf, s.chunk, a.heads, a.head_dim)
            kc[:, s.prefix:] = kp
            vc[:, s.prefix:] = vp
            qp = q[:tp].view(s.n_pf, s.chunk, a.heads, a.head_dim).transpose(1, 2)
            if s.prefix == 0:
                o = F.scaled_dot_product_attention(qp, kp.transpose(1, 2), vp.transpose(1, 2), is_causal=True)
            else:
                mask = causal_lower_right(s.chunk, span)
                o = F.scaled_dot_product_attention(qp, kc.transpose(1, 2), vc.transpose(1, 2), attn_mask=mask)
            out[:tp] = o.transpose(1, 2).reshape(tp, a.heads, a.head_dim)
        if s.n_dec:
            off = s.n_pf * (s.prefix + s.chunk)
            kc = self.kv[layer, 0, off:off + s.n_dec * s.ctx].view(s.n_dec, s.ctx, a.heads, a.head_dim)
            vc = self.kv[layer, 1, off:off + s.n_dec * s.ctx].view(s.n_dec, s.ctx, a.heads, a.head_dim)
            kc[:, s.ctx - 1] = k[tp:]
            vc[:, s.ctx - 1] = v[tp:]
            qd = q[tp:].view(s.n_dec, 1, a.heads, a.head_dim).transpose(1, 2)
            o = F.scaled_dot_product_attention(qd, kc.transpose(1, 2), vc.transpose(1, 2))
            out[tp:] = o.reshape(s.n_dec, a.heads, a.head_dim)
        return out

    def forward(self, s: Step, inp: dict[str, torch.Tensor]) -> torch.Tensor:
        a, ops = self.arch, (FUSED if self.fused else EAGER)
        x = self.embed[inp["ids"]]  # (T, hidden)
        t = x.shape[0]
        h = ops["norm"](x, self.layers[0]["ln1"], a.eps)
        for i, w in enumerate(self.layers):
            q, k, v = ops["rope_qk"](F.linear(h, w["wqkv"]), inp["cos"], inp["sin"], a.heads)
            o = self._attention(i, s, q, k, v)
            x, h = ops["add_norm"](x, F.linear(o.view(t, a.hidden), w["wo"]), w["ln2"], a.eps)
            d = F.linear(ops["silu_mul"](F.linear(h, w["wgu"])), w["wd"])
            nxt = self.layers[i + 1]["ln1"] if i + 1 < a.layers else self.norm
            x, h = ops["add_norm"](x, d, nxt, a.eps)
        return F.linear(h[inp["last"]], self.lm_head).argmax(dim=-1)  # greedy sampling, one token per sequence


# Element-wise stages. vLLM runs each as one fused kernel (fused_add_rms_norm, rotary_embedding, silu_and_mul);
# here torch.compile (Triton, dynamic token count) fuses them, and the eager versions are the fallback.
def _norm(x: torch.Tensor, w: torch.Tensor, eps: float) -> torch.Tensor:
    xf = x.float()
    return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)).to(x.dtype) * w


def _add_norm(x: torch.Tensor, d: torch.Tensor, w: torch.Tensor, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    x = x + d
    return x, _norm(x, w, eps)


def _rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return x * cos + torch.cat((-x[..., half:], x[..., :half]), dim=-1) * sin


def _rope_qk(qkv: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
             heads: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    q, k, v = qkv.view(qkv.shape[0], 3, heads, -1).unbind(1)  # (T, H, D) each
    return _rope(q, cos, sin), _rope(k, cos, sin), v


def _silu_mul(gu: torch.Tensor) -> torch.Tensor:
    gate, up = gu.chunk(2, dim=-1)
    return F.silu(gate) * up


EAGER: dict[str, Callable[..., Any]] = {"norm": _norm, "add_norm": _add_norm, "rope_qk": _rope_qk, "silu_mul": _silu_mul}
FUSED = dict(EAGER)


def enable_fusion(device: str = "cuda") -> bool:
    """Compile the element-wise stages; False (eager kept) if this torch cannot."""
    try:
        compiled: dict[str, Callable[..., Any]] = {
            k: torch.compile(f, dynamic=True, fullgraph=True) for k, f in EAGER.items()}
        dt = torch.float16 if device == "cuda" else torch.float32
        x = torch.randn(3, 256, device=device, dtype=dt)
        w = torch.ones(256, device=device, dtype=dt)
        cs = torch.randn(3, 1, 128, device=device, dtype=dt)  # 2 heads of 128
        qkv = torch.randn(3, 3 * 256, device=device, dtype=dt)
        for name, args in (("norm", (x, w, 1e-5)), ("add_norm", (x, x, w, 1e-5)), ("silu_mul", (x,)),
                           ("rope_qk", (qkv, cs, cs, 2))):
            got, want = compiled[name](*args), EAGER[name](*args)
            for g, e in zip(got if isinstance(got, tuple) else (got,), want if isinstance(want, tuple) else (want,),
                            strict=True):
                torch.testing.assert_close(g, e, rtol=2e-2, atol=2e-2)
    except Exception as exc:  # noqa: BLE001 - any compiler failure means: measure unfused
        print(f"torch.compile unavailable, element-wise stages stay unfused: {exc}", flush=True)
        return False
    FUSED.update(compiled)
    return True


def time_cuda(fn, graph: bool, budget_s: float, pool) -> list[float]:  # type: ignore[no-untyped-def]
    """Per-step seconds of ``fn`` (graph replays, or eager calls), timed with CUDA events."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(2):
            fn()
    torch.cuda.current_stream().wait_stream(side)
    run = fn
    if graph:
        g = torch.cuda.CUDAGraph()
        with torch.cuda.graph(g, pool=pool):
            fn()
        run = g.replay
    for _ in range(3):
        run()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    times: list[float] = []
    reps = 5
    while len(times) < reps:
        start.record()
        run()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) / 1000.0)
        if len(times) == 3:
            reps = int(min(30, max(5, budget_s / statistics.median(times))))
    return times


def time_cpu(fn) -> list[float]:  # type: ignore[no-untyped-def]
    fn()
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times


def ceilings(device: torch.device) -> dict[str, float]:
    """Measured copy bandwidth (read + write) and fp16 GEMM rate of this card: the two ceilings."""
    src = torch.randn(512 * 1024 * 1024, device=device, dtype=torch.float16)  # 1 GiB
    dst = torch.empty_like(src)
    a = torch.randn(8192, 8192, device=device, dtype=torch.float16)
    b = torch.randn(8192, 8192, device=device, dtype=torch.float16)
    copy_t = statistics.median(time_cuda(lambda: dst.copy_(src), False, 0.2, None))
    mm_t = statistics.median(time_cuda(lambda: a @ b, False, 0.2, None))
    return {"copy_GBps": 2 * src.numel() * 2 / copy_t / 1e9, "gemm_fp16_TFLOPs": 2 * 8192**3 / mm_t / 1e12}


FIELDS = ["kind", "n_prefill_seqs", "chunk", "prefix", "decode_seqs", "ctx", "prefill_tokens", "context_tokens",
          "prefill_pairs", "mode", "reps", "median_s", "p10_s", "p90_s", "gpu", "torch", "dtype", "measured_at"]


def row(s: Step, mode: str, times: list[float], gpu: str, dtype: str, stamp: str) -> dict[str, object]:
    q = statistics.quantiles(times, n=10, method="inclusive") if len(times) >= 2 else [times[0]] * 9
    return dict(kind=s.kind, n_prefill_seqs=s.n_pf, chunk=s.chunk, prefix=s.prefix, decode_seqs=s.n_dec,
                ctx=s.ctx, prefill_tokens=s.n_pf * s.chunk, context_tokens=s.n_dec * s.ctx,
                prefill_pairs=s.n_pf * s.chunk * (s.prefix + s.chunk), mode=mode, reps=len(times),
                median_s=f"{statistics.median(times):.7f}", p10_s=f"{q[0]:.7f}", p90_s=f"{q[-1]:.7f}",
                gpu=gpu, torch=torch.__version__, dtype=dtype, measured_at=stamp)


def measure_grid(model: Llama, grid: list[Step], fh: TextIO, cuda: bool, budget_s: float, eager_points: int,
                 gpu: str, stamp: str) -> None:
    """Time every grid point (CUDA graph; plus unfused / eager reference rows for a few) and write CSV rows."""
    backends = [SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION] if cuda else [SDPBackend.MATH]
    pool = None  # a private pool per graph: sharing one across deleted graphs trips an allocator assert (torch 2.11)
    eager_left, fused = eager_points, model.fused
    dtype = str(model.dtype).removeprefix("torch.")
    writer = csv.DictWriter(fh, fieldnames=FIELDS)
    writer.writeheader()
    with sdpa_kernel(backends), torch.inference_mode():
        for i, s in enumerate(grid):
            inp = model.inputs(s)
            fn = lambda s=s, inp=inp: model.forward(s, inp)  # noqa: E731
            modes = ["graph"] if cuda else ["cpu"]
            if cuda and s.kind == "decode" and s.ctx == 1024 and eager_left > 0:
                modes += ["graph_unfused", "eager"] if fused else ["eager"]
                eager_left -= 1
            elif fused and s.kind == "prefill" and s.n_pf == 1:
                modes.append("graph_unfused")
            for mode in modes:
                model.fused = fused and mode != "graph_unfused"  # "eager": no graph, compiled stages if fused
                try:
                    times = time_cuda(fn, mode == "graph", budget_s, pool) if cuda else time_cpu(fn)
                except (RuntimeError, torch.cuda.OutOfMemoryError) as exc:  # keep the other points
                    print(f"[{i + 1}/{len(grid)}] {s} {mode} FAILED: {exc}", flush=True)
                    torch.cuda.empty_cache() if cuda else None
                    continue
                writer.writerow(row(s, mode, times, gpu, dtype, stamp))
                print(f"[{i + 1}/{len(grid)}] {s} {mode} {statistics.median(times) * 1e3:.3f} ms", flush=True)
            fh.flush()
    model.fused = fused


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, required=True, help="measurements CSV to write")
    p.add_argument("--tiny", action="store_true", help="tiny model and grid (smoke test; runs on CPU)")
    p.add_argument("--arch", choices=sorted(ARCHS), default="llama2-7b", help="model shape (random weights)")
    p.add_argument("--reserve-gib", type=float, default=6.0, help="GPU memory left free for activations/graphs")
    p.add_argument("--budget-s", type=float, default=0.25, help="timed replay seconds per point (5..30 reps)")
    p.add_argument("--eager-points", type=int, default=6, help="also time this many decode points without graphs")
    p.add_argument("--no-fuse", action="store_true", help="leave the element-wise stages unfused (eager)")
    p.add_argument("--limit", type=int, default=0, help="measure only the first N grid points (0: all)")
    args = p.parse_args(argv)
    cuda = torch.cuda.is_available() and not args.tiny
    if not cuda and not args.tiny:
        print("error: no CUDA GPU visible; this measurement needs one (use --tiny for a CPU smoke test)",
              file=sys.stderr)
        return 2
    device = torch.device("cuda" if cuda else "cpu")
    dtype = torch.float16 if cuda else torch.float32
    arch = ARCHS[args.arch] if cuda else TINY
    stamp = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    gpu = torch.cuda.get_device_name() if cuda else "cpu"
    meta: dict[str, object] = {"gpu": gpu, "torch": torch.__version__, "measured_at": stamp, "dtype": str(dtype),
                               "arch": args.arch if cuda else "tiny"}
    if cuda:
        meta.update(ceilings(device))
        torch.cuda.empty_cache()
        weights = 2 * (2 * arch.vocab * arch.hidden + arch.layers * (4 * arch.hidden**2 + 3 * arch.hidden * arch.inter))
        free = torch.cuda.mem_get_info()[0] - weights - args.reserve_gib * 1024**3
        kv_tokens = int(free // (2 * arch.layers * arch.hidden * 2))
        grid = build_grid(kv_tokens)
    else:
        kv_tokens, grid = 512, tiny_grid()
    if args.limit:
        grid = grid[:args.limit]
    model = Llama(arch, kv_tokens, device, dtype)
    model.fused = cuda and not args.no_fuse and enable_fusion()
    meta.update(kv_tokens=kv_tokens, points=len(grid), fused_elementwise=model.fused)
    print(json.dumps(meta), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("w", newline="") as fh:
        measure_grid(model, grid, fh, cuda, args.budget_s, args.eager_points, gpu, stamp)
    args.out.with_suffix(".meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
