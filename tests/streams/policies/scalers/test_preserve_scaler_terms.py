"""PreServe scaler, loop by loop (the long-term loop only through ``forecast="oracle"`` + ``attach_oracle``):
each of forecast, recent load, queue backlog, anticipated KV peak, prefill bursts and SLO misses decides
alone with an exact instance count, then together; the scale-down gates one at a time (mid-load, KV room,
the queue, the SLO, stabilisation, warm-up) at their exact boundaries; the emergency path through the freeze.

Times start at T = 5000 s. The engine is ``llama2-7b-h100``; expected counts come from the scaler's own
capacity (the cost model is tested in ``test_instance_capacity_terms``).
"""

from __future__ import annotations

import math
from typing import Any

import pytest

from streams.policies.engine_profiles import get_preset
from streams.policies.fleet_view import CompletionInfo, FleetView, InstanceState, InstanceView, RequestInfo
from streams.policies.scalers.preserve_scaler import PreServeScaler

ENGINE = get_preset("llama2-7b-h100")
CAP = ENGINE.kv_capacity_tokens
T = 5000.0
R, S, D = InstanceState.READY, InstanceState.STARTING, InstanceState.DRAINING


def view(n_ready: int, n_starting: int = 0, *, waiting: int = 0, waiting_prompt: int = 0, kv: int = 0,
         draining_kv: int = 0, cold: float = 30.0) -> FleetView:
    """``kv`` tokens in use on the first ready instance; the queue on the first ready instance too."""
    inst = [InstanceView(f"r{i}", R, CAP, waiting=waiting if i == 0 else 0,
                         waiting_prompt_tokens=waiting_prompt if i == 0 else 0, kv_used_tokens=kv if i == 0 else 0)
            for i in range(n_ready)]
    inst += [InstanceView(f"s{i}", S, CAP) for i in range(n_starting)]
    if draining_kv:
        inst.append(InstanceView("d0", D, CAP, kv_used_tokens=draining_kv))
    return FleetView("svc", inst, min_instances=1, max_instances=8, cold_start_s=cold)


def scaler(arrivals: list[tuple[float, int, int]] | None = None, **kw: Any) -> PreServeScaler:
    args = {"freeze_s": 0.0, "max_instances": 20, **kw}
    s = PreServeScaler(forecast="oracle", **args)
    s.attach_oracle(arrivals or [])
    return s


def steady(rate_per_s: float, t0: float, t1: float, prompt: int = 1000, out: int = 200) -> list[tuple[float, int, int]]:
    n = round((t1 - t0) * rate_per_s)
    return [(t0 + k / rate_per_s, prompt, out) for k in range(n)]


def need(u: float, target: float = 0.95) -> int:
    return math.ceil(u / target - 1e-9)


def arrive(s: PreServeScaler, rid: str, t: float, prompt: int, predicted: float, p90: float | None = None) -> None:
    s.observe_arrival(RequestInfo(rid, "svc", t, prompt, predicted, predicted if p90 is None else p90), now=t)


# ------------------------------------------------------------------------- one loop at a time
def test_forecast_alone_gives_the_exact_count() -> None:
    s = scaler()
    cap = s.capacity()
    rate = 2.5 / cap.utilisation(1000, 200)  # 2.5 instances' worth of requests per second
    s = scaler(steady(rate, T + 60.0, T + 600.0))
    assert s.decide(view(1), now=T - 100.0) is None  # nothing within the look-ahead
    d = s.decide(view(1), now=T)
    assert d is not None and d.reason.startswith("scale up on forecast")
    u = d.details["u_forecast"]
    assert u == pytest.approx(2.5, rel=0.02)
    assert d.target_instances == need(u) == 3
    assert d.details["need / forecast"] == 3.0
    assert d.details["need / recent load"] == 0.0 and d.details["need / anticipated KV peak"] == 0.0


def test_target_util_sizes_the_forecast() -> None:
    s = scaler()
    rate = 2.5 / s.capacity().utilisation(1000, 200)
    d = scaler(steady(rate, T, T + 600.0), target_util=0.8, down_util=0.7).decide(view(1), now=T)
    assert d is not None and d.target_instances == need(d.details["u_forecast"], 0.8) == 4


