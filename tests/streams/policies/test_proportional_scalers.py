"""Kubernetes HPA and Knative KPA baselines: exact decisions of their documented algorithms."""

from __future__ import annotations

from streams.policies.fleet_view import FleetView, InstanceState, InstanceView
from streams.policies.scalers.hpa_scaler import HPAScaler
from streams.policies.scalers.kpa_scaler import KPAScaler

CAP = 100_000


def fleet(kv_shares: list[float], starting: int = 0, inflight: list[int] | None = None) -> FleetView:
    loads = inflight or [0] * len(kv_shares)
    inst = [InstanceView(f"r{i}", InstanceState.READY, CAP, running=loads[i], kv_used_tokens=int(u * CAP))
            for i, u in enumerate(kv_shares)]
    inst += [InstanceView(f"s{i}", InstanceState.STARTING, CAP) for i in range(starting)]
    return FleetView("svc", inst, min_instances=1, max_instances=16)


def test_hpa_is_proportional_with_tolerance() -> None:
    s = HPAScaler(target=0.5, max_instances=16)
    assert s.decide(fleet([0.54, 0.54]), now=1000.0) is None  # ratio 1.08: within the 10% tolerance
    d = s.decide(fleet([0.9, 0.9]), now=1015.0)
    assert d is not None and d.target_instances == 4  # ceil(2 x 0.9 / 0.5) = 4, not a +1 step


def test_hpa_counts_starting_pods_as_idle_and_caps_a_scale_up() -> None:
    s = HPAScaler(target=0.5, max_instances=16)
    d = s.decide(fleet([1.0, 1.0], starting=2), now=1000.0)  # (1+1+0+0)/4 = 0.5: on target
    assert d is None
    d = s.decide(fleet([1.0]), now=1015.0)  # ceil(1 x 1.0 / 0.5) = 2
    assert d is not None and d.target_instances == 2
    big = HPAScaler(target=0.1, max_instances=64)
    d = big.decide(fleet([1.0] * 3), now=1000.0)  # 30 wanted; at most max(2 x 3, 3 + 4) = 7 per period
    assert d is not None and d.target_instances == 7


def test_hpa_scales_down_only_to_the_highest_recommendation_of_its_window() -> None:
    s = HPAScaler(target=0.5, stabilization_s=300.0)
    f = fleet([0.5] * 4)
    assert s.decide(f, now=1000.0) is None  # recommendation 4
    low = fleet([0.1] * 4)  # recommendation ceil(4 x 0.2) = 1
    assert s.decide(low, now=1150.0) is None  # 4 is still in the window
    d = s.decide(low, now=1301.0)  # the 4 of t=1000 left the window; 1150's and 1301's are 1
    assert d is not None and d.target_instances == 1


def test_kpa_stable_mode_averages_concurrency_over_the_window() -> None:
    s = KPAScaler(concurrency=10, utilization=0.7, stable_s=60.0)  # 7 requests per instance
    for t in range(0, 60, 2):
        d = s.decide(fleet([0.1, 0.1], inflight=[7, 7]), now=1000.0 + t)
        assert d is None  # 14 in flight / 7 = 2 instances: as provisioned
    d = s.decide(fleet([0.1, 0.1], inflight=[10, 11]), now=1060.0)  # mean (29 x 14 + 21) / 30 = 14.2 -> 3
    assert d is not None and d.target_instances == 3 and "stable" in d.reason


def test_kpa_panics_on_a_burst_and_does_not_scale_down_in_panic() -> None:
    s = KPAScaler(concurrency=10, utilization=0.7, stable_s=60.0)
    for t in range(0, 54, 2):
        s.decide(fleet([0.1], inflight=[3]), now=1000.0 + t)
    burst = fleet([0.1], inflight=[40])
    d = s.decide(burst, now=1054.0)  # 6 s panic window (t > 1048): (3 + 3 + 40) / 3 / 7 -> 3 >= 2 x 1 ready
    assert d is not None and d.target_instances == 3 and "panic" in d.reason
    d = s.decide(burst, now=1056.0)  # (3 + 40 + 40) / 3 / 7 -> 4
    assert d is not None and d.target_instances == 4
    calm = fleet([0.1] * 4, inflight=[1] * 4)
    for t in range(1058, 1116, 2):  # within a stable window of the last panic signal: no scale-down
        assert s.decide(calm, now=float(t)) is None
    d = s.decide(calm, now=1116.0)  # out of panic: stable desire ceil(4 / 7) = 1, at most halving: 2
    assert d is not None and d.target_instances == 2 and "stable" in d.reason
