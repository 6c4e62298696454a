"""The window-load sizing, the time-of-day schedule and the interval planner, rule by rule: windows by
``t // w``, each at its own mix, slots folded over the period with their peak window, the look-ahead slot, the
planner's reset each interval and its prediction fallback, parameters at their edges."""

from __future__ import annotations

import math

import pytest

from streams.policies.engine_profiles import get_preset
from streams.policies.fleet_view import FleetView, InstanceState, InstanceView, RequestInfo
from streams.policies.scalers.instance_capacity import capacity_at
from streams.policies.scalers.interval_planner_scaler import IntervalPlannerScaler
from streams.policies.scalers.tod_schedule_scaler import TimeOfDayScheduleScaler
from streams.policies.scalers.window_load import instances_for, instances_per_window

E = get_preset("llama2-7b-h100")


def fleet(n: int, cold: float = 10.0) -> FleetView:
    inst = [InstanceView(f"r{i}", InstanceState.READY, E.kv_capacity_tokens) for i in range(n)]
    return FleetView("svc", inst, min_instances=1, max_instances=32, cold_start_s=cold)


def busy(reqs: int, prompt: int, out: int, window_s: float, tpot: float = 0.05) -> float:
    cap = capacity_at(E.cost_model, E.kv_capacity_tokens, E.max_num_seqs, prompt, out, tpot)
    return cap.utilisation(reqs * prompt / window_s, reqs * out / window_s)


# ----------------------------------------------------------------- window load
def test_instances_for_a_window_at_its_own_mix() -> None:
    assert instances_for(E, 0.05, 50.0, 0, 1000.0, 100.0) == 0.0
    assert instances_for(E, 0.05, 50.0, 400, 400 * 2000.0, 400 * 100.0) == pytest.approx(busy(400, 2000, 100, 50.0))
    assert instances_for(E, 0.05, 50.0, 400, 400 * 2000.0, 400 * 100.0) != instances_for(
        E, 0.05, 25.0, 400, 400 * 2000.0, 400 * 100.0)


def test_instances_per_window_bins_by_floor_and_keeps_empty_windows() -> None:
    assert instances_per_window([], 50.0, E, 0.05) == []
    arrivals = [(0.0, 1000, 100), (49.999, 1000, 100), (150.0, 3000, 10), (199.0, 3000, 10)]
    got = instances_per_window(arrivals, 50.0, E, 0.05)
    assert len(got) == 4 and got[1] == 0.0 and got[2] == 0.0  # 100..150 and the window starting at 100
    assert got[0] == pytest.approx(busy(2, 1000, 100, 50.0))
    assert got[3] == pytest.approx(busy(2, 3000, 10, 50.0))


# ----------------------------------------------------------------- time-of-day schedule
HEAVY = [(150.0 + k * 0.05, 2000, 100) for k in range(1000)]  # window [150, 200) of slot 1
MEDIUM = [(300.0 + k * 0.2, 500, 400) for k in range(250)]  # window [300, 350) of slot 3
TAIL = [(700.0 + k * 0.1, 500, 400) for k in range(500)]  # the next period's slot 3, window [700, 750)


def tod(**kw: float) -> TimeOfDayScheduleScaler:
    s = TimeOfDayScheduleScaler(**{"slot_s": 100.0, "period_s": 400.0, "window_s": 50.0, "max_instances": 32,
                                   "headroom": 1.0, "cold_start_s": 10.0, **kw})  # type: ignore[arg-type]
    s.attach_history([*HEAVY, *MEDIUM, *TAIL])
    return s


def test_each_slot_takes_its_peak_window_over_the_period() -> None:
    s = tod()
    heavy = math.ceil(busy(1000, 2000, 100, 50.0) - 1e-9)
    tail = math.ceil(busy(500, 500, 400, 50.0) - 1e-9)  # slot 3 of the second period beats its first
    assert s.counts == [0, heavy, 0, tail] and heavy != tail and tail > math.ceil(busy(250, 500, 400, 50.0))
    s2 = tod(headroom=1.5)
    assert s2.counts == [0, math.ceil(1.5 * busy(1000, 2000, 100, 50.0) - 1e-9), 0,
                         math.ceil(1.5 * busy(500, 500, 400, 50.0) - 1e-9)]


def test_the_schedule_looks_one_cold_start_and_interval_ahead() -> None:
    s = tod()
    heavy = s.counts[1]
    assert s.decide(fleet(1), 84.0) is None  # 84 + 10 + 5 = 99: still slot 0 (0 -> min 1)
    d = s.decide(fleet(1), 85.0)  # 100: slot 1 starts within the look-ahead
    assert d is not None and d.target_instances == heavy and d.reason == f"time-of-day schedule: {heavy} in slot 0"
    d = s.decide(fleet(heavy), 185.0 + 400.0)  # the next period: slot 1 now, slot 2 ahead: keep the max
    assert d is None
    d = s.decide(fleet(heavy), 200.0)  # slot 2 and its look-ahead: nothing
    assert d is not None and d.target_instances == 1


