"""The results table printed by ``preserve eval`` and the JSON file it writes."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd

from fleet.metrics import request_latencies
from fleet.sim_inputs import SimResult

__all__ = ["format_table", "format_summary", "write_json", "write_requests_csv", "COLUMNS"]

# (header, result key, format)
COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("policy", "label", "{}"),
    ("kind", "kind", "{}"),
    ("done", "completed", "{:,}"),
    ("drop", "dropped", "{:,}"),
    ("p50 TTFT", "p50_ttft_s", "{:.3f}"),
    ("p99 TTFT", "p99_ttft_s", "{:.3f}"),
    ("p99 TPOT", "p99_tpot_s", "{:.3f}"),
    ("p99 ITL", "p99_itl_s", "{:.3f}"),
    ("p99 e2e", "p99_e2e_s", "{:.1f}"),
    ("p99 s/tok", "p99_norm_latency_s_per_token", "{:.3f}"),
    ("SLO", "slo_attainment", "{:.3f}"),
    ("inst-h", "instance_hours", "{:.3f}"),
    ("acts", "scale_actions", "{}"),
    ("preempt", "preemptions", "{:,}"),
    ("overhead", "overhead_fraction", "{:.2e}"),
    ("wall s", "wall_s", "{:.2f}"),
)


def _cell(value: Any, fmt: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return fmt.format(value)


def format_table(results: list[dict[str, Any]], sort_by: str | None = "instance_hours") -> str:
    """A plain-text table, one row per run (by default cheapest first, as on a cost-latency frontier)."""
    rows = sorted(results, key=lambda r: (r.get(sort_by) is None, r.get(sort_by) or 0)) if sort_by else results
    cells = [[h for h, _, _ in COLUMNS]] + [[_cell(r.get(k), f) for _, k, f in COLUMNS] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(COLUMNS))]
    lines = []
    for n, row in enumerate(cells):
        lines.append("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))))
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def format_summary(summary: dict[str, Any]) -> str:
    """The candidates against the cheapest SLO-meeting baseline and the oracle, a line each."""
    def num(x: Any, fmt: str = "{:.3f}") -> str:
        return "-" if x is None else fmt.format(x)
    lines = [f"cheapest baseline meeting the SLO: {summary['cheapest_baseline'] or '-'} "
             f"({num(summary['cheapest_baseline_instance_hours'])} inst-h); oracle: {summary['oracle'] or '-'} "
             f"({num(summary['oracle_instance_hours'])} inst-h)"]
    for label, c in summary["candidates"].items():
        lines.append(f"  {label}: cost ratio {num(c['cost_ratio'])}, gap closed {num(c['gap_closed'])}, "
                     f"tail ratio {num(c['tail_ratio'])}{'' if c['meets_slo'] else ' (misses the SLO)'}")
    return "\n".join(lines)


def _clean(value: Any) -> Any:
    """JSON has no NaN/inf: write them as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def write_json(doc: dict[str, Any], path: str | Path) -> None:
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(_clean(doc), indent=2, default=str) + "\n")


def write_requests_csv(result: SimResult, request_ids: list[str], path: str | Path) -> Path:
    """Per-request outcomes of one run: latencies, preemptions, instance, drop reason (one row per request)."""
    lat = request_latencies(result)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({
        "request_id": request_ids, "arrival_s": result.arrival, "prompt_tokens": result.prompt_tokens,
        "output_tokens": result.output_tokens, "ttft_s": lat["ttft"], "tpot_s": lat["tpot"], "e2e_s": lat["e2e"],
        "norm_latency_s_per_token": lat["norm"], "preemptions": result.preemptions, "instance": result.instance,
        "drop_reason": result.drop_reason,
    }).to_csv(out, index=False, float_format="%.6f")
    return out