def test_recent_load_alone_counts_predicted_output_at_arrival() -> None:
    """40 s of arrivals at T - 40 .. T (the span seen so far is 40 s), predictions counted as demand; each
    completes 10 s after it arrived with what was predicted (calibration 1)."""
    s = scaler()
    rate = 1.5 / s.capacity().utilisation(500, 300)
    n = round(40 * rate)
    events = []
    for k in range(n):
        t = T - 40.0 + k / rate
        events.append((t, 0, k))
        if t + 10.0 <= T:
            events.append((t + 10.0, 1, k))
    for t, kind, k in sorted(events):
        if kind == 0:
            arrive(s, f"a{k}", t, 500, 300.0, p90=900.0)  # the mean, not the p90, is demand
        else:
            s.observe_completion(CompletionInfo(f"a{k}", "r0", t - 10.0, t, 500, 300, 0.1), now=t)
    d = s.decide(view(1), now=T)
    cap = s.capacity()
    assert s.recent.mix() == (500.0, 300.0)
    expected = cap.utilisation(n * 500 / 40.0, n * 300 / 40.0)
    assert d is not None and d.details["u_recent"] == pytest.approx(expected)
    assert d.target_instances == need(expected) == 2 and "recent load" in d.reason
    assert d.details["need / anticipated KV peak"] == 1.0


def test_a_burst_of_arrivals_at_one_instant_is_spread_over_one_interval() -> None:
    s = scaler(interval_s=2.0)
    for k in range(10):
        arrive(s, f"a{k}", T, 1000, 100.0)
    s.decide(view(1), now=T)
    assert s.last_details["u_recent"] == pytest.approx(s.capacity().utilisation(10 * 1000 / 2.0, 10 * 100 / 2.0))


def test_p90_is_the_fallback_prediction_of_an_arrival() -> None:
    s = scaler()
    for k in range(100):
        arrive(s, f"a{k}", T - 10.0 + k * 0.1, 500, 0.0, p90=300.0)
    s.decide(view(1), now=T)
    assert s.last_details["u_recent"] == pytest.approx(s.capacity().utilisation(100 * 500 / 10, 100 * 300 / 10))


def test_queued_prompts_alone_are_drained_within_a_cold_start() -> None:
    s = scaler()
    cap = s.capacity()
    waiting_prompt = round(2.2 * 30.0 / cap.s_per_prompt_token)  # 2.2 instances for 30 s
    d = s.decide(view(2, waiting=1, waiting_prompt=waiting_prompt), now=T)
    backlog_s = waiting_prompt * cap.s_per_prompt_token + 1 * 200 * cap.s_per_gen_token
    assert d is not None and d.details["u_recent"] == pytest.approx(backlog_s / 30.0)
    assert d.target_instances == need(backlog_s / 30.0) == 3


def test_queued_requests_count_their_mean_output() -> None:
    s = scaler()
    cap = s.capacity()
    waiting = round(1.5 * 30.0 / (200 * cap.s_per_gen_token))
    d = s.decide(view(1, waiting=waiting), now=T)
    assert d is not None
    assert d.details["u_recent"] == pytest.approx(waiting * 200 * cap.s_per_gen_token / 30.0)
    assert d.target_instances == 2


def test_a_short_cold_start_drains_the_queue_over_one_interval() -> None:
    s = scaler(cold_start_s=2.0, interval_s=5.0)
    cap = s.capacity()
    wp = round(1.5 * 5.0 / cap.s_per_prompt_token)
    d = s.decide(view(1, waiting=1, waiting_prompt=wp), now=T)
    assert d is not None and d.details["cold_start_s"] == 2.0
    expected = (wp * cap.s_per_prompt_token + 200 * cap.s_per_gen_token) / 5.0
    assert d.details["u_recent"] == pytest.approx(expected)
    assert d.target_instances == need(expected) == 2


def test_cold_start_comes_from_the_parameter_then_the_fleet_then_the_engine() -> None:
    s = scaler()
    s.decide(view(1, cold=45.0), now=T)
    assert s.last_details["cold_start_s"] == 45.0
    s.decide(view(1, cold=0.0), now=T + 5)
    assert s.last_details["cold_start_s"] == ENGINE.cold_start_s
    s2 = scaler(cold_start_s=12.0)
    s2.decide(view(1, cold=45.0), now=T)
    assert s2.last_details["cold_start_s"] == 12.0


