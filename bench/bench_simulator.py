"""Simulator speed: simulated requests per second of wall time, against the targets of issue 4.

Targets: the 1-hour Azure 2023 conv trace (19,366 requests) in under 10 s per policy on one core, and 1M
synthetic requests in under 60 s. The figure compared with the target is the process CPU time of the
simulation (one core; wall time on a shared machine also counts other processes' load). Run:

    .venv/bin/python -m bench.bench_simulator [--policies least-requests:fixed(n=4),...] [--synthetic 1000000]

The synthetic workload is generated in-process: Poisson arrivals and log-normal prompt/output lengths shaped
like the conv trace (means ~1,150 prompt / ~210 output tokens), at a rate that keeps the fixed fleet busy but
stable, so that the run exercises batching, queueing and completions at realistic density.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from fleet.metrics import summarize
from fleet.sim_inputs import SimConfig, Workload
from fleet.simulator import simulate
from streams.policies.builder import build_policy
from streams.policies.control_settings import ControlSettings
from streams.policies.engine_profiles import get_preset
from streams.policies.policy_registry import parse_policies
from streams.settings import data_path

__all__ = ["synthetic_workload", "main"]

CONV_TARGET_S = 10.0
SYNTH_TARGET_S = 60.0


def synthetic_workload(n: int, rate_per_s: float, seed: int = 0) -> Workload:
    """``n`` requests, Poisson arrivals at ``rate_per_s``, conv-like log-normal lengths (prompt <= 3,500)."""
    rng = np.random.default_rng(seed)
    arrival = np.cumsum(rng.exponential(1.0 / rate_per_s, n))
    prompt = np.clip(rng.lognormal(6.7, 0.8, n), 8, 3500).astype(np.int64)
    output = np.clip(rng.lognormal(5.0, 0.8, n), 1, 4000 - prompt).astype(np.int64)
    return Workload(arrival, prompt, output, [f"s{i}" for i in range(n)], service="synthetic")


def conv_workload(rate_scale: float) -> Workload | None:
    """The Azure 2023 conv trace through ``replay.load_trace`` (None if the shared data is absent)."""
    from replay.trace_loader import load_trace

    path = data_path("traces", "azure2023", "AzureLLMInferenceTrace_conv.csv")
    if not path.exists():
        return None
    return Workload.from_trace(load_trace(path, rate_scale=rate_scale).df)


def _run(label: str, workload: Workload, spec_text: str, instances: int, target_s: float) -> None:
    engine = get_preset("llama2-7b-h100")
    for spec in parse_policies(spec_text):
        router, scaler = build_policy(spec, ControlSettings(min_instances=1, max_instances=max(8, instances)))
        initial = scaler.initial_instances(instances)
        cfg = SimConfig(engine=engine, initial_instances=initial, max_instances=max(8, instances), warmup_s=60.0)
        cpu = time.process_time()
        wall = time.perf_counter()
        res = simulate(workload, cfg, router, scaler)
        wall = time.perf_counter() - wall
        cpu = time.process_time() - cpu
        n = len(workload)
        m = summarize(res, slo_ttft_s=1.0, slo_tpot_s=0.1)
        print(f"{label:<10} {spec.label:<28} {n:>9,} req  wall {wall:7.2f} s  cpu {cpu:7.2f} s  "
              f"{n / cpu:>9,.0f} req/s (cpu)  target {target_s:.0f} s: {'OK' if cpu < target_s else 'MISSED'} "
              f"(cpu/target {cpu / target_s:.2f})  | completed {m['completed']:,}, simulated "
              f"{res.end_time / 3600:.2f} h, p99 TTFT {m['p99_ttft_s']:.2f} s, {m['preemptions']:,} preemptions")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--policies", default="least-requests:fixed(n=4),least-kv:reactive,round-robin:fixed(n=4)")
    ap.add_argument("--rate-scale", type=float, default=6.0, help="conv trace rate scale (paper-like load)")
    ap.add_argument("--synthetic", type=int, default=1_000_000, help="synthetic requests (0: skip)")
    ap.add_argument("--synthetic-rate", type=float, default=20.0, help="synthetic arrivals per second")
    ap.add_argument("--synthetic-policies", default="least-requests:fixed(n=8)")
    args = ap.parse_args(argv)
    conv = conv_workload(args.rate_scale)
    if conv is None:
        print("conv trace not found under PRESERVE_DATA: skipping the trace benchmark")
    else:
        _run("conv", conv, args.policies, 4, CONV_TARGET_S)
    if args.synthetic:
        t = time.perf_counter()
        synth = synthetic_workload(args.synthetic, args.synthetic_rate)
        print(f"generated {args.synthetic:,} synthetic requests in {time.perf_counter() - t:.1f} s")
        _run("synthetic", synth, args.synthetic_policies, 8, SYNTH_TARGET_S)


if __name__ == "__main__":
    main()
