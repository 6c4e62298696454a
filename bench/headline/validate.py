"""PreServe's scaler on traces the headline does not use: other ServeGen days and services, other Azure loads.

The scaler's settings are fixed by stated principles (docs/headline.md), not per trace; this checks that
they hold, i.e. that PreServe still meets the SLO and what it spends against the fixed fleets, on
* ServeGen ``m-small``: the headline's day with another seed, and the next recorded day;
* ServeGen ``m-mid`` (another service), 24 h played 24x faster;
* the Azure 2023 conv and code traces at other rate scales (x4.5 and x1.0 instead of x5.3 and x1.2).

Usage: ``python -m bench.headline.validate [--out bench/headline/results/validation.json]`` (~3 min on 2 cores).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from streams.settings import data_path

ROOT = Path(__file__).resolve().parents[2]
POLICIES = ["preserve(predictor=fallback):preserve", "least-requests:fixed(n=3)", "least-requests:fixed(n=4)"]
SYNTH = {  # name -> preserve synth arguments (24 h played 24x faster)
    "m-small seed 1": ["--servegen", "m-small", "--rate-scale", "0.017", "--seed", "1"],
    "m-small day 2": ["--servegen", "m-small", "--start-hour", "24", "--rate-scale", "0.017", "--seed", "2"],
    "m-mid": ["--servegen", "m-mid", "--rate-scale", "0.015", "--seed", "0"],
}
RECORDED = {"conv x4.5": ("AzureLLMInferenceTrace_conv.csv", 4.5), "code x1.0": ("AzureLLMInferenceTrace_code.csv", 1.0)}


def _traces(work: Path) -> dict[str, tuple[Path, float]]:
    out: dict[str, tuple[Path, float]] = {}
    for name, args in SYNTH.items():
        path = work / f"validate_{name.replace(' ', '_')}.csv.gz"
        if not path.exists():
            subprocess.run([sys.executable, "-m", "preserve_cli.main", "synth", *args, "--hours", "24",
                            "--time-scale", "24", "--out", str(path)], check=True, cwd=ROOT,
                           stderr=subprocess.DEVNULL)
        out[name] = (path, 1.0)
    for name, (file, rate) in RECORDED.items():
        out[name] = (data_path("traces", "azure2023", file), rate)
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "headline" / "results" / "validation.json")
    ap.add_argument("--work", type=Path, default=ROOT / ".data" / "headline")
    args = ap.parse_args(argv)
    from fleet.harness import EvalConfig, run_eval
    from replay import load_trace

    args.work.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    for name, (path, rate) in _traces(args.work).items():
        df = load_trace(path, rate_scale=rate).df
        report = run_eval(df, POLICIES, EvalConfig(instances=4, max_instances=8), keep_results=False)
        for r in report.doc["results"]:
            rows.append({"trace": name, "policy": r["label"], "instance_hours": r["instance_hours"],
                         "slo_attainment": r["slo_attainment"], "p99_ttft_s": r["p99_ttft_s"]})
            print(f"{name:15s} {r['label']:40s} inst-h {r['instance_hours']:.3f} "
                  f"SLO {100 * r['slo_attainment']:.2f}% P99 TTFT {r['p99_ttft_s']:.3f} s", flush=True)
    args.out.write_text(json.dumps({"policies": POLICIES, "results": rows}, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
