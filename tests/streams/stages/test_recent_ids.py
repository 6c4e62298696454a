"""Long runs stay flat (issue 21, finding 10): the route stage's duplicate check forgets ids by event time, and
the scale stage forgets the close times of old density windows. Before, both grew for hours (the route stage's
ids up to 200,000 per service: ~4.4 h at a soak's 12.5 requests/s per service)."""

from __future__ import annotations

import pytest

from streams.pipeline_config import PipelineConfig
from streams.stages.control import ScaleAgentState
from streams.stages.recent_ids import DEDUP_SPAN_S, RecentIds
from tests.streams.stages.test_service_router import decisions, ready, req, state


def test_ids_older_than_the_span_are_forgotten_and_recent_ones_kept() -> None:
    ids = RecentIds(span_s=100.0, cap=1000)
    for i in range(500):
        ids.add(f"r{i}", float(i))
    assert len(ids) == 101  # ts 399..499
    assert "r499" in ids and "r399" in ids and "r398" not in ids
    capped = RecentIds(span_s=1e9, cap=10)
    for i in range(50):
        capped.add(f"r{i}", 0.0)
    assert len(capped) == 10 and "r49" in capped and "r39" not in capped
    with pytest.raises(ValueError):
        RecentIds(span_s=0.0)


def test_the_route_stage_remembers_a_bounded_span_of_ids_and_still_drops_duplicates() -> None:
    st = state()
    st.handle([ready(0.0)], now=0.0)
    n = 3000  # one request a second for 50 minutes of event time
    for i in range(n):
        st.handle([req(1.0 + i, f"r{i}")], now=0.0)
    router = st.services.get("svc")
    assert len(router._seen) <= DEDUP_SPAN_S + 2  # was: all 3,000 (up to 200,000 per service)
    assert decisions(st.handle([req(float(n), f"r{n - 1}")], now=0.0)) == []  # a recent redelivery: dropped
    assert router.duplicates == 1


def test_the_scale_stage_forgets_close_times_of_windows_long_past() -> None:
    st = ScaleAgentState(PipelineConfig(policy="preserve:preserve", predictor="fallback"))
    sc = st.services.get("svc")
    for i in range(500):
        sc._closed_at[60.0 * (i + 1)] = 60.0 * (i + 1) + 5.0
    sc._awaited[60.0 * 499] = {"requests"}  # a forecast still awaited is kept whatever its age
    sc.watermark = 60.0 * 500
    sc._forecast_cap()
    assert 60.0 * 499 in sc._closed_at
    assert len(sc._closed_at) <= 3  # was: one entry per window, forever