def test_anticipated_kv_peak_alone() -> None:
    """40 long generations with long prompts over the last 60 s: modest token rates, but the KV fills over
    the cold start. The fleet anticipator (30 tokens/s, 2 s grid) reads the end of the 30 s cold start, when
    request k (arrived at T - 60 + 1.5 k) holds 4000 + 30 (90 - 1.5 k) tokens."""
    s = scaler()
    for k in range(40):
        arrive(s, f"r{k}", T - 60.0 + 1.5 * k, 4000, 3000.0)
    d = s.decide(view(1), now=T)
    peak = sum(4000 + 30 * (90 - 1.5 * k) for k in range(40))
    assert d is not None and d.details["kv_peak"] == pytest.approx(peak)
    assert d.target_instances == math.ceil(peak / (0.95 * CAP)) == 3 and "anticipated KV peak" in d.reason
    assert d.details["need / recent load"] == 1.0
    s2 = scaler(high_water=0.5)
    for k in range(40):
        arrive(s2, f"r{k}", T - 60.0 + 1.5 * k, 4000, 3000.0)
    d2 = s2.decide(view(1), now=T)
    assert d2 is not None and d2.target_instances == math.ceil(peak / (0.5 * CAP)) == 4


def test_measured_kv_counts_ready_and_starting_but_not_draining() -> None:
    s = scaler()
    v = view(1, 1, kv=int(1.5 * 0.95 * CAP), draining_kv=CAP)
    v.instances[1].kv_used_tokens = int(1.0 * 0.95 * CAP)
    d = s.decide(v, now=T)
    assert d is not None and d.details["kv_peak"] == int(1.5 * 0.95 * CAP) + int(1.0 * 0.95 * CAP)
    assert d.target_instances == 3 and d.details["need / anticipated KV peak"] == 3.0


def test_with_a_queue_the_measured_kv_replaces_the_anticipator() -> None:
    s = scaler()
    for k in range(150):
        arrive(s, f"r{k}", T, 200, 3000.0)
    s.decide(view(1, waiting=1, kv=1000), now=T)
    assert s.last_details["kv_peak"] == 1000.0
    s.decide(view(1, waiting=0, kv=1000), now=T)
    assert s.last_details["kv_peak"] == pytest.approx(150 * 1100)


def test_prefill_bursts_alone() -> None:
    s = scaler()
    for b in range(5):  # a burst of 30 prompts of 3000 tokens every 60 s, each done within a second
        t = T - 300.0 + 60.0 * b
        for k in range(30):
            arrive(s, f"b{b}-{k}", t, 3000, 5.0)
        for k in range(30):
            s.observe_completion(CompletionInfo(f"b{b}-{k}", "r0", t, t + 1.0, 3000, 5, 0.8), now=t + 1.0)
    d = s.decide(view(1), now=T)
    cap = s.capacity()
    assert d is not None and d.details["burst_tokens"] == pytest.approx(90_000)
    expected = math.ceil(90_000 * cap.s_per_prompt_token / (0.7 * 1.0) - 1e-9)
    assert d.target_instances == expected and "prefill bursts" in d.reason
    assert expected == 4 and d.details["need / recent load"] == 1.0 and d.details["need / anticipated KV peak"] == 0.0


def test_burst_share_and_ttft_slo_scale_the_burst_need() -> None:
    counts = []
    for kw in ({}, {"burst_share": 0.35}, {"ttft_slo_s": 2.0}):
        s = scaler(**kw)
        for k in range(30):
            arrive(s, f"b{k}", T, 3000, 5.0)
        s.decide(view(1), now=T)
        counts.append(s.last_details["need / prefill bursts"])
    tokens = 90_000 * scaler().capacity().s_per_prompt_token
    assert counts == [math.ceil(tokens / 0.7 - 1e-9), math.ceil(tokens / 0.35 - 1e-9), math.ceil(tokens / 1.4 - 1e-9)]


