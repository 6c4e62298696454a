"""Throughput and batch latency of the request-load predictor, against a plain eager forward of its encoder.

Three measurements per (sequence length, batch size), all in this process on the same device:
- ``plain``: the bare encoder (``AutoModel``), eager, bf16 on GPU / fp32 on CPU, on ready (B, T) id tensors —
  the reference the pipeline must not lose against;
- ``engine``: ``LengthEngine.run_rows`` on pre-tokenized rows of exactly T positions (soft prompt included):
  length bucketing, collation, host->device copy, the length model, device->host copy;
- ``predict``: ``ModelPredictor.predict`` on unique prompt texts (cache can't hit): tokenization + engine.
- ``stream``: ``predict`` on ``--stream`` x B unique prompts in one call with batches of B: the host tokenizes
  batch k+1 while the device runs batch k (sustained throughput of a loaded predict stage); its batch time is
  the call time / ``--stream``.
- ``real``: ``predict`` on the data file's prompts as they are (dynamic padding: most are far shorter than T).
- ``real-par``: ``real`` through a second engine in the same process whose tokenization runs on a pool of
  ``--par-threads`` threads in chunks of ``--par-rows`` rows, parallel to the forward (``EngineConfig``
  ``tokenizer_threads`` / ``tokenize_rows``): the figure to compare with ``real`` of the same run.
Predictions/s = rows / mean batch time; p99 = 99th percentile of per-batch wall time.

  python bench/bench_load_predictor.py --device cpu --threads 2 --batches 1 8 32 --seq 128 512
  python bench/bench_load_predictor.py --device cuda --json out.json
  # a machine without the encoder package (the GPU device): a compact copy from models/request_load/export_encoder.py
  python bench/bench_load_predictor.py --device cuda --encoder .h17/encoder --data prompts.jsonl.gz --modes real real-par
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from models.request_load.engine import EngineConfig, LengthEngine  # noqa: E402
from models.request_load.inference import ModelPredictor, load_model_predictor  # noqa: E402
from models.request_load.predictor_registry import default_checkpoint_dir  # noqa: E402

MODES = ("plain", "engine", "predict", "stream", "real", "real-par")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timeit(fn: Callable[[], Any], device: torch.device, min_iters: int, seconds: float) -> np.ndarray:
    """Per-call wall times (s) after 2 warm-up calls; at least ``min_iters`` calls, then until ``seconds``."""
    for _ in range(2):
        fn()
    _sync(device)
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < min_iters or (time.perf_counter() - start < seconds and len(times) < 2000):
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return np.array(times)


def texts(n: int, seq: int, pool: list[str]) -> list[str]:
    """``n`` distinct prompt texts, each long enough to fill ``seq`` tokens."""
    out = []
    for i in range(n):
        parts, k = [f"request {i}:"], i
        while sum(len(p) for p in parts) < seq * 8:
            parts.append(pool[k % len(pool)])
            k += 7
        out.append(" ".join(parts))
    return out


def load_pool(path: str | None) -> list[str]:
    if path and Path(path).exists():
        from models.request_load.data import read_pairs

        return [e.prompt for e in read_pairs(path)[0][:4000]]
    words = "the a model request token length predict server fleet queue batch route scale".split()
    rng = np.random.default_rng(0)
    return [" ".join(rng.choice(words, 200)) for _ in range(200)]


def row(name: str, seq: int, batch: int, t: np.ndarray, plain: float | None) -> dict[str, Any]:
    rate = batch / float(t.mean())
    return {"mode": name, "seq": seq, "batch": batch, "preds_per_s": round(rate, 1),
            "p50_ms": round(float(np.percentile(t, 50)) * 1e3, 3), "p99_ms": round(float(np.percentile(t, 99)) * 1e3, 3),
            "iters": int(t.size), "ratio_to_plain": round(rate / plain, 3) if plain else None}


def bench(args: argparse.Namespace) -> list[dict[str, Any]]:
    device = torch.device(args.device)
    dtype = "bf16" if device.type == "cuda" else "fp32"
    backend = {} if args.backend == "auto" else {"backend": args.backend}
    predictor = load_model_predictor(Path(args.model), device=args.device, cache_size=0, dtype=dtype,
                                     max_batch_size=max(args.batches), int8=args.int8, threads=args.threads,
                                     **backend)
    assert isinstance(predictor, ModelPredictor)
    if predictor.engine is None:
        raise SystemExit(f"model unavailable: {predictor.unavailable}")
    base = predictor.engine
    args.resolved_backend = base.cfg.backend
    print(f"engine backend: {base.cfg.backend}, int8: {base.cfg.int8}, CUDA graphs: {args.cuda_graphs}", flush=True)
    plain_model = base.model.backbone  # the same encoder weights, called bare
    pool = load_pool(args.data)
    results: list[dict[str, Any]] = []
    for seq in args.seq:
        engine = LengthEngine(base.model, base.rows, EngineConfig(
            device=args.device, dtype=dtype, max_batch_size=max(args.batches), max_length=seq,
            compile=args.compile, cuda_graphs=args.cuda_graphs, threads=args.threads,
            tokenizer_threads=args.tokenizer_threads,
            backend=base.cfg.backend, int8=args.int8 and base.cfg.backend == "onnx"))
        par_engine = LengthEngine(base.model, base.rows, replace(
            engine.cfg, tokenizer_threads=args.par_threads, tokenize_rows=args.par_rows))
        predictor.engine = engine
        for batch in args.batches:
            ids = torch.randint(1000, 30000, (batch, seq), device=device)
            mask = torch.ones_like(ids)
            def plain_call(ids: torch.Tensor = ids, mask: torch.Tensor = mask) -> None:
                with torch.inference_mode():
                    plain_model(input_ids=ids, attention_mask=mask)

            start = len(results)
            plain = None
            if "plain" in args.modes:
                t_plain = timeit(plain_call, device, args.iters, args.seconds)
                plain = batch / float(t_plain.mean())
                results.append(row("plain", seq, batch, t_plain, plain))
            prompts = texts(batch * 4, seq, pool)
            services = ["llama-2-7b-chat-hf"] * batch
            rows = engine.encode(prompts[:batch], services)
            assert all(len(r[0]) == seq - engine.model.config.n_soft for r in rows), "rows do not fill seq"
            def engine_call(rows: list[Any] = rows, s: list[str] = services, e: LengthEngine = engine) -> None:
                e.run_rows(rows, s)

            if "engine" in args.modes:
                results.append(row("engine", seq, batch, timeit(engine_call, device, args.iters, args.seconds), plain))
            cursor = iter(range(10**9))

            def call(batch: int = batch, prompts: list[str] = prompts, s: list[str] = services,
                     cursor: Any = cursor, seq: int = seq) -> None:
                k = next(cursor) % 4
                predictor.predict(prompts[k * batch:(k + 1) * batch], [seq] * batch, s)

            if "predict" in args.modes:
                results.append(row("predict", seq, batch, timeit(call, device, args.iters, args.seconds), plain))
            many = texts(batch * args.stream * 2, seq, pool)
            n = batch * args.stream

            def stream(n: int = n, many: list[str] = many, cursor: Any = cursor, seq: int = seq) -> None:
                k = next(cursor) % 2
                predictor.predict(many[k * n:(k + 1) * n], [seq] * n, ["llama-2-7b-chat-hf"] * n)

            if "stream" in args.modes:
                t_stream = timeit(stream, device, max(2, args.iters // 2), args.seconds)
                results.append(row("stream", seq, batch, t_stream / args.stream, plain))
            # >= 1024 distinct prompts, cycled a batch at a time: small batches must not replay a few prompts
            n_real = max(batch * 4, 1024) // batch * batch
            real = (pool * (n_real // len(pool) + 1))[:n_real]
            real = [f"{i} {p}" for i, p in enumerate(real)]  # unique, so the cache can't hit

            def real_call(batch: int = batch, real: list[str] = real, s: list[str] = services,
                          cursor: Any = cursor) -> None:
                k = next(cursor) % (len(real) // batch)
                part = real[k * batch:(k + 1) * batch]
                predictor.predict(part, [len(p) // 4 for p in part], s)

            if "real" in args.modes:
                results.append(row("real", seq, batch, timeit(real_call, device, args.iters, args.seconds), plain))
            if "real-par" in args.modes:
                predictor.engine = par_engine
                results.append(row("real-par", seq, batch, timeit(real_call, device, args.iters, args.seconds),
                                   plain))
                predictor.engine = engine
            for r in results[start:]:
                print(json.dumps(r), flush=True)
    return results


def cpu_gflops(seconds: float = 1.0) -> float:
    """fp32 GEMM rate (1024^3, this process's threads) right now: on a shared CPU the other rows only compare
    with rows measured at a similar rate."""
    a = torch.randn(1024, 1024)
    t = timeit(lambda: a @ a, torch.device("cpu"), 3, seconds)
    return round(2 * 1024**3 / float(np.median(t)) / 1e9, 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--model", default=str(default_checkpoint_dir()), help="checkpoint folder")
    ap.add_argument("--encoder", default=None,
                    help="encoder folder for the checkpoint's 'default' encoder (sets PRESERVE_ENCODER_PATH; e.g. the "
                         "fp16 copy written by models/request_load/export_encoder.py)")
    ap.add_argument("--data", default=None, help="JSON-lines prompts for realistic texts (default: synthetic)")
    ap.add_argument("--seq", type=int, nargs="+", default=[128, 512])
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 2, 4, 8, 16, 32, 64, 128, 256, 512])
    ap.add_argument("--iters", type=int, default=5, help="minimum timed calls per point")
    ap.add_argument("--seconds", type=float, default=1.0, help="time budget per point (after min iters)")
    ap.add_argument("--threads", type=int, default=None, help="CPU intra-op threads")
    ap.add_argument("--int8", action="store_true", help="CPU: dynamic int8 quantisation")
    ap.add_argument("--backend", choices=["auto", "torch", "onnx"], default="auto",
                    help="CPU engine: auto = the predictor's default (ONNX Runtime if installed)")
    ap.add_argument("--compile", action="store_true", help="torch.compile the length model")
    ap.add_argument("--no-cuda-graphs", dest="cuda_graphs", action="store_false",
                    help="GPU: run the forward eagerly instead of replaying captured CUDA graphs")
    ap.add_argument("--tokenizer-threads", type=int, default=1, help="batches tokenized concurrently")
    ap.add_argument("--par-threads", type=int, default=4, help="real-par: tokenizer pool threads")
    ap.add_argument("--par-rows", type=int, default=64, help="real-par: rows per tokenization chunk / forward")
    ap.add_argument("--stream", type=int, default=8, help="batches per predict call in the stream mode")
    ap.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES, help="measurements to run")
    ap.add_argument("--json", default=None, help="write all rows here")
    args = ap.parse_args()
    if args.encoder:
        os.environ["PRESERVE_ENCODER_PATH"] = str(Path(args.encoder).resolve())
    if args.threads:
        torch.set_num_threads(args.threads)
    probe = [cpu_gflops()] if args.device == "cpu" else []
    results = bench(args)
    if probe:
        probe.append(cpu_gflops())
        print(f"CPU fp32 GEMM before/after: {probe[0]} / {probe[1]} GFLOP/s; load {os.getloadavg()[0]:.2f}; "
              f"cores allowed {len(os.sched_getaffinity(0))}, torch threads {torch.get_num_threads()}")
    print(f"\n{'mode':8} {'seq':>4} {'batch':>5} {'preds/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'x plain':>8}")
    for r in results:
        print(f"{r['mode']:8} {r['seq']:>4} {r['batch']:>5} {r['preds_per_s']:>10.0f} {r['p50_ms']:>8.2f} "
              f"{r['p99_ms']:>8.2f} {r['ratio_to_plain'] or 0:>8.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps({"device": args.device, "gpu": torch.cuda.get_device_name()
                                               if torch.cuda.is_available() and "cuda" in args.device else None,
                                               "torch": torch.__version__, "int8": args.int8,
                                               "backend": args.resolved_backend,
                                               "threads": args.threads, "cpu_gemm_gflops": probe,
                                               "cpu_affinity": sorted(os.sched_getaffinity(0)),
                                               "torch_threads": torch.get_num_threads(),
                                               "cuda_graphs": args.cuda_graphs,
                                               "rows": results}, indent=1))


if __name__ == "__main__":
    main()
