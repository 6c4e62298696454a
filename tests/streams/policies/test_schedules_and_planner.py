"""The time-of-day schedule fitted on the previous day, and the interval planner: exact decisions."""

from __future__ import annotations

import math

import pytest

from streams.policies.engine_profiles import get_preset
from streams.policies.fleet_view import FleetView, InstanceState, InstanceView, RequestInfo
from streams.policies.scalers.interval_planner_scaler import IntervalPlannerScaler
from streams.policies.scalers.tod_schedule_scaler import TimeOfDayScheduleScaler
from streams.policies.scalers.window_load import instances_for

ENGINE = get_preset("llama2-7b-h100")


def fleet(n: int, cold: float = 60.0) -> FleetView:
    inst = [InstanceView(f"r{i}", InstanceState.READY, ENGINE.kv_capacity_tokens) for i in range(n)]
    return FleetView("svc", inst, min_instances=1, max_instances=16, cold_start_s=cold)


def busy_rate(instances: float) -> float:
    """Requests/s of 1000-token prompts and 200-token outputs that keep ``instances`` busy."""
    return instances / instances_for(ENGINE, 0.05, 1.0, 1, 1000, 200)


def day(hour_to_instances: dict[int, float]) -> list[tuple[float, int, int]]:
    out = []
    for hour, inst in hour_to_instances.items():
        rate = busy_rate(inst)
        out += [(hour * 3600 + 600 + k / rate, 1000, 200) for k in range(int(60 * rate))]  # one busy minute
    return sorted(out)


def test_tod_schedule_provisions_each_hour_for_the_previous_days_peak_ahead_of_time() -> None:
    s = TimeOfDayScheduleScaler(headroom=1.0, max_instances=16)
    assert s.needs_history
    with pytest.raises(RuntimeError, match="--history"):
        s.decide(fleet(1), now=0.0)
    s.attach_history(day({9: 3.0, 10: 5.0}))
    assert s.counts[9] == 3 and s.counts[10] == 5 and s.counts[3] == 0
    d = s.decide(fleet(1), now=9 * 3600 + 100.0)  # in slot 9: the day before needed 3
    assert d is not None and d.target_instances == 3
    d = s.decide(fleet(3), now=10 * 3600 - 30.0)  # 30 s before slot 10 (cold start 60 s): start slot 10's now
    assert d is not None and d.target_instances == 5
    d = s.decide(fleet(5), now=2 * 86_400 + 3 * 3600.0)  # two days later, 3 am: nothing the day before
    assert d is not None and d.target_instances == 1  # min_instances


def test_interval_planner_provisions_for_the_last_interval_through_the_profile() -> None:
    s = IntervalPlannerScaler(adjustment_s=60.0, target_util=0.8, max_instances=16)
    rate = busy_rate(2.0)
    for k in range(int(60 * rate)):
        s.observe_arrival(RequestInfo(f"r{k}", "svc", k / rate, 1000, 200.0, 300.0), now=k / rate)
    d = s.decide(fleet(1), now=60.0)
    assert d is not None and d.target_instances == math.ceil(d.details["busy_instances"] / 0.8 - 1e-9) == 3
    assert s.decide(fleet(3), now=120.0) is not None  # an idle interval: back to min_instances