# ------------------------------------------------------------------------- SLO misses, both sides
def complete(s: PreServeScaler, rid: str, arrival: float, ttft: float, decode_s: float, out: int = 21,
             prompt: int = 500) -> None:
    finish = arrival + ttft + decode_s
    s.observe_completion(CompletionInfo(rid, "r0", arrival, finish, prompt, out, ttft), now=finish)


def test_ttft_misses_add_one_instance() -> None:
    s = scaler()
    for k in range(30):
        complete(s, f"c{k}", T - 60 + k, ttft=3.0 if k % 5 == 0 else 0.5, decode_s=1.0)
    d = s.decide(view(2), now=T)
    assert d is not None and d.target_instances == 3 and "SLO misses" in d.reason
    assert d.details["slo_miss"] == pytest.approx(6 / 30)


def test_tpot_misses_add_one_instance() -> None:
    s = scaler()
    for k in range(30):  # 20 decode steps of 0.15 s: TPOT 0.15 > 0.1
        complete(s, f"c{k}", T - 60 + k, ttft=0.5, decode_s=3.0 if k % 5 == 0 else 1.0)
    d = s.decide(view(2), now=T)
    assert d is not None and d.target_instances == 3 and "SLO misses" in d.reason


def test_slo_boundaries_are_not_misses() -> None:
    s = scaler()
    for k in range(30):  # TTFT exactly 1.0 s, TPOT exactly 0.1 s: on the SLO, not beyond it
        complete(s, f"c{k}", T - 60 + k, ttft=1.0, decode_s=2.0)
    for k in range(30):  # one output token: no TPOT at all
        complete(s, f"o{k}", T - 30 + k, ttft=0.5, decode_s=5.0, out=1)
    s.decide(view(2), now=T)
    assert s.last_details["slo_miss"] == 0.0 and s.last_details["need / SLO misses"] == 0.0


def test_two_output_tokens_have_one_decode_step() -> None:
    s = scaler()
    for k in range(30):  # one decode step of 0.5 s: TPOT 0.5 > 0.1
        complete(s, f"c{k}", T - 60 + k, ttft=0.5, decode_s=0.5, out=2)
    s.decide(view(2), now=T)
    assert s.last_details["slo_miss"] == 1.0


def test_tpot_slo_parameter_moves_the_tpot_side() -> None:
    s = scaler(tpot_slo_s=0.2)
    for k in range(30):
        complete(s, f"c{k}", T - 60 + k, ttft=0.5, decode_s=3.0)  # TPOT 0.15 < 0.2
    s.decide(view(2), now=T)
    assert s.last_details["slo_miss"] == 0.0


def test_after_a_scale_up_only_requests_arriving_once_capacity_is_ready_are_judged() -> None:
    s = scaler()
    for k in range(30):
        complete(s, f"c{k}", T - 60 + k, ttft=3.0, decode_s=1.0)
    d = s.decide(view(2), now=T)  # SLO misses: scale up, judge again from T + 30 (the cold start)
    assert d is not None and d.target_instances == 3
    complete(s, "before", T + 29.9, ttft=3.0, decode_s=1.0)
    s.decide(view(3), now=T + 40)
    assert s.last_details["slo_miss"] == 0.0  # not judged
    complete(s, "at", T + 30.0, ttft=3.0, decode_s=1.0)
    s.decide(view(3), now=T + 41)
    assert s.last_details["slo_miss"] == 1.0  # judged (arrived exactly when the capacity was ready)


def test_misses_within_chance_do_not_scale() -> None:
    s = scaler(slo_miss_up=0.2)
    for k in range(30):
        complete(s, f"c{k}", T - 60 + k, ttft=3.0 if k % 5 == 0 else 0.5, decode_s=1.0)  # 20%: chance at 20%
    s.decide(view(2), now=T)
    assert s.last_details["need / SLO misses"] == 0.0


