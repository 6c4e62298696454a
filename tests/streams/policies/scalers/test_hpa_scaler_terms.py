"""HPA rules at their exact edges: the tolerance band, the scale-up limit's two branches, the stabilisation
window to its edge, what counts as current, parameters. KV shares are binary-exact (9/16 etc.)."""

from __future__ import annotations

import pytest

from streams.policies.fleet_view import FleetView, InstanceState, InstanceView
from streams.policies.scalers.hpa_scaler import HPAScaler

CAP = 100_000
T = 3000.0


def fleet(kv_shares: list[float], starting: int = 0) -> FleetView:
    inst = [InstanceView(f"r{i}", InstanceState.READY, CAP, kv_used_tokens=int(u * CAP)) for i, u in enumerate(kv_shares)]
    inst += [InstanceView(f"s{i}", InstanceState.STARTING, CAP) for i in range(starting)]
    return FleetView("svc", inst, min_instances=1, max_instances=32)


def test_the_tolerance_band_is_inclusive() -> None:
    s = HPAScaler(target=0.5, tolerance=0.125, max_instances=32)
    assert s.decide(fleet([0.5625, 0.5625]), T) is None  # ratio 1.125: exactly at the band's edge
    d = s.decide(fleet([0.5625, 0.5626]), T + 15)
    assert d is not None and d.target_instances == 3
    assert s.decide(fleet([0.4375, 0.4375, 0.4375, 0.4375]), T + 30) is None  # 0.875: the lower edge
    zero = HPAScaler(target=0.5, tolerance=0.0, max_instances=32, stabilization_s=0.0)
    d = zero.decide(fleet([0.25, 0.25, 0.25, 0.25]), T)  # ratio 0.5 -> ceil(4 x 0.5) = 2
    assert d is not None and d.target_instances == 2


def test_desired_is_proportional_and_reported() -> None:
    s = HPAScaler(target=0.5, max_instances=32)
    d = s.decide(fleet([0.75, 0.75]), T)  # ratio 1.5: exactly 3
    assert d is not None and d.target_instances == 3
    assert d.details == {"kv_utilization": 0.75, "ratio": 1.5, "desired": 3.0}
    assert d.reason == "hpa: kv 0.75 / target 0.5 -> 3"


def test_the_scale_up_limit_is_double_or_plus_four_whichever_is_more() -> None:
    one = HPAScaler(target=0.0625, max_instances=32)
    d = one.decide(fleet([1.0]), T)  # wants 16; limit max(2, 5) = 5
    assert d is not None and d.target_instances == 5
    six = HPAScaler(target=0.125, max_instances=32)
    d = six.decide(fleet([1.0] * 6), T)  # wants 48; limit max(12, 10) = 12
    assert d is not None and d.target_instances == 12


def test_starting_instances_count_in_current_but_not_in_use() -> None:
    s = HPAScaler(target=0.5, max_instances=32, stabilization_s=0.0)
    d = s.decide(fleet([0.75], starting=3), T)  # 0.75 / 4 / 0.5 = 0.375 -> ceil(1.5) = 2
    assert d is not None and d.target_instances == 2
    assert s.decide(fleet([], starting=2), T + 15) is None  # nothing ready: no metric


def test_scale_down_waits_for_the_window_to_its_exact_edge() -> None:
    s = HPAScaler(target=0.5, stabilization_s=300.0)
    assert s.decide(fleet([0.5] * 4), T) is None
    low = fleet([0.125] * 4)  # ratio 0.25 -> 1
    assert s.decide(low, T + 300.0) is None  # the 4 of T is exactly 300 s old: still counted
    d = s.decide(low, T + 300.5)
    assert d is not None and d.target_instances == 1
    assert d.reason == "hpa: highest recommendation over 300s is 1"


def test_defaults_and_parameters() -> None:
    s = HPAScaler()
    assert (s.target, s.tolerance, s.stabilization_s, s.interval_s, s.freeze_s, s.min_instances, s.max_instances) == (
        0.7, 0.1, 300.0, 15.0, 0.0, 1, 8)
    for bad in ({"target": 0.0}, {"target": 1.01}, {"tolerance": -0.01}, {"stabilization_s": -1.0}):
        with pytest.raises(ValueError):
            HPAScaler(**bad)
    assert HPAScaler(target=1.0, tolerance=0.0, stabilization_s=0.0).target == 1.0
