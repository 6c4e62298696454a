"""KPA rules at their exact edges: the windows (a sample exactly a window old is out), the panic threshold
(reaching it panics), leaving panic exactly a stable window later, the halving limit, what counts as
concurrency, parameters. 7 requests per instance (concurrency 10 x 0.7)."""

from __future__ import annotations

import pytest

from streams.policies.fleet_view import FleetView, InstanceState, InstanceView
from streams.policies.scalers.kpa_scaler import KPAScaler

T = 6000.0


def fleet(inflight: list[int], starting: int = 0, starting_load: int = 0) -> FleetView:
    inst = [InstanceView(f"r{i}", InstanceState.READY, 1000, running=n) for i, n in enumerate(inflight)]
    inst += [InstanceView(f"s{i}", InstanceState.STARTING, 1000, waiting=starting_load) for i in range(starting)]
    return FleetView("svc", inst, min_instances=1, max_instances=32)


def kpa(**kw: float) -> KPAScaler:
    return KPAScaler(**{"concurrency": 10.0, "utilization": 0.7, "stable_s": 60.0, "max_instances": 32, **kw})  # type: ignore[arg-type]


def test_stable_desire_is_the_window_mean_over_per_instance_concurrency() -> None:
    s = kpa()
    d = s.decide(fleet([14, 14]), T)  # 28 / 7 = 4 exactly
    assert d is not None and d.target_instances == 4 and d.reason == "kpa panic: concurrency -> 4"
    assert d.details == {"stable_desire": 4.0, "panic_desire": 4.0, "panic": 1.0}
    calm = kpa()
    d = calm.decide(fleet([10, 11]), T)  # 21 / 7 = 3 < 2 x 2: no panic
    assert d is not None and d.target_instances == 3 and d.reason == "kpa stable: concurrency -> 3"
    assert d.details == {"stable_desire": 3.0, "panic_desire": 3.0, "panic": 0.0}


def test_waiting_requests_and_starting_instances_count_as_concurrency() -> None:
    s = kpa()
    d = s.decide(fleet([7], starting=1, starting_load=14), T)  # 21 in flight -> 3; 3 < 2 x 1 ready? no: panic
    assert d is not None and d.target_instances == 3


def test_a_sample_exactly_a_window_old_has_left() -> None:
    s = kpa(stable_s=10.0, panic_share=1.0)
    s.decide(fleet([70]), T)  # panic: 10 -> scale to 10
    d = s.decide(fleet([0] * 10), T + 10.0)  # the first sample is exactly 10 s old: gone; panic ended at T + 10
    assert d is not None and d.target_instances == 5  # stable desire 0, at most halving
    assert d.details["panic"] == 0.0


def test_reaching_the_panic_threshold_panics() -> None:
    s = kpa()
    for k in range(20):
        s.decide(fleet([7]), T + 2 * k)
    d = s.decide(fleet([7 * 3 * 2 - 7 * 2]), T + 40)  # panic window mean (7 + 7 + 28) / 3 = 14 -> 2 = 2 x 1
    assert d is not None and d.details["panic"] == 1.0 and d.target_instances == 2


def test_panic_ends_exactly_a_stable_window_after_the_last_signal() -> None:
    s = kpa(stable_s=20.0)
    s.decide(fleet([28]), T)  # panic until T + 20, desire 4
    quiet = fleet([0, 0, 0, 0])
    for t in range(2, 20, 2):
        assert s.decide(quiet, T + t) is None  # in panic: never below the current 4
    d = s.decide(quiet, T + 20.0)
    assert d is not None and d.target_instances == 2 and d.details["panic"] == 0.0


def test_no_ready_instance_counts_as_one_for_the_panic_threshold() -> None:
    s = kpa()
    d = s.decide(fleet([], starting=1, starting_load=14), T)  # 14 / 7 = 2 >= 2 x max(1, 0)
    assert d is not None and d.details["panic"] == 1.0 and d.target_instances == 2


def test_halving_limit_rounds_up() -> None:
    s = kpa(stable_s=2.0)
    d = s.decide(fleet([0] * 5), T)
    assert d is not None and d.target_instances == 3  # ceil(5 / 2)


def test_defaults_and_parameters() -> None:
    s = KPAScaler()
    assert (s.per_instance, s.stable_s, s.panic_s, s.panic_threshold, s.interval_s, s.freeze_s, s.min_instances,
            s.max_instances) == pytest.approx((22.4, 60.0, 6.0, 2.0, 2.0, 0.0, 1, 8))
    for bad in ({"concurrency": 0.0}, {"utilization": 0.0}, {"utilization": 1.01}, {"stable_s": 0.0},
                {"panic_share": 0.0}, {"panic_share": 1.01}):
        with pytest.raises(ValueError):
            KPAScaler(**bad)
    assert KPAScaler(utilization=1.0, panic_share=1.0).panic_s == 60.0


def test_a_desire_a_rounding_error_above_a_whole_number_is_that_number() -> None:
    s = KPAScaler(concurrency=12.0, utilization=0.3, max_instances=32)  # 3.5999999999999996 per instance
    d = s.decide(fleet([18]), T)  # 18 / 3.5999999999999996 = 5.000000000000001: 5 instances, not 6
    assert d is not None and d.target_instances == 5 and d.details["panic_desire"] == 5.0
    assert d.details["stable_desire"] == 5.0
