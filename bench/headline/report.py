"""Markdown tables of the headline results: ``python -m bench.headline.report [results dir]``.

Reads ``summary.json`` and the per-trace eval JSONs written by ``run_headline`` and prints, per trace, the
target verdicts of each PreServe variant and the runs that decide them.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

__all__ = ["render"]

ROOT = Path(__file__).resolve().parents[2]


def _f(x: Any, fmt: str = ".3f") -> str:
    return "-" if x is None else format(x, fmt)


def _verdict(ok: bool) -> str:
    return "**met**" if ok else "missed"


def _trace_table(name: str, entry: dict[str, Any], doc: dict[str, Any]) -> list[str]:
    lines = [f"### {name} (rate scale {entry['rate_scale']:g})", "",
             "| policy | SLO att. | inst-h | P99 TTFT s | P99 e2e s | P99 s/tok | cost ratio (target) "
             "| tail ratio (target) | overhead |", "|---|---|---|---|---|---|---|---|---|"]
    for label, t in entry["targets"].items():
        c, tl, o = t["cost"], t["tail"], t["overhead"]
        lines.append(
            f"| `{label}` | {_f(t['slo_attainment'], '.4f')} | {_f(t['instance_hours'])} | {_f(t['p99_ttft_s'])} "
            f"| {_f(t['p99_e2e_s'], '.1f')} | {_f(t['p99_norm_latency_s_per_token'])} "
            f"| {_f(c['ratio'], '.2f')} (<= {c['target_ratio']}) {_verdict(c['met'])} "
            f"| {_f(tl['ratio'], '.2f')} (<= {tl['target_ratio']}) {_verdict(tl['met'])} "
            f"| {_f(o['fraction'], '.2e')} {_verdict(o['met'])} |")
    main = next(iter(entry["targets"].values()))
    lines += ["", f"Cheapest baseline meeting the SLO: `{main['cost']['cheapest_baseline_meeting_slo']}` "
                  f"({_f(main['cost']['baseline_instance_hours'])} instance-hours). Best P99 TTFT among baseline "
                  f"runs within +5% of PreServe's instance-hours: `{main['tail']['best_baseline']}` "
                  f"({_f(main['tail']['baseline_p99_ttft_s'])} s, P99 e2e "
                  f"{_f(main['tail']['baseline_p99_e2e_s'], '.1f')} s).", ""]
    baselines = sorted((r for r in doc["results"] if "preserve" not in r["policy"]),
                       key=lambda r: r["instance_hours"])
    lines += ["<details><summary>all baseline runs</summary>", "",
              "| run | SLO att. | inst-h | P99 TTFT s | P99 e2e s |", "|---|---|---|---|---|"]
    lines += [f"| `{r['label']}` | {_f(r['slo_attainment'], '.4f')} | {_f(r['instance_hours'])} "
              f"| {_f(r['p99_ttft_s'])} | {_f(r['p99_e2e_s'], '.1f')} |" for r in baselines]
    lines += ["", "</details>", ""]
    return lines


def render(results: Path) -> str:
    summary = json.loads((results / "summary.json").read_text())
    lines: list[str] = []
    for name, entry in summary.items():
        doc = json.loads((results / f"{name}.json").read_text())
        lines += _trace_table(name, entry, doc)
        lines += [f"Command: `{entry['command']}`", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    print(render(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "bench" / "headline" / "results"))
