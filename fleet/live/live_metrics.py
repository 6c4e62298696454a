"""The live run's headline numbers, computed from archived completions and instance events (pure).

The definitions match the offline harness (``fleet.metrics.summarize``): latencies are per completed request
(TTFT, end-to-end from arrival, TPOT over the tokens after the first); an instance counts from its start
request to its stop, or to the end of the run (the last completion) if it never stopped.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from fleet.metrics import latency_percentiles, tpot_of

__all__ = ["live_summary", "compare_with_offline", "TOLERANCES"]

# How close the live pipeline must come to the offline simulation of the same trace and policy. The live run
# differs by construction: the router sees instance load through periodic statuses (one per event second) and
# its own dispatches, not the simulator's exact state, and decisions cross Kafka. Relative tolerance, with an
# absolute floor for small values (sub-second latencies).
TOLERANCES: dict[str, tuple[float, float]] = {  # metric: (relative, absolute floor)
    "p99_e2e_s": (0.25, 2.0),
    "instance_hours": (0.20, 0.05),
}


def live_summary(completions: pd.DataFrame, instance_events: pd.DataFrame) -> dict[str, Any]:
    """``completions``: columns ts, arrival_ts, ttft_s, e2e_s, output_tokens, request_id (one row per request;
    duplicates are dropped by request id). ``instance_events``: columns ts, instance_id, kind."""
    c = completions.drop_duplicates("request_id")
    ttft = c["ttft_s"].to_numpy(float)
    e2e = c["e2e_s"].to_numpy(float)
    tpot = tpot_of(ttft, e2e, c["output_tokens"].to_numpy(float))
    end = float(c["ts"].max()) if len(c) else 0.0
    ev = instance_events
    seconds = 0.0
    for _, g in ev.groupby("instance_id"):
        starts = g.loc[g["kind"] == "start_requested", "ts"]
        if starts.empty:
            continue
        stops = g.loc[g["kind"] == "stopped", "ts"]
        stop = float(stops.min()) if not stops.empty else max(end, float(g["ts"].max()))
        seconds += stop - float(starts.min())
    return {"completed": int(len(c)), **latency_percentiles(ttft, tpot, e2e), "instance_hours": seconds / 3600.0}


def compare_with_offline(live: dict[str, Any], offline: dict[str, Any],
                         tolerances: dict[str, tuple[float, float]] = TOLERANCES) -> dict[str, dict[str, Any]]:
    """Per metric: live, offline, allowed difference and whether the two agree."""
    out: dict[str, dict[str, Any]] = {}
    for metric, (rel, floor) in tolerances.items():
        a, b = live.get(metric), offline.get(metric)
        if a is None or b is None:
            out[metric] = {"live": a, "offline": b, "allowed": None, "ok": False}
            continue
        allowed = max(rel * abs(b), floor)
        out[metric] = {"live": a, "offline": b, "allowed": allowed, "ok": abs(a - b) <= allowed}
    return out
