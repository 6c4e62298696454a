"""The issue-7 target comparisons, computed from a ``preserve eval`` results JSON (pure: dict in, dict out).

* cost at equal SLO: PreServe meets the SLO (>= 99% of requests) with at most ``cost_target`` x the
  instance-hours of the cheapest *baseline* run that also meets it;
* tail at equal cost: among baseline runs using at most PreServe's instance-hours + 5%, the lowest P99 TTFT is
  at least PreServe's / 0.6 (PreServe >= 40% lower);
* control-plane overhead <= 0.5% of serving time.

A baseline run is one whose router and scaler are both baselines (no ``preserve`` part): the ablations
(router-only, scaler-only) are PreServe's own variants, not competitors.
"""

from __future__ import annotations

from typing import Any

from fleet.harness.summary import COST_SLACK, SLO_SHARE, meets_slo, row_kind

__all__ = ["is_baseline", "compare", "SLO_SHARE", "COST_SLACK", "TAIL_RATIO", "OVERHEAD_MAX"]

TAIL_RATIO = 0.6
OVERHEAD_MAX = 0.005
_meets = meets_slo


def is_baseline(row: dict[str, Any]) -> bool:
    return row_kind(row) == "baseline"


def compare(results: list[dict[str, Any]], preserve_label: str, cost_target: float) -> dict[str, Any]:
    """Target verdicts for the run labelled ``preserve_label`` against every baseline run of ``results``."""
    by_label = {r["label"]: r for r in results}
    if preserve_label not in by_label:
        raise KeyError(f"no run labelled {preserve_label!r}; have {sorted(by_label)}")
    p = by_label[preserve_label]
    baselines = [r for r in results if is_baseline(r)]
    meeting = sorted((r for r in baselines if _meets(r)), key=lambda r: r["instance_hours"])
    out: dict[str, Any] = {"policy": preserve_label, "instance_hours": p["instance_hours"],
                           "slo_attainment": p["slo_attainment"], "p99_ttft_s": p["p99_ttft_s"],
                           "p99_e2e_s": p["p99_e2e_s"],
                           "p99_norm_latency_s_per_token": p["p99_norm_latency_s_per_token"],
                           "overhead_fraction": p["overhead_fraction"], "baseline_runs": len(baselines)}
    cheapest = meeting[0] if meeting else None
    ratio = p["instance_hours"] / cheapest["instance_hours"] if cheapest else None
    out["cost"] = {"target_ratio": cost_target, "preserve_meets_slo": _meets(p),
                   "cheapest_baseline_meeting_slo": cheapest["label"] if cheapest else None,
                   "baseline_instance_hours": cheapest["instance_hours"] if cheapest else None,
                   "ratio": ratio,
                   "met": bool(_meets(p) and ratio is not None and ratio <= cost_target)}
    budget = p["instance_hours"] * COST_SLACK
    affordable = [r for r in baselines if r["instance_hours"] <= budget]
    best = min(affordable, key=lambda r: r["p99_ttft_s"]) if affordable else None
    tail_ratio = p["p99_ttft_s"] / best["p99_ttft_s"] if best else None
    out["tail"] = {"target_ratio": TAIL_RATIO, "instance_hours_budget": budget,
                   "baseline_runs_within_budget": len(affordable),
                   "best_baseline": best["label"] if best else None,
                   "baseline_p99_ttft_s": best["p99_ttft_s"] if best else None,
                   "baseline_p99_e2e_s": best["p99_e2e_s"] if best else None,
                   "baseline_p99_norm_latency_s_per_token": best["p99_norm_latency_s_per_token"] if best else None,
                   "ratio": tail_ratio,
                   "met": bool(tail_ratio is not None and tail_ratio <= TAIL_RATIO)}
    out["overhead"] = {"max": OVERHEAD_MAX, "fraction": p["overhead_fraction"],
                       "met": bool(p["overhead_fraction"] is not None and p["overhead_fraction"] <= OVERHEAD_MAX)}
    return out
