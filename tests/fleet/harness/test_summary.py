"""The results JSON's summary: kinds of rows, cost ratio, share of the gap to the oracle closed, tail ratio."""

from __future__ import annotations

import pytest

from fleet.harness.summary import row_kind, summarize_runs


def row(policy: str, label: str, ih: float, slo: float, p99: float) -> dict[str, object]:
    return {"policy": policy, "label": label, "instance_hours": ih, "slo_attainment": slo, "p99_ttft_s": p99}


ROWS = [
    row("least-kv:fixed", "least-kv:fixed(n=4)", 4.0, 0.999, 0.50),
    row("least-kv:fixed", "least-kv:fixed(n=3)", 3.0, 0.95, 9.00),  # cheaper, misses the SLO
    row("least-requests:hpa", "least-requests:hpa(target=0.5)", 3.5, 0.992, 0.80),
    row("least-requests:oracle-schedule", "least-requests:oracle-schedule(scale=1.2)", 2.5, 0.995, 0.40),
    row("least-requests:oracle-schedule", "least-requests:oracle-schedule(scale=0.8)", 2.0, 0.90, 5.00),
    row("preserve:preserve", "preserve:preserve", 2.9, 0.999, 0.30),
    row("preserve:preserve", "preserve(predictor=oracle):preserve(forecast=oracle)", 2.8, 0.999, 0.28),
]


def test_row_kinds() -> None:
    assert [row_kind(r) for r in ROWS] == ["baseline", "baseline", "baseline", "oracle", "oracle", "candidate",
                                           "candidate"]


def test_summary_measures_candidates_against_the_cheapest_baseline_and_the_oracle() -> None:
    s = summarize_runs(ROWS)
    assert s["cheapest_baseline"] == "least-requests:hpa(target=0.5)" and s["oracle_instance_hours"] == 2.5
    c = s["candidates"]["preserve:preserve"]
    assert c["cost_ratio"] == pytest.approx(2.9 / 3.5)
    assert c["gap_closed"] == pytest.approx((3.5 - 2.9) / (3.5 - 2.5))
    # baselines within 2.9 x 1.05 = 3.045 instance-hours: only fixed(n=3) (P99 9.0 s)
    assert c["tail_baseline"] == "least-kv:fixed(n=3)" and c["tail_ratio"] == pytest.approx(0.30 / 9.0)
