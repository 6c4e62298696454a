"""Latency, SLO, cost and overhead metrics of one simulation run (the JSON keys of issue 4, item 6).

Definitions (every request of the trace is in the denominator where it matters):

* TTFT = first token - arrival (gateway queueing included); TPOT = (finish - first token) / (output - 1), the
  mean time between output tokens (undefined for one-token outputs, which then meet any TPOT SLO);
  e2e = finish - arrival; normalised latency = e2e / output tokens (s per token).
* Percentiles are over completed requests, except ITL: ``p50_itl_s``/``p99_itl_s`` are over *tokens* — every
  gap between consecutive output tokens of every request (stalls behind prefills and re-prefills after
  preemption included), from the engines' histogram (``fleet/itl.py``, 0.25% resolution); None without tokens.
* ``slo_attainment`` = share of *all* requests that completed with TTFT <= slo_ttft and TPOT <= slo_tpot (a
  dropped request is a miss).
* ``instance_hours``: each instance from its start request (cold start included) to its stop, or to the end
  of the simulation (the last completion, or the last arrival if later).
* ``overhead_fraction`` = control-plane CPU seconds (length prediction + routing + scaling hooks) / the sum of
  the requests' serving time (e2e) — the paper's overhead measure.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

from fleet.sim_inputs import SimResult

__all__ = ["request_latencies", "summarize", "instance_seconds", "latency_percentiles", "tpot_of", "service_metrics"]


def tpot_of(ttft: np.ndarray, e2e: np.ndarray, output_tokens: np.ndarray) -> np.ndarray:
    """Mean time per output token after the first (NaN for one-token outputs) — for simulated and live runs."""
    out = output_tokens.astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(out > 1, (e2e - ttft) / np.maximum(out - 1, 1), np.nan)


def request_latencies(res: SimResult) -> dict[str, np.ndarray]:
    """Per-request TTFT, TPOT, e2e and normalised latency (NaN where dropped / undefined)."""
    ttft = res.first_token - res.arrival
    e2e = res.finish - res.arrival
    with np.errstate(invalid="ignore", divide="ignore"):
        norm = e2e / res.output_tokens.astype(np.float64)
    return {"ttft": ttft, "tpot": tpot_of(ttft, e2e, res.output_tokens), "e2e": e2e, "norm": norm}


def latency_percentiles(ttft: np.ndarray, tpot: np.ndarray, e2e: np.ndarray) -> dict[str, float | None]:
    """P50/P99 of TTFT, TPOT and e2e over completed requests: the one definition both run kinds report."""
    return {"p50_ttft_s": _pct(ttft, 50), "p99_ttft_s": _pct(ttft, 99), "p50_tpot_s": _pct(tpot, 50),
            "p99_tpot_s": _pct(tpot, 99), "p50_e2e_s": _pct(e2e, 50), "p99_e2e_s": _pct(e2e, 99)}


def instance_seconds(res: SimResult) -> float:
    total = 0.0
    for m in res.instances:
        stop = m["stopped_at"] if m["stopped_at"] is not None else m.get("end_at", res.end_time)
        total += float(stop) - float(m["start_requested_at"])  # type: ignore[arg-type]
    return total


def _pct(x: np.ndarray, q: float) -> float | None:
    x = x[~np.isnan(x)]
    return float(np.percentile(x, q)) if x.size else None


def summarize(res: SimResult, slo_ttft_s: float, slo_tpot_s: float, extra_cpu_s: float = 0.0) -> dict[str, Any]:
    """The result row of one policy (without ``policy``/``params``/``label``, which the harness adds)."""
    lat = request_latencies(res)
    done = res.completed
    n = len(res.arrival)
    tpot_ok = np.isnan(lat["tpot"]) | (lat["tpot"] <= slo_tpot_s)
    met = done & (lat["ttft"] <= slo_ttft_s) & tpot_ok
    serving = float(np.nansum(lat["e2e"]))
    cpu = res.control_cpu_s + extra_cpu_s
    drops = Counter(r for r in res.drop_reason if r is not None)
    return {
        "requests": n,
        "completed": int(done.sum()),
        "dropped": int(n - done.sum()),
        "drop_reasons": dict(drops),
        "truncated": res.truncated,
        **latency_percentiles(lat["ttft"], lat["tpot"], lat["e2e"]),
        "p50_itl_s": res.itl.percentile(50),
        "p99_itl_s": res.itl.percentile(99),
        "p99_norm_latency_s_per_token": _pct(lat["norm"], 99),
        "slo_attainment": float(met.sum() / n) if n else None,
        "instance_hours": instance_seconds(res) / 3600.0,
        "scale_actions": len(res.scale_actions),
        "preemptions": int(res.preemptions.sum()),
        "overhead_fraction": cpu / serving if serving > 0 else None,
        "control_cpu_s": cpu,
        "sim_end_s": res.end_time,
        "wall_s": res.wall_s,
    }


SERVICE_KEYS = ("requests", "completed", "slo_attainment", "p50_ttft_s", "p99_ttft_s", "p99_tpot_s", "p99_e2e_s",
                "instance_hours", "scale_actions", "preemptions", "truncated")


def service_metrics(res: SimResult, slo_ttft_s: float, slo_tpot_s: float) -> dict[str, Any]:
    """One service's part of a pooled run: the row's latency, SLO and cost keys, for that service alone."""
    row = summarize(res, slo_ttft_s, slo_tpot_s)
    return {k: row[k] for k in (*SERVICE_KEYS, *(k for k in row if k.endswith("_itl_s")))}