# ------------------------------------------------------------------------- together
def test_the_largest_need_decides_and_every_need_is_reported() -> None:
    s = scaler(high_water=0.5)
    for k in range(30):
        arrive(s, f"b{k}", T - 1.0, 3000, 5.0)  # a burst
    d = s.decide(view(2, kv=int(1.6 * 0.5 * CAP)), now=T)
    assert d is not None
    needs = {k[len("need / "):]: v for k, v in d.details.items() if k.startswith("need / ")}
    assert set(needs) == {"forecast", "recent load", "anticipated KV peak", "prefill bursts", "SLO misses"}
    assert needs["anticipated KV peak"] == 2.0 and needs["SLO misses"] == 0.0
    assert d.target_instances == max(needs.values()) == needs["prefill bursts"]
    assert d.reason.startswith("scale up on prefill bursts")


def test_min_instances_floors_the_need() -> None:
    s = scaler(min_instances=3)
    s.decide(view(3), now=T)
    assert s.last_details["need / forecast"] == 0.0
    assert s._need(view(3), T)[0] == 3


# ------------------------------------------------------------------------- scale-down gates
def quiet_scaler(**kw: Any) -> PreServeScaler:
    """A scaler that has seen 3 minutes of nothing (past its warm-up) and a steady oracle load of
    ``u_oracle`` instances."""
    u = kw.pop("u_oracle", 0.0)
    s = scaler(down_stabilization_s=0.0, **kw)
    if u:
        rate = u / s.capacity().utilisation(1000, 200)
        s = scaler(steady(rate, T - 1000.0, T + 2000.0), down_stabilization_s=0.0, **kw)
    s.decide(view(8), now=T - 180.0)  # the first look starts the warm-up clock
    return s


def test_mid_load_scale_down_is_one_instance_when_the_rest_can_carry_the_load() -> None:
    s = quiet_scaler(u_oracle=2.6)  # 2.6 / 3 = 0.87 < 0.9
    d = s.decide(view(4), now=T)
    assert d is not None and d.target_instances == 3 and d.reason.startswith("scale down")
    assert d.details["u_forecast"] == pytest.approx(2.6, rel=0.02)


def test_load_that_left_the_recent_window_no_longer_holds_capacity() -> None:
    """Three instances' worth of arrivals from T - 200 to T - 140 (each done within 2 s): by T they left the
    60 s window, so the fleet of 4 may shrink."""
    s = quiet_scaler()
    rate = 3.0 / s.capacity().utilisation(1000, 200)
    events = []
    for k in range(round(60 * rate)):
        t = T - 200.0 + k / rate
        events += [(t, 0, k), (t + 2.0, 1, k)]
    for t, kind, k in sorted(events):
        if kind == 0:
            arrive(s, f"a{k}", t, 1000, 200.0)
        else:
            s.observe_completion(CompletionInfo(f"a{k}", "r0", t - 2.0, t, 1000, 200, 0.1), now=t)
    d = s.decide(view(4), now=T)
    assert d is not None and d.target_instances == 3
    assert d.details["need / recent load"] == 1.0  # only completions within the mix span remain


def test_no_scale_down_when_the_rest_would_run_above_down_util() -> None:
    s = quiet_scaler(u_oracle=2.8)  # 2.8 / 3 = 0.93 > 0.9, though ceil(2.8 / 0.95) = 3 < 4
    assert s.decide(view(4), now=T) is None
    assert s.last_details["need / forecast"] == 3.0


def test_down_util_parameter() -> None:
    s = quiet_scaler(u_oracle=2.8, down_util=0.94)
    d = s.decide(view(4), now=T)
    assert d is not None and d.target_instances == 3


def test_scale_down_waits_for_two_windows_since_the_first_look() -> None:
    s = scaler(down_stabilization_s=0.0, window_s=30.0)
    assert s.decide(view(3), now=T) is None  # first look: the clock starts
    assert s.decide(view(3), now=T + 59.9) is None
    d = s.decide(view(3), now=T + 60.0)
    assert d is not None and d.target_instances == 2


def test_the_first_arrival_starts_the_warm_up_clock() -> None:
    s = scaler(down_stabilization_s=0.0)
    arrive(s, "first", T - 120.0, 10, 1.0)
    d = s.decide(view(3), now=T)
    assert d is not None and d.target_instances == 2


def test_a_queue_blocks_scale_down() -> None:
    s = quiet_scaler()
    assert s.decide(view(3, waiting=1), now=T) is None
    d = s.decide(view(3), now=T + 1)
    assert d is not None and d.target_instances == 2


