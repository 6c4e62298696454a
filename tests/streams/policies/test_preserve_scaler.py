"""PreServe scaler: capacity from the cost model, bounds, freeze, emergency through the freeze, look-ahead."""

from __future__ import annotations

import math
from typing import Any

import pytest

from streams.policies.engine_profiles import get_preset
from streams.policies.fleet_view import (
    CompletionInfo,
    FleetView,
    ForecastInfo,
    InstanceState,
    InstanceView,
    RequestInfo,
)
from streams.policies.policy_registry import SCALERS
from streams.policies.scalers.density_forecast import PublishedForecast
from streams.policies.scalers.instance_capacity import capacity_at
from streams.policies.scalers.preserve_scaler import PreServeScaler

ENGINE = get_preset("llama2-7b-h100")
CAP = ENGINE.kv_capacity_tokens


def view(n_ready: int, n_starting: int = 0, waiting: int = 0, kv: int = 0, cold: float = 30.0) -> FleetView:
    inst = [InstanceView(f"r{i}", InstanceState.READY, CAP, waiting=waiting if i == 0 else 0, kv_used_tokens=kv)
            for i in range(n_ready)]
    inst += [InstanceView(f"s{i}", InstanceState.STARTING, CAP) for i in range(n_starting)]
    return FleetView("svc", inst, min_instances=1, max_instances=8, cold_start_s=cold)


def oracle_scaler(arrivals: list[tuple[float, int, int]], **kw: Any) -> PreServeScaler:
    s = PreServeScaler(forecast="oracle", **kw)
    s.attach_oracle(arrivals)
    return s


def steady(rate_per_s: float, t0: float, t1: float, prompt: int = 1000, out: int = 200) -> list[tuple[float, int, int]]:
    n = int((t1 - t0) * rate_per_s)
    return [(t0 + k / rate_per_s, prompt, out) for k in range(n)]


def test_registered_and_capacity_is_sane() -> None:
    assert SCALERS["preserve"] is PreServeScaler
    cap = capacity_at(ENGINE.cost_model, CAP, ENGINE.max_num_seqs, 1000, 200, 0.05)
    assert 1 <= cap.batch <= ENGINE.max_num_seqs
    assert cap.step_s <= 0.05
    assert cap.batch * (1000 + 100) <= 0.9 * CAP  # KV share respected
    longer = capacity_at(ENGINE.cost_model, CAP, ENGINE.max_num_seqs, 3000, 200, 0.05)
    assert longer.s_per_gen_token > cap.s_per_gen_token  # longer contexts: fewer sequences, slower tokens


def test_forecast_drives_instances_and_looks_ahead_by_cold_start() -> None:
    cap = capacity_at(ENGINE.cost_model, CAP, ENGINE.max_num_seqs, 1000, 200, 0.05)
    one_instance_rate = 1.0 / cap.utilisation(1000, 200)  # requests/s one instance sustains
    quiet, busy = steady(0.2 * one_instance_rate, 0, 300), steady(2.0 * one_instance_rate, 300, 900)
    s = oracle_scaler(quiet + busy, freeze_s=0.0)
    assert s.decide(view(1), now=100.0) is None  # quiet, nothing ahead within 30 s + one window
    d = s.decide(view(1), now=275.0)  # the rise at 300 s is one cold start (30 s) ahead: start now
    assert d is not None and d.target_instances == 3  # ceil(2.0 / 0.7)
    assert "forecast" in d.reason and d.details["u_forecast"] == pytest.approx(2.0, rel=0.05)


def test_bounds_are_honoured() -> None:
    s = oracle_scaler(steady(500.0, 0, 600), max_instances=4, freeze_s=0.0)
    d = s.decide(view(2), now=10.0)
    assert d is not None and d.target_instances == 4
    s2 = oracle_scaler(steady(0.001, 0, 600), min_instances=2, freeze_s=0.0)
    d2 = s2.decide(view(1), now=10.0)
    assert d2 is not None and d2.target_instances == 2 and "min_instances" in d2.reason
    assert s2.decide(view(2), now=20.0) is None  # never below min


def test_freeze_blocks_then_releases() -> None:
    s = oracle_scaler(steady(0.001, 0, 2000), freeze_s=60.0, down_stabilization_s=0.0)
    assert s.decide(view(4), now=0.0) is None  # warm-up: too little seen to release capacity
    d = s.decide(view(4), now=301.0)
    assert d is not None and d.target_instances == 3  # one step down at a time
    assert s.decide(view(3), now=330.0) is None  # frozen
    d = s.decide(view(3), now=362.0)
    assert d is not None and d.target_instances == 2


def test_emergency_scale_up_passes_the_freeze() -> None:
    s = oracle_scaler(steady(0.001, 0, 2000), freeze_s=60.0)
    s.decide(view(3), now=0.0)
    assert s.decide(view(3), now=310.0) is not None  # a scale-down starts the freeze
    assert s.decide(view(2), now=320.0) is None
    cap = s.capacity()
    rate = 3.0 / cap.utilisation(1000, 0)  # a load of three instances' worth arrives
    for k in range(int(10 * rate)):
        t = 320.0 + k / rate
        s.observe_arrival(RequestInfo(f"x{k}", "svc", t, 1000, 10.0, 10.0), now=t)
    d = s.decide(view(2, waiting=40), now=330.0)  # a queue forms: urgent
    assert d is not None and d.target_instances >= 3 and d.reason.startswith("emergency")
    # capacity already on its way: no second emergency through the freeze
    assert s.decide(view(2, n_starting=1, waiting=40), now=335.0) is None


