"""Summary of a soak run from its periodic samples (pure: no I/O).

Throughput is measured over the steady phase only (after ``warmup_s``, before the replay ends), as the slope
of cumulative counts, so start-up and the final drain don't flatter or penalise it. Memory growth is the RSS change of each process
between the first steady sample and the last, also given per minute: a leak shows as a steady positive slope,
a warm-up as growth that stops. The slope over the last half of the steady phase
(``rss_slope_last_half_mb_per_min``) is what "stays flat" is judged by (issue 21: <= 1 MB/min over the last 30
minutes of a 60-minute run). Event-loop lag comes from the workers' own probe lines (``streams/runtime_watch.py``,
one a minute): per process the worst minute's p99, the median minute's p99 and the max.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["Sample", "summarize", "format_table"]


@dataclass
class Sample:
    t: float  # seconds since the replay started
    sent: int
    counts: dict[str, int]  # messages per topic
    lag: dict[str, int]  # consumer-group lag per group
    rss_mb: dict[str, float]  # per process
    cpu_s: dict[str, float] = field(default_factory=dict)
    draining: bool = False  # taken after the replay ended (left out of the throughput slopes)


def _slope(t: np.ndarray, y: np.ndarray) -> float:
    if len(t) < 2 or t[-1] <= t[0]:
        return 0.0
    return float(np.polyfit(t, y, 1)[0])


def loop_lag(lines: list[str]) -> dict[str, float] | None:
    """Summary of a worker's :data:`~streams.runtime_watch.LAG_LINE` lines (None if it logged none)."""
    from streams.runtime_watch import parse_lag_line

    got = [x for x in (parse_lag_line(line) for line in lines) if x is not None]
    if not got:
        return None
    p99 = [g[2] for g in got]
    return {"minutes": len(got), "p99_worst_ms": max(p99), "p99_median_ms": float(np.median(p99)),
            "max_ms": max(g[3] for g in got)}


def summarize(samples: list[Sample], warmup_s: float, rate: float, sent: int,
              routed_ids: int | None = None, lag_lines: dict[str, list[str]] | None = None) -> dict[str, Any]:
    steady = [s for s in samples if s.t >= warmup_s and not s.draining] or samples
    t = np.array([s.t for s in steady])
    out: dict[str, Any] = {"target_rate_per_s": rate, "requests_sent": sent, "steady_samples": len(steady),
                           "steady_window_s": float(t[-1] - t[0]) if len(t) else 0.0}
    for topic in ("requests", "predicted-requests", "routes", "completions"):
        y = np.array([s.counts.get(topic, 0) for s in steady], dtype=float)
        out[f"{topic}_per_s"] = _slope(t, y)
    out["lag"] = {g: {"max": max(s.lag.get(g, 0) for s in steady), "p50": float(np.median([s.lag.get(g, 0)
                  for s in steady])), "after_drain": samples[-1].lag.get(g, 0)} for g in samples[-1].lag}
    procs: dict[str, Any] = {}
    minutes = max((t[-1] - t[0]) / 60.0, 1e-9) if len(t) else 1e-9
    for name in samples[-1].rss_mb:
        rss = [s.rss_mb.get(name, 0.0) for s in steady]
        cpu = [s.cpu_s.get(name, 0.0) for s in steady]
        half = t >= (t[0] + t[-1]) / 2 if len(t) else np.array([], dtype=bool)
        procs[name] = {"rss_start_mb": rss[0], "rss_end_mb": rss[-1], "rss_max_mb": max(rss),
                       "rss_growth_mb": rss[-1] - rss[0], "rss_growth_mb_per_min": (rss[-1] - rss[0]) / minutes,
                       "rss_slope_mb_per_min": _slope(t, np.array(rss)) * 60.0,
                       "rss_slope_last_half_mb_per_min": _slope(t[half], np.array(rss)[half]) * 60.0,
                       "cpu_share": (cpu[-1] - cpu[0]) / max(t[-1] - t[0], 1e-9) if len(t) > 1 else 0.0}
        lag = loop_lag((lag_lines or {}).get(name, []))
        if lag is not None:
            procs[name]["loop_lag"] = lag
    out["processes"] = procs
    final = samples[-1].counts
    out["final_counts"] = final
    if routed_ids is not None:
        out["routed_request_ids"] = routed_ids
        out["lost"] = sent - routed_ids
    out["dead_letters"] = final.get("dead-letter", 0)
    return out


def format_table(summary: dict[str, Any]) -> str:
    lines = [f"sent {summary['requests_sent']} requests at {summary['target_rate_per_s']:.0f}/s; steady window "
             f"{summary['steady_window_s']:.0f} s",
             "throughput (steady): " + ", ".join(f"{k[:-6]} {summary[k]:.1f}/s" for k in summary
                                                 if k.endswith("_per_s") and k != "target_rate_per_s")]
    for g, v in summary["lag"].items():
        lines.append(f"lag {g:<50} max {v['max']:>7}  p50 {v['p50']:>7.0f}  after drain {v['after_drain']:>6}")
    lines.append(f"{'process':<22}{'RSS start':>10}{'end':>9}{'max':>9}{'growth':>9}{'MB/min':>9}"
                 f"{'last half':>10}{'CPU':>7}{'loop p99 worst/median':>23}{'loop max':>10}")
    for name, p in summary["processes"].items():
        lag = p.get("loop_lag")
        lag_cols = (f"{lag['p99_worst_ms']:>12.0f}/{lag['p99_median_ms']:<6.0f} ms{lag['max_ms']:>7.0f} ms"
                    if lag else f"{'-':>23}{'-':>10}")
        lines.append(f"{name:<22}{p['rss_start_mb']:>10.0f}{p['rss_end_mb']:>9.0f}{p['rss_max_mb']:>9.0f}"
                     f"{p['rss_growth_mb']:>9.1f}{p['rss_slope_mb_per_min']:>9.2f}"
                     f"{p['rss_slope_last_half_mb_per_min']:>10.2f}{p['cpu_share']:>7.0%}{lag_cols}")
    if "lost" in summary:
        lines.append(f"routed request ids {summary['routed_request_ids']} of {summary['requests_sent']} "
                     f"(lost {summary['lost']}); dead letters {summary['dead_letters']}")
    return "\n".join(lines)
