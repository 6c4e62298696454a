"""Oracle schedule rules at their edges: windows by ``t // window``, each sized at its own request mix, empty
windows, the look-ahead reaching a window exactly at its start, the cold start's three sources, scale-down to
the schedule, parameters. Windows of 30 s away from the origin."""

from __future__ import annotations

import math

import pytest

from streams.policies.engine_profiles import get_preset
from streams.policies.fleet_view import FleetView, InstanceState, InstanceView
from streams.policies.scalers.instance_capacity import capacity_at
from streams.policies.scalers.oracle_schedule_scaler import OracleScheduleScaler

E = get_preset("llama2-7b-h100")
W = 30.0
B = 3000.0  # window 100


def fleet(n: int, cold: float = 20.0) -> FleetView:
    inst = [InstanceView(f"r{i}", InstanceState.READY, E.kv_capacity_tokens) for i in range(n)]
    return FleetView("svc", inst, min_instances=1, max_instances=32, cold_start_s=cold)


def instances(n_req: int, prompt: int, out: int, scale: float = 1.0, tpot: float = 0.05) -> int:
    cap = capacity_at(E.cost_model, E.kv_capacity_tokens, E.max_num_seqs, prompt, out, tpot)
    return math.ceil(scale * cap.utilisation(n_req * prompt / W, n_req * out / W) - 1e-9)


def burst(t0: float, n: int, prompt: int, out: int) -> list[tuple[float, int, int]]:
    return [(t0 + k * (W / n), prompt, out) for k in range(n)]


ARRIVALS = [(10.0, 100, 10), *burst(B, 450, 2000, 100), *burst(B + 2 * W, 1500, 500, 400)]


def scaler(**kw: float) -> OracleScheduleScaler:
    s = OracleScheduleScaler(**{"window_s": W, "max_instances": 32, **kw})  # type: ignore[arg-type]
    s.attach_oracle(ARRIVALS)
    return s


def test_each_window_is_sized_at_its_own_mix() -> None:
    a, b = instances(450, 2000, 100), instances(1500, 500, 400)
    assert (a, b) == (2, 6)
    s = scaler()
    d = s.decide(fleet(1), B - 25.0)  # looks to B - 25 + 20 + 5 = B: reaches window 100 at its start
    assert d is not None and d.target_instances == a and d.reason == f"oracle schedule: {a} for [2975, 2995] s"
    assert s.decide(fleet(a), B - 25.0) is None
    assert s.decide(fleet(a), B + W + 4.5) is not None  # [B + 34.5, B + 59.5]: window 101 (empty) only
    d = s.decide(fleet(a), B + W + 5.0)  # [B + 35, B + 60]: window 102 exactly at its start
    assert d is not None and d.target_instances == b


def test_the_look_ahead_stops_short_of_a_later_window() -> None:
    s = scaler()
    d = s.decide(fleet(3), B - 25.5)  # [B - 25.5, B - 0.5]: only the quiet windows before B
    assert d is not None and d.target_instances == 1 and d.reason == "oracle schedule: 0 from now on"


def test_an_empty_window_needs_nothing() -> None:
    s = scaler(interval_s=1.0, cold_start_s=1.0)
    d = s.decide(fleet(3), B + W + 1.0)  # window 101 only: no arrivals
    assert d is not None and d.target_instances == 1  # min_instances (the schedule says 0)


def test_scale_multiplies_before_rounding() -> None:
    s = scaler(scale=1.5)
    d = s.decide(fleet(1), B)
    assert d is not None and d.target_instances == instances(450, 2000, 100, scale=1.5) == 3


def test_tpot_slo_sets_the_operating_batch() -> None:
    s = scaler(tpot_slo_s=0.04)
    d = s.decide(fleet(1), B + 2 * W)
    assert d is not None and d.target_instances == instances(1500, 500, 400, tpot=0.02) == 8


def test_cold_start_from_the_parameter_then_the_fleet_then_the_profile() -> None:
    assert scaler(cold_start_s=25.0).decide(fleet(1, cold=0.0), B - 30.0) is not None  # reaches B
    assert scaler(cold_start_s=24.0).decide(fleet(1, cold=100.0), B - 30.0) is None  # stops at B - 1
    assert scaler().decide(fleet(1, cold=25.0), B - 30.0) is not None
    assert scaler().decide(fleet(1, cold=24.0), B - 30.0) is None
    far = scaler()  # the profile's 60 s from B - 65: reaches B
    assert far.decide(fleet(1, cold=0.0), B - 65.0) is not None


def test_no_future_and_parameters() -> None:
    s = OracleScheduleScaler()
    s.attach_oracle([])
    with pytest.raises(RuntimeError, match="attach_oracle"):
        s.decide(fleet(1), 0.0)
    for bad in ({"scale": 0.0}, {"window_s": 0.0}):
        with pytest.raises(ValueError):
            OracleScheduleScaler(**bad)
    d = OracleScheduleScaler()
    assert (d.scale, d.window_s, d.tpot_target_s, d.cold_start_s, d.interval_s, d.freeze_s, d.min_instances,
            d.max_instances, d.needs_future) == (1.0, 60.0, 0.05, None, 5.0, 0.0, 1, 8, True)