def test_anticipated_kv_peak_scales_up() -> None:
    s = oracle_scaler(steady(0.001, 0, 2000), freeze_s=0.0)
    for k in range(200):  # long generations arriving now: the KV peak comes later
        s.observe_arrival(RequestInfo(f"r{k}", "svc", 0.0, 1500, 1500.0, 2000.0), now=0.0)
    d = s.decide(view(2), now=0.0)
    assert d is not None and d.target_instances > 2
    assert d.details["kv_peak"] > 2 * 0.85 * CAP


def fc(target: str, first: float, per_window: list[float], window_s: float = 60.0) -> ForecastInfo:
    return ForecastInfo(target, first, window_s, tuple(per_window), tuple(per_window), "test")


def test_published_forecast_reads_the_windows_the_look_ahead_overlaps() -> None:
    d = PublishedForecast(60.0)
    assert d.peak_rates(100.0, 90.0) == (0.0, 0.0)  # nothing published yet: the short-term loops cover it
    d.observe(fc("prompt_tokens", 120.0, [600.0, 6000.0, 60.0]))
    d.observe(fc("output_tokens", 120.0, [120.0, 60.0, 12000.0]))
    # [130, 170] overlaps only the first window; [130, 190] also the second
    assert d.peak_rates(130.0, 40.0) == pytest.approx((10.0, 2.0))
    assert d.peak_rates(130.0, 60.0) == pytest.approx((100.0, 2.0))
    # beyond the forecast: its last window holds (persistence on the forecast)
    assert d.peak_rates(400.0, 10.0) == pytest.approx((1.0, 200.0))
    d.observe(fc("prompt_tokens", 60.0, [1e9]))  # an older forecast arriving late does not replace a newer one
    assert d.peak_rates(130.0, 40.0) == pytest.approx((10.0, 2.0))


def test_online_scaler_sizes_for_the_published_forecast_not_its_own_windows() -> None:
    s = PreServeScaler(freeze_s=0.0)
    assert s.wants_forecasts and not s.needs_future
    cap = s.capacity()
    rate_p, rate_g = 1000.0, 200.0
    per_instance = cap.utilisation(rate_p, rate_g)
    n = 3.0 / per_instance  # three instances' worth of tokens per second in the forecast window
    s.observe_forecast(fc("prompt_tokens", 0.0, [rate_p * n * 60.0] * 3), now=0.0)
    s.observe_forecast(fc("output_tokens", 0.0, [rate_g * n * 60.0] * 3), now=0.0)
    d = s.decide(view(1), now=10.0)
    assert d is not None and d.details["u_forecast"] == pytest.approx(3.0, rel=1e-6)
    assert d.target_instances == math.ceil(3.0 / s.target_util - 1e-9)
    assert d.reason.startswith("scale up on forecast")


def test_oracle_scaler_needs_the_future_and_reads_no_forecasts() -> None:
    s = oracle_scaler(steady(1.0, 0, 10))
    assert s.needs_future and not s.wants_forecasts


def test_prefill_bursts_need_instances_that_the_mean_hides() -> None:
    """Bursts of 20 long prompts every 30 s: a low mean density, but one instance cannot prefill a burst
    within the TTFT SLO."""
    s = oracle_scaler(steady(0.001, 0, 10), freeze_s=0.0)
    for b in range(10):
        t = b * 30.0
        for k in range(20):
            s.observe_arrival(RequestInfo(f"b{b}-{k}", "svc", t, 4000, 20.0, 40.0), now=t)
        for k in range(20):
            s.observe_completion(CompletionInfo(f"b{b}-{k}", "r0", t, t + 3.0, 4000, 20, 0.5), now=t + 3.0)
    d = s.decide(view(1), now=300.0)
    cap = s.capacity()
    assert cap.utilisation(20 * 4000 / 30.0, 20 * 20 / 30.0) < 0.5  # the mean alone fits one instance
    assert d is not None and d.target_instances >= 3 and "prefill bursts" in d.reason


def test_slo_misses_add_an_instance_and_block_scale_down() -> None:
    s = oracle_scaler(steady(0.001, 0, 10), freeze_s=0.0)
    for k in range(50):  # 10% of recent completions wait 3 s for their first token
        ttft = 3.0 if k % 10 == 0 else 0.1
        s.observe_completion(CompletionInfo(f"c{k}", "r0", 100.0 + k, 102.0 + k, 500, 20, ttft), now=102.0 + k)
    d = s.decide(view(2), now=155.0)
    assert d is not None and d.target_instances == 3 and "SLO misses" in d.reason
    assert s.decide(view(3), now=160.0) is None  # misses are judged again only after the new capacity
