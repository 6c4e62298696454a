"""The soak's long-run numbers (issue 21, finding 10): the event loop's own lag, parsed from the workers' probe
lines, and each process's RSS slope over the last half of the steady phase (a warm-up must not hide a leak, nor
a leak hide behind a flat start)."""

from __future__ import annotations

import pytest

from bench.soak.soak_report import Sample, format_table, loop_lag, summarize
from streams.runtime_watch import LagWindow, parse_lag_line


def _samples(rss: list[float]) -> list[Sample]:
    return [Sample(t=60.0 * i, sent=100 * i, counts={"requests": 100 * i}, lag={"g": 0}, rss_mb={"worker": r},
                   cpu_s={"worker": float(i)}) for i, r in enumerate(rss)]


def test_last_half_slope_sees_a_leak_that_starts_late() -> None:
    # flat for 5 minutes, then +3 MB/min for 5 minutes: the whole-run slope is diluted, the last half is not
    rss = [500.0] * 6 + [503.0, 506.0, 509.0, 512.0, 515.0]
    proc = summarize(_samples(rss), warmup_s=0.0, rate=100.0, sent=1000)["processes"]["worker"]
    assert proc["rss_slope_last_half_mb_per_min"] == pytest.approx(3.0, abs=0.01)
    assert proc["rss_slope_mb_per_min"] < 2.0


def test_loop_lag_lines_round_trip_and_summarise() -> None:
    w = LagWindow()
    for lag in [0.001] * 98 + [0.2, 21.0]:  # a 21 s stall shows as the max, and in the p99
        w.add(lag)
    line = w.line(60.0)
    assert line is not None and w.lags == []
    n, p50, p99, mx = parse_lag_line(f"[2026-12-07 20:00:00,000] [1] [INFO] {line}") or (0, 0, 0, 0)
    assert n == 100 and p50 == pytest.approx(1.0) and mx == pytest.approx(21000.0) and p99 > 200
    assert parse_lag_line("[INFO] something else") is None
    got = loop_lag([line, "noise", "event loop lag over 60 s: n=240 p50 1.0 ms p99 5.0 ms max 9.0 ms"])
    assert got == {"minutes": 2, "p99_worst_ms": p99, "p99_median_ms": pytest.approx((p99 + 5.0) / 2),
                   "max_ms": mx}


def test_report_table_shows_lag_and_last_half_slope() -> None:
    summary = summarize(_samples([500.0, 501.0, 502.0]), 0.0, 100.0, 300,
                        lag_lines={"worker": ["event loop lag over 60 s: n=240 p50 1.0 ms p99 5.0 ms max 9.0 ms"]})
    text = format_table(summary)
    assert "last half" in text and "loop p99" in text and "9 ms" in text
