"""Metric definitions on a hand-made result: TTFT, TPOT, SLO attainment with drops, instance-hours."""

from __future__ import annotations

import numpy as np
import pytest

from fleet.metrics import request_latencies, summarize
from fleet.sim_inputs import SimResult


def _result() -> SimResult:
    nan = float("nan")
    return SimResult(
        arrival=np.array([0.0, 1.0, 2.0, 3.0]), prompt_tokens=np.array([10, 10, 10, 10]),
        output_tokens=np.array([11, 1, 3, 5]), first_token=np.array([0.5, 3.0, 2.1, nan]),
        finish=np.array([1.5, 3.0, 2.9, nan]), preemptions=np.array([0, 1, 0, 0]), instance=np.array([0, 1, 0, -1]),
        drop_reason=[None, None, None, "prompt_exceeds_max_model_len"], truncated=0,
        instances=[{"instance_id": "i0", "start_requested_at": 0.0, "ready_at": 0.0, "stopped_at": None,
                    "end_at": 3.6},
                   {"instance_id": "i1", "start_requested_at": 1.0, "ready_at": 2.0, "stopped_at": 3.0}],
        scale_actions=[{"t": 1.0, "from": 1, "to": 2, "reason": "x"}], fleet_samples=np.zeros((0, 6)),
        instance_samples=np.zeros((0, 6)), end_time=3.6, control_cpu_s=0.01)


def test_latencies() -> None:
    lat = request_latencies(_result())
    np.testing.assert_allclose(lat["ttft"][:3], [0.5, 2.0, 0.1])
    np.testing.assert_allclose(lat["tpot"][[0, 2]], [0.1, 0.4])  # (finish - first) / (output - 1)
    assert np.isnan(lat["tpot"][1])  # one token: no time between tokens
    np.testing.assert_allclose(lat["norm"][:3], [1.5 / 11, 2.0, 0.9 / 3])


def test_summary() -> None:
    row = summarize(_result(), slo_ttft_s=1.0, slo_tpot_s=0.2, extra_cpu_s=0.02)
    assert (row["requests"], row["completed"], row["dropped"]) == (4, 3, 1)
    assert row["drop_reasons"] == {"prompt_exceeds_max_model_len": 1}
    assert row["slo_attainment"] == pytest.approx(1 / 4)  # request 0 only; 1 is late, 2 too slow, 3 dropped
    assert row["instance_hours"] == pytest.approx((3.6 + 2.0) / 3600)
    assert row["scale_actions"] == 1 and row["preemptions"] == 1
    assert row["overhead_fraction"] == pytest.approx(0.03 / (1.5 + 2.0 + 0.9))
    assert row["p50_itl_s"] is None and row["p99_itl_s"] is None  # no engine fed its ITL histogram


def test_itl_percentiles_are_over_tokens_not_requests() -> None:
    res = _result()
    res.itl.add(0.02, 98.0)  # one long request's 98 steady gaps ...
    res.itl.add(0.5, 2.0)  # ... and two stalls: 2% of the tokens
    row = summarize(res, slo_ttft_s=1.0, slo_tpot_s=0.2)
    assert row["p50_itl_s"] == pytest.approx(0.02, rel=0.003)
    assert row["p99_itl_s"] == pytest.approx(0.5, rel=0.003)