def test_kv_room_blocks_scale_down_at_its_exact_boundary() -> None:
    s = quiet_scaler(high_water=0.5)
    room = int(0.5 * CAP * 2)  # what 2 instances hold under the high-water mark
    assert s.decide(view(3, kv=room), now=T) is None  # need 2 < 3, but no room left in 2
    d = s.decide(view(3, kv=room - 1), now=T + 1)
    assert d is not None and d.target_instances == 2


def test_recent_misses_block_scale_down() -> None:
    s = quiet_scaler()
    for k in range(100):
        complete(s, f"c{k}", T - 100 + k * 0.5, ttft=3.0 if k == 0 else 0.5, decode_s=1.0)
    assert s.decide(view(3), now=T) is None  # 1% missed > 0.2%, within chance of 1%: no scale-up either
    assert s.last_details["need / SLO misses"] == 0.0
    s2 = quiet_scaler(slo_miss_down=0.01)
    for k in range(100):
        complete(s2, f"c{k}", T - 100 + k * 0.5, ttft=3.0 if k == 0 else 0.5, decode_s=1.0)
    d = s2.decide(view(3), now=T)
    assert d is not None and d.target_instances == 2


def test_a_miss_share_exactly_at_slo_miss_down_allows_scale_down() -> None:
    s = quiet_scaler()
    for k in range(500):  # 1 in 500 = 0.002
        complete(s, f"c{k}", T - 170 + k * 0.3, ttft=3.0 if k == 0 else 0.5, decode_s=1.0)
    d = s.decide(view(3), now=T)
    assert d is not None and d.details["slo_miss"] == 0.002 and d.target_instances == 2


def test_with_min_instances_zero_the_last_instance_stays_and_nothing_divides_by_zero() -> None:
    """Regression: ``u / (current - 1)`` raised ZeroDivisionError for a fleet of one when min_instances=0."""
    s = quiet_scaler(min_instances=0)
    assert s.decide(view(1), now=T) is None
    d = s.decide(view(2), now=T + 1)
    assert d is not None and d.target_instances == 1


def test_min_instances_stops_scale_down() -> None:
    s = quiet_scaler(min_instances=2)
    assert s.decide(view(2), now=T) is None


def test_stabilisation_remembers_the_largest_need_for_its_span() -> None:
    s = scaler(down_stabilization_s=120.0)
    s.decide(view(3), now=T - 300.0)
    big = int(2.5 * 0.95 * CAP)  # need 3 at T
    assert s.decide(view(3, kv=big), now=T) is None
    assert s.decide(view(3), now=T + 60.0) is None
    assert s.decide(view(3), now=T + 120.0) is None  # the need at T is exactly 120 s old: still counted
    d = s.decide(view(3), now=T + 120.5)
    assert d is not None and d.target_instances == 2
    assert d.reason == "scale down: util 0.00 < 0.9 x 2"


# ------------------------------------------------------------------------- emergency and freeze
def test_emergency_passes_the_freeze_only_with_a_queue_a_need_and_nothing_starting() -> None:
    s = scaler(freeze_s=60.0)
    cap = s.capacity()
    wp = round(3.0 * 30.0 / cap.s_per_prompt_token)  # 3 instances' worth of queued prompts
    d = s.decide(view(2, waiting=20, waiting_prompt=wp), now=T)
    assert d is not None and d.target_instances == 4 and d.reason.startswith("emergency scale up")
    d = s.decide(view(4, waiting=40, waiting_prompt=2 * wp), now=T + 10)  # 40 > 4 x 4 ready, need 7 > 4
    assert d is not None and d.target_instances == 7 and d.reason.startswith("emergency")
    assert s.decide(view(4, 1, waiting=40, waiting_prompt=2 * wp), now=T + 20) is None  # one is starting
    assert s.decide(view(7, waiting=28, waiting_prompt=3 * wp), now=T + 30) is None  # 28 = 4 x 7: no emergency
    assert s.decide(view(7, waiting=29, waiting_prompt=wp), now=T + 40) is None  # need 4 < 7: frozen
    d = s.decide(view(7, waiting=29, waiting_prompt=3 * wp), now=T + 50)
    assert d is not None and d.target_instances == 10


