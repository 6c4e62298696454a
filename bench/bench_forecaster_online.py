"""Live cost of the forecast agent's forecaster (issue 16): per-window forecast latency and one online refit.

With the shipped checkpoint (``OnlineForecaster``'s default) and one torch thread:
- ``forecast_ms``: ``observe`` + ``forecast(H)`` per window and service -- what the ``forecast`` agent and the
  scaler pay -- p50/p99 over the last ``--iters`` windows of a replay, at 600 s (the checkpoint's window, H = 6)
  and at the scaler's 60 s (aggregated to 600 s for the network, H = 10);
- ``refit_s``: one fine-tune as the agent runs it off the event loop (``refit_job()()``), wall and CPU seconds
  of this process (CPU time counts every thread: with ``--threads 1`` it is one core's).

The 600 s replay is the ServeGen m-mid aggregate (rates x 600 = per-window totals); the 60 s replay draws
Poisson counts per 60 s window from the same rates (what the density agent would emit).

  python bench/bench_forecaster_online.py --threads 1 --json bench_forecaster_online.json
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from models.workload.online import DEFAULT_CHECKPOINT, OnlineForecaster  # noqa: E402
from models.workload.series_io import load_series  # noqa: E402
from streams.settings import data_path  # noqa: E402


def _replay(f: OnlineForecaster, rows: np.ndarray, starts: np.ndarray, horizon: int, iters: int) -> np.ndarray:
    ms = []
    for i, (s, r) in enumerate(zip(starts, rows, strict=True)):
        t0 = time.perf_counter()
        f.observe(float(s), *r)
        f.forecast(horizon)
        if i >= len(rows) - iters:
            ms.append((time.perf_counter() - t0) * 1e3)
    return np.asarray(ms)


def _pct(ms: np.ndarray) -> dict[str, float]:
    return {"p50": float(np.percentile(ms, 50)), "p99": float(np.percentile(ms, 99)), "n": int(len(ms))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--iters", type=int, default=500, help="timed windows at the end of each replay")
    ap.add_argument("--windows60", type=int, default=6000, help="60 s windows replayed (the last --iters timed)")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if not DEFAULT_CHECKPOINT.exists():
        raise SystemExit(f"{DEFAULT_CHECKPOINT} missing")
    s = load_series(data_path("traces", "servegen", "servegen_m-mid_window600s_aggregate.csv"), 600.0)
    totals = s.values * 600.0
    out: dict[str, Any] = {"machine": platform.processor() or platform.machine(), "threads": args.threads,
                           "torch": torch.__version__, "checkpoint": str(DEFAULT_CHECKPOINT)}
    f600 = OnlineForecaster(600.0, refit_every=0)
    assert f600.fitted is not None
    out["forecast_600s_h6_ms"] = _pct(_replay(f600, totals, s.window_start, 6, args.iters))
    out["model_600s"] = f600.forecast(6).model
    rng = np.random.default_rng(0)
    n60 = args.windows60
    rates = np.repeat(s.values[: n60 // 10 + 1], 10, axis=0)[:n60]
    rows60 = rng.poisson(np.maximum(rates * 60.0, 0)).astype(float)
    f60 = OnlineForecaster(60.0, refit_every=0)
    out["forecast_60s_h10_ms"] = _pct(_replay(f60, rows60, np.arange(n60) * 60.0, 10, args.iters))
    out["model_60s"] = f60.forecast(10).model
    job = f600.refit_job()
    w0, c0 = time.perf_counter(), time.process_time()
    f600.install(job())
    out["refit_s"] = {"wall": time.perf_counter() - w0, "cpu": time.process_time() - c0,
                      "epochs": f600.fitted.info["epochs"] if f600.fitted else None,
                      "windows": min(len(f600), f600.fit_windows)}
    for k in ("forecast_600s_h6_ms", "forecast_60s_h10_ms"):
        print(f"{k}: p50 {out[k]['p50']:.2f} ms  p99 {out[k]['p99']:.2f} ms  (n={out[k]['n']})")
    print(f"refit: {out['refit_s']['wall']:.1f} s wall, {out['refit_s']['cpu']:.1f} s CPU "
          f"({out['refit_s']['epochs']} epochs over the members, {out['refit_s']['windows']} windows)")
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
