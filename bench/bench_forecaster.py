"""Training time and inference latency of the workload forecaster on CPU (mLSTM vs plain LSTM).

Measured in this process, one model after the other, with the same data and settings:
- ``train_s``: ``fit_forecaster`` on the first 70% of the series (early stopping, as ``preserve forecaster eval``
  does; the default configuration, i.e. every ensemble member), with ``epochs`` (summed over members) and
  ``s/epoch``; ``params`` counts all members, ``params_per_member`` one network;
- ``forecast_ms``: one ``OnlineForecaster.forecast(H)`` call on a full history (what the live ``forecast`` agent
  and the scaler pay per window and service): p50 / p99 over repeated calls;
- ``batch_ms``: ``FittedForecaster.predict`` for ``--batch`` origins at once (offline evaluation throughput);
- ``step_vs_parallel``: the mLSTM layer's recurrent (step) form against its parallel form on one history.

The series is the ServeGen m-mid aggregate when the shared data is present, else a synthetic daily cycle.

  python bench/bench_forecaster.py --threads 1
  python bench/bench_forecaster.py --threads 2 --json bench_forecaster.json
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from models.workload.model import ForecasterConfig  # noqa: E402
from models.workload.online import OnlineForecaster  # noqa: E402
from models.workload.series_io import WorkloadSeries, load_series  # noqa: E402
from models.workload.train import TrainConfig, fit_forecaster  # noqa: E402
from streams.settings import data_path  # noqa: E402


def _series() -> WorkloadSeries:
    path = data_path("traces", "servegen", "servegen_m-mid_window600s_aggregate.csv")
    if path.exists():
        return load_series(path, 600.0)
    t = np.arange(2016)
    req = 1000 * (1.5 + np.sin(2 * np.pi * t / 144)) * np.random.default_rng(0).lognormal(0, 0.1, len(t))
    return WorkloadSeries(values=np.stack([req, req * 200, req * 40], 1), window_start=t * 600.0, window_s=600.0,
                          valid=np.ones(len(t), bool), available=("requests", "prompt_tokens", "output_tokens"),
                          unit="per_second", source="synthetic")


def _times(fn: Callable[[], Any], iters: int) -> np.ndarray:
    for _ in range(3):
        fn()
    out = []
    for _ in range(iters):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return np.asarray(out) * 1e3


def _pct(ms: np.ndarray) -> dict[str, float]:
    return {"p50": float(np.percentile(ms, 50)), "p99": float(np.percentile(ms, 99))}


def bench_backbone(s: WorkloadSeries, backbone: str, horizon: int, batch: int, iters: int) -> dict[str, Any]:
    split = int(len(s.values) * 0.7)
    cfg = ForecasterConfig(backbone=backbone, horizon=horizon)
    ff = fit_forecaster(s.values[:split], s.window_start[:split], s.window_s, cfg, TrainConfig(), valid=s.valid[:split])
    online = OnlineForecaster(s.window_s, backbone, horizon=horizon, refit_every=0)
    online.fitted = ff
    for i in range(split):
        online.observe(float(s.window_start[i]), *s.values[i])
    assert not online.forecast(horizon).fallback
    origins = np.arange(split - 1, split - 1 + batch)
    return {"params": ff.info["params"], "params_per_member": ff.info["params_per_member"],
            "members": cfg.members, "train_s": ff.info["train_s"], "epochs": ff.info["epochs"],
            "s_per_epoch": ff.info["train_s"] / ff.info["epochs"], "samples": ff.info["samples"],
            "forecast_ms": _pct(_times(lambda: online.forecast(horizon), iters)),
            "batch_ms": _pct(_times(lambda: ff.predict(s.values, s.window_start, origins), max(5, iters // 20))),
            "batch": batch}


def bench_forms(iters: int) -> dict[str, Any]:
    from models.workload.mlstm import MLSTMLayer

    layer = MLSTMLayer(32, 4).eval()
    x = torch.randn(1, 25, 32)
    with torch.no_grad():
        par = _times(lambda: layer(x), iters)
        rec = _times(lambda: layer(x, recurrent=True), iters)
    return {"parallel_ms": _pct(par), "recurrent_ms": _pct(rec)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    ap.add_argument("--horizon", type=int, default=6)
    ap.add_argument("--batch", type=int, default=256, help="origins per batch prediction")
    ap.add_argument("--iters", type=int, default=200, help="timed forecast calls")
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    s = _series()
    result: dict[str, Any] = {"machine": platform.processor() or platform.machine(), "threads": args.threads,
                              "torch": torch.__version__, "series": s.source, "windows": len(s.values),
                              "horizon": args.horizon, "models": {}}
    for backbone in ("mlstm", "lstm"):
        r = bench_backbone(s, backbone, args.horizon, args.batch, args.iters)
        result["models"][backbone] = r
        print(f"{backbone:<6} params {r['params_per_member']:>6} x {r['members']}  train {r['train_s']:6.1f} s ({r['epochs']} epochs, "
              f"{r['s_per_epoch']:.2f} s/epoch)  forecast p50 {r['forecast_ms']['p50']:.2f} ms "
              f"p99 {r['forecast_ms']['p99']:.2f} ms  batch of {r['batch']} p50 {r['batch_ms']['p50']:.1f} ms")
    result["mlstm_forms"] = bench_forms(args.iters)
    f = result["mlstm_forms"]
    print(f"mLSTM layer, 25 steps: parallel p50 {f['parallel_ms']['p50']:.2f} ms, "
          f"recurrent p50 {f['recurrent_ms']['p50']:.2f} ms")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