def test_a_scale_up_without_a_queue_is_not_an_emergency() -> None:
    s = scaler()
    d = s.decide(view(2, waiting=8, kv=int(2.5 * 0.95 * CAP)), now=T)  # 8 = 4 x 2: not beyond
    assert d is not None and d.reason.startswith("scale up on")


def test_the_emergency_threshold_is_per_ready_instance() -> None:
    s = scaler(freeze_s=60.0)
    s.decide(view(1, kv=int(1.5 * 0.95 * CAP)), now=T)  # scale to 2: frozen till T + 60
    wp = round(3.0 * 30.0 / s.capacity().s_per_prompt_token)
    assert s._urgent(view(2, waiting=8, waiting_prompt=wp), T + 10) is False  # 8 = 4 x 2
    assert s._urgent(view(2, waiting=9, waiting_prompt=wp), T + 10) is True
    assert s._urgent(view(2, 1, waiting=9, waiting_prompt=wp), T + 10) is False  # one is starting
    assert s._urgent(view(2, waiting=9, waiting_prompt=1), T + 10) is False  # the queue needs no more
    s2 = scaler(freeze_s=60.0, emergency_waiting=2.0)
    assert s2._urgent(view(2, waiting=5, waiting_prompt=wp), T) is True


# ------------------------------------------------------------------------- observation plumbing
def test_completions_teach_the_mix_and_release_the_fleet_anticipator() -> None:
    s = scaler()
    arrive(s, "r", T, 3000, 3000.0)
    s.decide(view(1), now=T)
    assert s.last_details["kv_peak"] == pytest.approx(3000 + 30 * 30)
    s.observe_completion(CompletionInfo("r", "r0", T, T + 2.0, 3000, 41, 1.0), now=T + 2.0)
    s.decide(view(1), now=T + 2.0)
    assert s.last_details["kv_peak"] == 0.0
    assert s.recent.mix() == (3000.0, 41.0)
    assert s.fleet_load.rate == pytest.approx(0.95 * 30 + 0.05 * 40)  # 40 tokens in 1 s


def test_parameters_are_validated_and_stored() -> None:
    for bad in ({"down_util": 0.95}, {"down_util": 0.0}, {"target_util": 1.1}, {"high_water": 0.0},
                {"high_water": 1.5}, {"recent_s": 0.0}, {"mix_s": 0.0}, {"forecast": "psychic"}):
        with pytest.raises(ValueError):
            PreServeScaler(**bad)
    with pytest.raises(TypeError):
        PreServeScaler(nonsense=1)
    fresh = PreServeScaler(forecast="oracle")
    assert fresh.last_details == {}
    assert (fresh.needs_future, fresh.forecast_targets, fresh.wants_forecasts) == (True, (), False)
    online = PreServeScaler()
    assert (online.needs_future, online.forecast_targets, online.wants_forecasts) == (
        False, ("prompt_tokens", "output_tokens"), True)
    s = PreServeScaler(forecast="oracle", target_util=1.0, high_water=1.0)
    assert (s.target_util, s.high_water) == (1.0, 1.0)
    d = PreServeScaler(forecast="oracle")
    assert (d.min_instances, d.max_instances, d.freeze_s, d.interval_s, d.cold_start_s) == (1, 8, 60.0, 5.0, None)
    assert (d.window_s, d.target_util, d.down_util, d.high_water, d.emergency_waiting, d.ttft_slo_s,
            d.tpot_slo_s, d.tpot_target_s, d.down_stabilization_s, d.burst_share, d.slo_miss_up,
            d.slo_miss_down, d.slo_miss_alpha) == (60.0, 0.95, 0.9, 0.95, 4.0, 1.0, 0.1, 0.05, 120.0, 0.7,
                                                   0.01, 0.002, 0.01)
    assert (d.recent.span_s, d.recent.mix_span_s) == (60.0, 180.0)
    assert (d.bursts.window_s, d.bursts.memory_s, d.bursts.quantile, d.bursts.refresh_s) == (1.0, 600.0, 0.99, 15.0)
    c = d.fleet_load.config
    assert (c.horizon_s, c.bucket_s) == (120.0, 2.0)
