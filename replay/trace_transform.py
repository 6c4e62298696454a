"""Pure transforms of a normalised trace: time window, rate scaling, summary statistics."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = ["select_window", "scale_rate", "TraceStats", "trace_stats"]


def select_window(df: pd.DataFrame, start_s: float | None, duration_s: float | None) -> tuple[pd.DataFrame, int]:
    """Keep requests with ``start_s <= arrival_s < start_s + duration_s`` (seconds from the first request).

    The kept requests are re-based so the first one arrives at 0 (the normalised-trace contract). Returns the
    window and how many requests fell outside it.
    """
    if start_s is None and duration_s is None:
        return df, 0
    if (start_s is not None and start_s < 0) or (duration_s is not None and duration_s <= 0):
        raise ValueError(f"start must be >= 0 and duration > 0, got start={start_s}, duration={duration_s}")
    lo = start_s or 0.0
    hi = np.inf if duration_s is None else lo + duration_s
    keep = (df["arrival_s"] >= lo) & (df["arrival_s"] < hi)
    out = df[keep].reset_index(drop=True)
    if len(out):
        out["arrival_s"] = out["arrival_s"] - out["arrival_s"].iloc[0]
    return out, int((~keep).sum())


def scale_rate(df: pd.DataFrame, rate_scale: float) -> pd.DataFrame:
    """Multiply the arrival rate by ``rate_scale``: every timestamp is divided by it and every request kept."""
    if not rate_scale > 0 or not np.isfinite(rate_scale):
        raise ValueError(f"rate_scale must be a positive number, got {rate_scale}")
    if rate_scale == 1.0:
        return df
    out = df.copy()
    out["arrival_s"] = out["arrival_s"] / rate_scale
    return out


@dataclass(frozen=True)
class TraceStats:
    rows: int
    span_s: float
    mean_rate: float  # requests per second over the span
    peak_rate: float  # requests per second in the busiest window of ``window_s``
    peak_to_mean: float  # peak window rate / mean window rate (over windows that overlap the span)
    window_s: float
    services: dict[str, int]
    prompt_tokens: tuple[float, float, float]  # mean, p50, p99
    output_tokens: tuple[float, float, float]

    def lines(self) -> list[str]:
        def tok(t: tuple[float, float, float]) -> str:
            return f"mean {t[0]:.1f}  p50 {t[1]:.0f}  p99 {t[2]:.0f}"

        return [
            f"rows            {self.rows:,}",
            f"span            {self.span_s:,.1f} s ({self.span_s / 3600:.2f} h)",
            f"mean rate       {self.mean_rate:.3f} req/s",
            f"peak rate       {self.peak_rate:.3f} req/s over {self.window_s:g} s windows "
            f"(peak/mean {self.peak_to_mean:.2f})",
            f"prompt tokens   {tok(self.prompt_tokens)}",
            f"output tokens   {tok(self.output_tokens)}",
            "services        " + ", ".join(f"{k} ({v:,})" for k, v in self.services.items()),
        ]


def _summary(values: pd.Series) -> tuple[float, float, float]:
    if values.empty:
        return (float("nan"),) * 3
    arr = values.to_numpy(dtype=np.float64)
    return float(arr.mean()), float(np.percentile(arr, 50)), float(np.percentile(arr, 99))


def trace_stats(df: pd.DataFrame, window_s: float = 50.0) -> TraceStats:
    """Rows, span, mean rate, token statistics and the peak/mean request rate over ``window_s`` windows."""
    arrival = df["arrival_s"].to_numpy(dtype=np.float64)
    span = float(arrival.max() - arrival.min()) if len(arrival) else 0.0
    counts = np.bincount(((arrival - arrival.min()) // window_s).astype(np.int64)) if len(arrival) else np.zeros(1)
    peak = float(counts.max() / window_s)
    mean_window = float(counts.mean() / window_s)
    return TraceStats(
        rows=len(df),
        span_s=span,
        mean_rate=len(df) / span if span > 0 else float("nan"),
        peak_rate=peak,
        peak_to_mean=peak / mean_window if mean_window > 0 else float("nan"),
        window_s=window_s,
        services={str(k): int(v) for k, v in df["service"].value_counts().items()},
        prompt_tokens=_summary(df["prompt_tokens"]),
        output_tokens=_summary(df["output_tokens"]),
    )
