"""Loading the trace of an evaluation and describing it for the results JSON (shared by CLI and scripts)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

__all__ = ["load_eval_trace"]


def load_eval_trace(path: str | Path, fmt: str | None = None, rate_scale: float = 1.0,
                    start_s: float | None = None, duration_s: float | None = None,
                    on_bad_row: str = "skip") -> tuple[pd.DataFrame, dict[str, Any], list[str]]:
    """``(trace, info, warnings)``: the normalised trace via ``replay.load_trace``, what the JSON records about
    it (path, format, scaling, bad rows, rate and token statistics), and one line per skipped row.

    :raises ValueError: (``TraceFormatError`` included) a file that cannot be read, or no request left.
    """
    from replay.trace_loader import load_trace
    from replay.trace_transform import trace_stats

    loaded = load_trace(path, fmt=fmt, rate_scale=rate_scale, start_s=start_s, duration_s=duration_s,
                        on_bad_row=on_bad_row)  # type: ignore[arg-type]
    warnings = [f"{path}:{row.line}: skipped: {row.reason}" for row in loaded.bad_rows]
    if loaded.df.empty:
        raise ValueError(f"{path}: no requests to simulate")
    stats = trace_stats(loaded.df)
    info = {"path": str(path), "format": loaded.fmt, "rate_scale": rate_scale, "start_s": start_s,
            "duration_s": duration_s, "bad_rows": len(loaded.bad_rows), "excluded": len(loaded.excluded),
            "requests": stats.rows, "span_s": stats.span_s, "mean_rate_req_s": stats.mean_rate,
            "peak_rate_req_s": stats.peak_rate, "peak_to_mean": stats.peak_to_mean, "window_s": stats.window_s,
            "services": stats.services, "prompt_tokens_mean_p50_p99": list(stats.prompt_tokens),
            "output_tokens_mean_p50_p99": list(stats.output_tokens)}
    return loaded.df, info, warnings