def test_cold_start_from_the_fleet_or_the_profile() -> None:
    s = tod(cold_start_s=None)
    assert s.decide(fleet(1, cold=11.0), 84.0) is not None  # 84 + 11 + 5 = 100
    assert s.decide(fleet(1, cold=0.0), 435.0) is not None  # the profile's 60 s: 435 + 60 + 5 = 500 (slot 1)


def test_tod_parameters() -> None:
    with pytest.raises(RuntimeError, match="history"):
        TimeOfDayScheduleScaler().decide(fleet(1), 0.0)
    for bad in ({"headroom": 0.0}, {"window_s": 0.0}, {"window_s": 101.0, "slot_s": 100.0},
                {"slot_s": 500.0, "period_s": 400.0}):
        with pytest.raises(ValueError):
            TimeOfDayScheduleScaler(**bad)  # type: ignore[arg-type]
    edge = TimeOfDayScheduleScaler(window_s=100.0, slot_s=100.0, period_s=100.0)
    assert edge.needs_history and edge.tpot_target_s == 0.05
    d = TimeOfDayScheduleScaler()
    assert (d.headroom, d.slot_s, d.period_s, d.window_s, d.cold_start_s, d.interval_s, d.freeze_s, d.min_instances,
            d.max_instances) == (1.2, 3600.0, 86_400.0, 60.0, None, 5.0, 0.0, 1, 8)
    assert TimeOfDayScheduleScaler(window_s=0.5).window_s == 0.5


# ----------------------------------------------------------------- interval planner
def test_planner_sizes_the_last_interval_and_starts_afresh() -> None:
    s = IntervalPlannerScaler(adjustment_s=30.0, target_util=0.5, max_instances=32)
    for k in range(600):
        s.observe_arrival(RequestInfo(f"r{k}", "svc", k * 0.05, 2000, 100.0, 300.0), now=k * 0.05)
    expected = busy(600, 2000, 100, 30.0)
    d = s.decide(fleet(1), 30.0)
    assert d is not None and d.target_instances == math.ceil(expected / 0.5 - 1e-9)
    assert d.details == {"busy_instances": pytest.approx(expected)}
    assert d.reason == f"interval planner: last interval kept {expected:.2f} instances busy"
    d = s.decide(fleet(d.target_instances), 60.0)  # nothing arrived since: back to min
    assert d is not None and d.target_instances == 1 and d.details == {"busy_instances": 0.0}
    assert s.decide(fleet(1), 90.0) is None


def test_planner_uses_the_p90_when_there_is_no_mean_prediction() -> None:
    s = IntervalPlannerScaler(adjustment_s=30.0, target_util=1.0, max_instances=32)
    for k in range(600):
        s.observe_arrival(RequestInfo(f"r{k}", "svc", k * 0.05, 500, 0.0, 400.0), now=k * 0.05)
    d = s.decide(fleet(1), 30.0)
    assert d is not None and d.details["busy_instances"] == pytest.approx(busy(600, 500, 400, 30.0))


def test_planner_parameters() -> None:
    for bad in ({"adjustment_s": 0.0}, {"target_util": 0.0}, {"target_util": 1.01}):
        with pytest.raises(ValueError):
            IntervalPlannerScaler(**bad)  # type: ignore[arg-type]
    d = IntervalPlannerScaler()
    assert (d.interval_s, d.target_util, d.tpot_target_s, d.freeze_s, d.min_instances, d.max_instances) == (
        60.0, 0.8, 0.05, 0.0, 1, 8)
    s = IntervalPlannerScaler(min_instances=3, max_instances=8)
    assert s.decide(fleet(3), 60.0) is None  # nothing arrived: min_instances


def test_planner_counts_start_from_zero_each_interval() -> None:
    s = IntervalPlannerScaler(adjustment_s=30.0, min_instances=0, max_instances=32)
    s.observe_arrival(RequestInfo("a", "svc", 0.0, 5000, 50.0, 50.0), now=0.0)
    s.decide(fleet(1), 30.0)
    s.observe_arrival(RequestInfo("b", "svc", 31.0, 10, 0.0, 0.0), now=31.0)  # one tiny request, no prediction
    d = s.decide(fleet(2), 60.0)
    assert d is not None and d.details["busy_instances"] == pytest.approx(instances_for(E, 0.05, 30.0, 1, 10.0, 0.0))
    assert d.target_instances == 1
    d = s.decide(fleet(1), 90.0)  # nothing at all: zero instances when min_instances allows it
    assert d is not None and d.target_instances == 0 and d.details == {"busy_instances": 0.0}
