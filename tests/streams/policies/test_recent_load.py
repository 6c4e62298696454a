"""RecentLoad (the PreServe scaler's short-term account) and the binomial test behind its SLO-miss loop."""

from __future__ import annotations

import pytest

from streams.policies.engine_profiles import get_preset
from streams.policies.fleet_view import CompletionInfo, FleetView, InstanceState, InstanceView, RequestInfo
from streams.policies.scalers.preserve_scaler import PreServeScaler
from streams.policies.scalers.recent_load import RecentLoad, binomial_tail

CAP = get_preset("llama2-7b-h100").kv_capacity_tokens


def test_binomial_tail_matches_closed_forms() -> None:
    assert binomial_tail(0, 20, 0.01) == 1.0
    assert binomial_tail(1, 20, 0.01) == pytest.approx(1 - 0.99**20)
    assert binomial_tail(21, 20, 0.01) == 0.0
    assert binomial_tail(3, 20, 0.01) < 0.01 < binomial_tail(2, 20, 0.01)


def test_generated_demand_is_counted_at_arrival_and_calibrated_on_completions() -> None:
    r = RecentLoad(span_s=60.0, mix_span_s=180.0)
    for k in range(100):  # the predictor says 100 tokens; the completions show it under-predicts by 2x
        r.arrival(float(k) * 0.1, f"a{k}", 1000, 100.0)
    for k in range(50):
        r.completion(10.0, f"a{k}", 1000, 200, None)
    prompt_rate, gen_rate = r.rates(10.0)
    assert prompt_rate == pytest.approx(100 * 1000 / 10.0)  # 10 s seen so far, not the full 60 s window
    assert gen_rate == pytest.approx(100 * 100 * 2.0 / 10.0)  # predicted x (actual / predicted)
    assert r.mix() == pytest.approx((1000.0, 200.0))


def test_arrivals_and_completions_age_on_their_own_spans() -> None:
    r = RecentLoad(span_s=60.0, mix_span_s=180.0)
    r.arrival(0.0, "old", 5000, 50.0)
    r.completion(1.0, "old", 5000, 50, 1)
    r.arrival(100.0, "new", 1000, 10.0)
    r.completion(101.0, "new", 1000, 10, 0)
    r.age(120.0)
    assert r.rates(120.0)[0] == pytest.approx(1000 / 60.0)  # the first arrival left the 60 s window
    assert r.mix() == pytest.approx((3000.0, 30.0)) and r.judged() == 2  # both completions within 180 s
    r.age(200.0)
    assert r.mix() == pytest.approx((1000.0, 10.0)) and r.slo_misses == 0


def _fleet(n: int) -> FleetView:
    inst = [InstanceView(f"r{i}", InstanceState.READY, CAP) for i in range(n)]
    return FleetView("svc", inst, min_instances=1, max_instances=8, cold_start_s=30.0)


def test_a_saturated_fleet_is_sized_by_its_arrivals_not_its_completions() -> None:
    """Completions of a saturated fleet come at the fleet's pace; the arrivals' predicted lengths show the
    load it is not serving."""
    s = PreServeScaler(freeze_s=0.0)
    rate = 3.0 / s.capacity().utilisation(1000, 200)  # three instances' worth of requests per second
    for k in range(int(60 * rate)):
        t = k / rate
        s.observe_arrival(RequestInfo(f"r{k}", "svc", t, 1000, 200.0, 300.0), now=t)
        if k % 3 == 0:  # one instance completes a third of them
            s.observe_completion(CompletionInfo(f"r{k}", "r0", t, t + 0.1, 1000, 200, 0.05), now=t + 0.1)
    d = s.decide(_fleet(1), now=60.0)
    assert d is not None and d.target_instances >= 3
    assert d.details["u_recent"] == pytest.approx(3.0, rel=0.1)


def test_one_miss_among_the_first_completions_is_not_evidence() -> None:
    s = PreServeScaler(freeze_s=0.0)
    for k in range(20):
        ttft = 3.0 if k == 0 else 0.1
        s.observe_completion(CompletionInfo(f"c{k}", "r0", 100.0 + k, 101.0 + k, 500, 20, ttft), now=101.0 + k)
    s.decide(_fleet(2), now=125.0)
    assert s.last_details["need / SLO misses"] == 0  # 1 of 20 > 1%, but chance at a 1% miss rate
    for k in range(20, 24):  # 5 of 24: beyond chance
        s.observe_completion(CompletionInfo(f"c{k}", "r0", 100.0 + k, 101.0 + k, 500, 20, 3.0), now=101.0 + k)
    s.decide(_fleet(2), now=126.0)
    assert s.last_details["need / SLO misses"] == 3


def test_predictions_of_requests_that_never_complete_are_forgotten() -> None:
    r = RecentLoad(span_s=60.0, mix_span_s=180.0, pending_s=600.0)
    for k in range(100):
        r.arrival(float(k), f"dropped{k}", 100, 50.0)
    r.age(650.0)
    assert len(r._pending) == 50  # arrivals at 50..99 s are within 600 s of 650 s
    r.completion(700.0, "dropped99", 100, 50, None)
    assert r.calibration() == pytest.approx(1.0)
