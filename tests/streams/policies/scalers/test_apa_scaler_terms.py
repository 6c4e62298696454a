"""AIBrix APA rules at their exact edges: the strict fluctuation band, the scale-up and scale-down rate limits,
the metric window, the scale-down cooldown, ready vs provisioned, parameters. KV shares are binary-exact."""

from __future__ import annotations

import pytest

from streams.policies.fleet_view import FleetView, InstanceState, InstanceView
from streams.policies.policy_registry import SCALERS
from streams.policies.scalers.apa_scaler import APAScaler

CAP = 100_000
T = 3000.0


def fleet(kv_shares: list[float], starting: int = 0) -> FleetView:
    inst = [InstanceView(f"r{i}", InstanceState.READY, CAP, kv_used_tokens=int(u * CAP)) for i, u in enumerate(kv_shares)]
    inst += [InstanceView(f"s{i}", InstanceState.STARTING, CAP) for i in range(starting)]
    return FleetView("svc", inst, min_instances=1, max_instances=32)


def point(**kw: float) -> APAScaler:
    """An APA whose window holds only the current reading (window 1 s < the 15 s sync)."""
    return APAScaler(**{"window_s": 1.0, "max_instances": 32, **kw})  # type: ignore[arg-type]


def test_the_fluctuation_band_is_strict_on_both_sides() -> None:
    s = point(target=0.5, up_tolerance=0.125, down_tolerance=0.25, scale_down_cooldown_s=0.0)
    assert s.decide(fleet([0.5625, 0.5625]), T) is None  # ratio 1.125 = 1 + up: not above it
    d = s.decide(fleet([0.5625, 0.5626]), T + 15)
    assert d is not None and d.target_instances == 3  # ceil(2 x 1.1251)
    assert s.decide(fleet([0.375] * 4), T + 30) is None  # ratio 0.75 = 1 - down: not below it
    d = s.decide(fleet([0.375, 0.375, 0.375, 0.3749]), T + 45)
    assert d is not None and d.target_instances == 3  # ceil(4 x 0.74995)
    assert s.recommend(4, 0.5) == 4 and s.recommend(4, 0.55) == 4 and s.recommend(4, 0.4) == 4


def test_desired_is_proportional_and_reported() -> None:
    s = point(target=0.5)
    d = s.decide(fleet([0.75, 0.75]), T)  # ratio 1.5: exactly 3
    assert d is not None and d.target_instances == 3
    assert d.details == {"kv_utilization": 0.75, "ratio": 1.5, "desired": 3.0}
    assert d.reason == "apa: kv 0.75 / target 0.5 -> 3"


def test_the_scale_up_limit_is_ceil_of_rate_times_current() -> None:
    s = point(target=0.0625)
    d = s.decide(fleet([1.0]), T)  # wants 16; at most ceil(2 x 1) = 2
    assert d is not None and d.target_instances == 2
    r = point(target=0.0625, max_scale_up_rate=1.5)
    d = r.decide(fleet([1.0] * 3), T)  # wants 48; at most ceil(1.5 x 3) = 5
    assert d is not None and d.target_instances == 5
    assert r.recommend(3, 0.125) == 5 and r.recommend(2, 0.125) == 3  # ceil(4) = 4 > ceil(3) = 3


def test_the_scale_down_limit_is_floor_of_current_over_rate() -> None:
    s = point(target=0.5, scale_down_cooldown_s=0.0)
    d = s.decide(fleet([0.0625] * 8), T)  # ratio 0.125 -> ceil(1) = 1; not below floor(8 / 2) = 4
    assert d is not None and d.target_instances == 4
    r = point(target=0.5, max_scale_down_rate=3.0, scale_down_cooldown_s=0.0)
    d = r.decide(fleet([0.0625] * 8), T)  # floor(8 / 3) = 2
    assert d is not None and d.target_instances == 2
    assert r.recommend(8, 0.25) == 4  # ceil(8 x 0.5) = 4 is above the limit: the proportional value


def test_the_metric_is_the_mean_over_the_window_to_its_exact_edge() -> None:
    s = APAScaler(target=0.5, window_s=30.0, max_instances=32)
    assert s.decide(fleet([0.5, 0.5]), T) is None
    d = s.decide(fleet([1.0, 1.0]), T + 15)  # mean of 0.5 and 1.0: ratio 1.5 -> 3 (not 4 from the reading)
    assert d is not None and d.target_instances == 3 and d.details["kv_utilization"] == 0.75
    d = s.decide(fleet([1.0, 1.0]), T + 30)  # T's reading is exactly 30 s old: out
    assert d is not None and d.target_instances == 4 and d.details["kv_utilization"] == 1.0


def test_scale_down_waits_for_the_cooldown_to_its_exact_edge() -> None:
    s = point(target=0.5, scale_down_cooldown_s=300.0)
    assert s.decide(fleet([0.5] * 4), T) is None  # recommendation 4
    low = fleet([0.125] * 4)  # ratio 0.25 -> ceil(1) = 1, limited to floor(4 / 2) = 2
    assert s.decide(low, T + 300.0) is None  # the 4 of T is exactly 300 s old: still counted
    d = s.decide(low, T + 300.5)
    assert d is not None and d.target_instances == 2
    assert d.reason == "apa: highest recommendation over 300s is 2"


def test_the_recommendation_is_from_ready_pods_and_starting_ones_already_count() -> None:
    s = point(target=0.25)
    d = s.decide(fleet([0.75]), T)  # ratio 3 on 1 ready: min(3, ceil(2 x 1)) = 2
    assert d is not None and d.target_instances == 2
    assert s.decide(fleet([0.75], starting=1), T + 15) is None  # 2 wanted, 2 provisioned
    d = s.decide(fleet([0.75, 0.75], starting=1), T + 30)  # 2 ready: min(6, 4) = 4 > 3 provisioned
    assert d is not None and d.target_instances == 4
    assert s.decide(fleet([], starting=2), T + 45) is None  # nothing ready: no metric


def test_defaults_and_parameters() -> None:
    s = APAScaler()
    assert (s.target, s.up_tolerance, s.down_tolerance, s.max_scale_up_rate, s.max_scale_down_rate, s.window_s,
            s.scale_down_cooldown_s, s.interval_s, s.freeze_s, s.min_instances, s.max_instances) == (
        0.5, 0.1, 0.2, 2.0, 2.0, 30.0, 300.0, 15.0, 0.0, 1, 8)
    assert SCALERS["apa"] is APAScaler
    for bad in ({"target": 0.0}, {"target": 1.01}, {"up_tolerance": -0.01}, {"down_tolerance": 1.0},
                {"down_tolerance": -0.01}, {"max_scale_up_rate": 0.99}, {"max_scale_down_rate": 0.99},
                {"window_s": 0.0}, {"scale_down_cooldown_s": -1.0}):
        with pytest.raises(ValueError):
            APAScaler(**bad)  # type: ignore[arg-type]
    ok = APAScaler(target=1.0, up_tolerance=0.0, down_tolerance=0.0, max_scale_up_rate=1.0, max_scale_down_rate=1.0,
                   scale_down_cooldown_s=0.0)
    assert ok.recommend(3, 1.0) == 3 and ok.recommend(3, 0.5) == 3 and ok.recommend(3, 1.0001) == 3
