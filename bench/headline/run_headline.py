"""Issue 7's headline comparison: PreServe and its ablations against every baseline on three traces.

For each trace (Azure 2023 conv, Azure 2023 code, a ServeGen-synthesised 24 h diurnal trace played 24x
faster) the script

1. sizes the load the same way for every trace: the largest rate scale (bisection on a log scale) at which
   ``least-requests:fixed(n=max/2)`` still meets the SLO for >= 99% of requests, times ``--headroom`` -- so a
   fixed fleet needs about half of ``--max-instances``;
2. runs ``preserve eval --frontier`` with the PreServe policies and the other baseline routers, same fleet
   bounds, SLOs and cold start for all (the exact command is printed and stored);
3. computes the target comparisons (``bench/headline/targets.py``) and writes ``summary.json`` plus a
   frontier and a timeline plot per trace (drawn by ``fleet/harness/plots.py``, the one home of these plots).

Usage: ``python -m bench.headline.run_headline [--traces conv,code,diurnal] [--out bench/headline/results]``
Same PreServe settings on every trace: nothing here is tuned per trace.
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.headline.targets import SLO_SHARE, compare, is_baseline
from streams.settings import data_path

ROOT = Path(__file__).resolve().parents[2]
PRESERVE = [sys.executable, "-m", "preserve_cli.main"]

PRESERVE_POLICIES = [
    "preserve(predictor=model):preserve",  # the system: trained request-load predictor + online forecaster
    "preserve(predictor=oracle):preserve(forecast=oracle)",  # upper bound: true lengths, true future density
    "preserve(predictor=fallback):preserve",  # fallback length predictor
    "preserve(predictor=model):reactive",  # router only
    "least-requests:preserve",  # scaler only
]
OTHER_BASELINES = [f"{r}:{s}" for r in ("round-robin", "random", "least-kv", "power-of-two", "token-load")
                   for s in ("fixed", "reactive", "queue-depth")]
MAIN = PRESERVE_POLICIES[0]


@dataclass(frozen=True)
class TraceCase:
    name: str
    cost_target: float  # issue 7: <= 0.6x on the diurnal trace, <= 0.8x on the 1-hour Azure traces
    path: Path | None  # recorded trace; None: synthesised per rate scale
    rate_bounds: tuple[float, float]  # bisection bracket of the rate scale

    def synth_args(self, rate: float, out: Path) -> list[str]:
        return ["synth", "--servegen", str(data_path("traces", "servegen", "m-small")), "--hours", "24",
                "--time-scale", "24", "--rate-scale", f"{rate:g}", "--seed", "0", "--out", str(out)]


CASES = {
    "conv": TraceCase("conv", 0.8, data_path("traces", "azure2023", "AzureLLMInferenceTrace_conv.csv"), (1.0, 20.0)),
    "code": TraceCase("code", 0.8, data_path("traces", "azure2023", "AzureLLMInferenceTrace_code.csv"), (0.2, 8.0)),
    "diurnal": TraceCase("diurnal", 0.6, None, (0.002, 0.1)),
}


def _run(args: list[str], log: Path | None = None) -> None:
    print("$ preserve " + " ".join(shlex.quote(a) for a in args), flush=True)
    with open(log, "w") if log else open("/dev/null", "w") as err:
        subprocess.run([*PRESERVE, *args], check=True, cwd=ROOT, stderr=err)


def _trace_file(case: TraceCase, rate: float, work: Path) -> tuple[Path, float]:
    """(trace file, eval --rate-scale): recorded traces are scaled by eval, synthetic ones at synthesis."""
    if case.path is not None:
        return case.path, rate
    out = work / f"servegen_m-small_24h_x24_rate{rate:g}.csv.gz"
    if not out.exists():
        _run(case.synth_args(rate, out), work / "synth.log")
    return out, 1.0


def _fixed_meets(case: TraceCase, rate: float, n: int, common: dict[str, Any], work: Path) -> float:
    from fleet.harness import EvalConfig, run_eval
    from replay import load_trace

    path, scale = _trace_file(case, rate, work)
    df = load_trace(path, rate_scale=scale).df
    cfg = EvalConfig(instances=n, max_instances=common["max_instances"], cold_start_s=common["cold_start"])
    row = run_eval(df, [f"least-requests:fixed(n={n})"], cfg).doc["results"][0]
    return float(row["slo_attainment"])


def size_rate(case: TraceCase, common: dict[str, Any], work: Path, steps: int, headroom: float) -> dict[str, Any]:
    """Largest rate at which fixed(n=max/2) meets the SLO, times ``headroom``; records the search."""
    n = common["max_instances"] // 2
    lo, hi = case.rate_bounds
    probes: list[tuple[float, float]] = []
    for _ in range(steps):
        mid = math.sqrt(lo * hi)
        share = _fixed_meets(case, mid, n, common, work)
        probes.append((mid, share))
        lo, hi = (mid, hi) if share >= 0.99 else (lo, mid)
    rate = float(f"{lo * headroom:.2g}")
    return {"fixed_n": n, "boundary_rate": lo, "rate_scale": rate, "probes": probes}


def run_case(case: TraceCase, common: dict[str, Any], out: Path, work: Path, rate: float) -> dict[str, Any]:
    path, scale = _trace_file(case, rate, work)
    policies = ",".join(PRESERVE_POLICIES + OTHER_BASELINES)
    result_json = out / f"{case.name}.json"
    args = ["eval", "--trace", str(path), "--rate-scale", f"{scale:g}", "--frontier", "--policies", policies,
            "--instances", str(common["max_instances"] // 2), "--max-instances", str(common["max_instances"]),
            "--slo-ttft-s", "1.0", "--slo-tpot-s", "0.1", "--json", str(result_json),
            "--plots", str(work / "plots" / case.name)]  # the harness's own plots (large): not committed
    if common["cold_start"] is not None:
        args += ["--cold-start-s", f"{common['cold_start']:g}"]
    started = time.time()
    _run(args, work / f"eval_{case.name}.log")
    doc = json.loads(result_json.read_text())
    summary = {label: compare(doc["results"], label, case.cost_target) for label in PRESERVE_POLICIES}
    shown = [a.replace(f"{ROOT}/", "") for a in args]  # paths relative to the repository, as documented
    return {"trace": case.name, "trace_file": str(path), "rate_scale": rate,
            "command": "preserve " + " ".join(shlex.quote(a) for a in shown),
            "eval_wall_s": time.time() - started, "targets": summary}


def timeline(case: TraceCase, entry: dict[str, Any], common: dict[str, Any], out: Path, work: Path) -> Path:
    """Re-simulate PreServe and the two baselines that decide its targets, and plot instances over time."""
    from fleet.harness import EvalConfig, run_eval
    from fleet.harness.plots import timeline as timeline_plot
    from replay import load_trace

    t = entry["targets"][MAIN]
    labels = [MAIN] + [x for x in (t["cost"]["cheapest_baseline_meeting_slo"], t["tail"]["best_baseline"])
                       if x and x != MAIN]
    path, scale = _trace_file(case, entry["rate_scale"], work)
    df = load_trace(path, rate_scale=scale).df
    cfg = EvalConfig(instances=common["max_instances"] // 2, max_instances=common["max_instances"],
                     cold_start_s=common["cold_start"])
    report = run_eval(df, list(dict.fromkeys(labels)), cfg)
    return timeline_plot(report.runs, out / f"timeline_{case.name}.png",
                         f"{case.name}: provisioned instances against load")


def frontier(doc: dict[str, Any], name: str, out: Path) -> Path:
    """Every run of the trace: baselines as one curve per scaler family, PreServe's runs as stars."""
    from fleet.harness.plots import frontier as frontier_plot

    def family(row: dict[str, Any]) -> str:
        return f"baselines: {row['policy'].split(':', 1)[1]}" if is_baseline(row) else str(row["label"])

    return frontier_plot(doc["results"], out, f"{name}: every run", family=family,
                         highlight=lambda row: not is_baseline(row), slo_share=SLO_SHARE)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--traces", default="conv,code,diurnal", help="comma-separated subset of conv,code,diurnal")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "headline" / "results")
    ap.add_argument("--work", type=Path, default=ROOT / ".data" / "headline", help="synthesised traces, logs")
    ap.add_argument("--max-instances", type=int, default=8)
    ap.add_argument("--cold-start", type=float, default=None, help="cold start (s); default: the preset's")
    ap.add_argument("--sizing-steps", type=int, default=7, help="bisection steps of the rate sizing")
    ap.add_argument("--headroom", type=float, default=0.9, help="rate = boundary rate x this")
    ap.add_argument("--rate", action="append", default=[], metavar="TRACE=X",
                    help="skip sizing for TRACE and use rate scale X (repeatable)")
    ap.add_argument("--plots-only", action="store_true",
                    help="redraw the frontier and timeline plots from the stored results (no evaluation)")
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    args.work.mkdir(parents=True, exist_ok=True)
    common = {"max_instances": args.max_instances, "cold_start": args.cold_start}
    fixed_rates = dict(item.split("=", 1) for item in args.rate)
    summary_path = args.out / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    for name in args.traces.split(","):
        case = CASES[name]
        if args.plots_only:
            frontier(json.loads((args.out / f"{name}.json").read_text()), name, args.out / f"frontier_{name}.png")
            timeline(case, summary[name], common, args.out, args.work)
            continue
        sizing = ({"rate_scale": float(fixed_rates[name]), "given": True} if name in fixed_rates
                  else size_rate(case, common, args.work, args.sizing_steps, args.headroom))
        print(f"{name}: rate scale {sizing['rate_scale']}", flush=True)
        entry = run_case(case, common, args.out, args.work, sizing["rate_scale"])
        entry["sizing"] = sizing
        summary[name] = entry
        summary_path.write_text(json.dumps(summary, indent=2) + "\n")
        frontier(json.loads((args.out / f"{name}.json").read_text()), name, args.out / f"frontier_{name}.png")
        timeline(case, entry, common, args.out, args.work)
        main_t = entry["targets"][MAIN]
        print(f"{name}: cost ratio {main_t['cost']['ratio']}, tail ratio {main_t['tail']['ratio']}, "
              f"overhead {main_t['overhead']['fraction']}", flush=True)
    print(f"wrote {summary_path}")


if __name__ == "__main__":
    main()
