"""What a comparison says about each candidate, from the result rows alone (pure: rows in, dict out).

A row is an ``oracle`` when its scaler is the future-knowing schedule, a ``baseline`` when neither its router nor
its scaler is PreServe's (the ablations — router only, scaler only — are PreServe's own variants, not
competitors), else a ``candidate`` (PreServe's ablations with an oracle forecast included: they are PreServe). For each candidate:

* ``cost_ratio`` = its instance-hours / those of the cheapest baseline run that meets the SLO share;
* ``gap_closed`` = (cheapest baseline - candidate) / (cheapest baseline - cheapest oracle meeting the SLO): the
  share of the way from the best simple operator to the future-knowing bound (None without an oracle row);
* ``tail_ratio`` = its P99 TTFT / the best P99 TTFT among baseline runs within +5% of its instance-hours.
"""

from __future__ import annotations

from typing import Any

__all__ = ["SLO_SHARE", "COST_SLACK", "row_kind", "meets_slo", "summarize_runs"]

SLO_SHARE = 0.99
COST_SLACK = 1.05
ORACLE_SCALERS = ("oracle-schedule",)


def row_kind(row: dict[str, Any]) -> str:
    router, scaler = str(row["policy"]).split(":", 1)
    if scaler in ORACLE_SCALERS:
        return "oracle"
    return "baseline" if router != "preserve" and scaler != "preserve" else "candidate"


def meets_slo(row: dict[str, Any]) -> bool:
    return row.get("slo_attainment") is not None and row["slo_attainment"] >= SLO_SHARE


def _cheapest(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    meeting = [r for r in rows if meets_slo(r)]
    return min(meeting, key=lambda r: r["instance_hours"]) if meeting else None


def summarize_runs(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The ``summary`` of a results JSON: the reference runs and, per candidate, its ratios."""
    baselines = [r for r in rows if row_kind(r) == "baseline"]
    base, oracle = _cheapest(baselines), _cheapest([r for r in rows if row_kind(r) == "oracle"])
    out: dict[str, Any] = {"slo_share": SLO_SHARE,
                           "cheapest_baseline": base["label"] if base else None,
                           "cheapest_baseline_instance_hours": base["instance_hours"] if base else None,
                           "oracle": oracle["label"] if oracle else None,
                           "oracle_instance_hours": oracle["instance_hours"] if oracle else None,
                           "candidates": {}}
    for r in rows:
        if row_kind(r) != "candidate":
            continue
        cost = r["instance_hours"] / base["instance_hours"] if base else None
        gap = None
        if base and oracle and base["instance_hours"] > oracle["instance_hours"]:
            gap = (base["instance_hours"] - r["instance_hours"]) / (base["instance_hours"] - oracle["instance_hours"])
        affordable = [b for b in baselines if b["instance_hours"] <= r["instance_hours"] * COST_SLACK
                      and b.get("p99_ttft_s") is not None]
        best = min(affordable, key=lambda b: b["p99_ttft_s"]) if affordable else None
        tail = r["p99_ttft_s"] / best["p99_ttft_s"] if best and r.get("p99_ttft_s") is not None else None
        out["candidates"][r["label"]] = {"meets_slo": meets_slo(r), "cost_ratio": cost, "gap_closed": gap,
                                         "tail_ratio": tail, "tail_baseline": best["label"] if best else None}
    return out
