"""The oracle schedule: instances per window from the future load, started one cold start ahead."""

from __future__ import annotations

import math

import pytest

from streams.policies.engine_profiles import get_preset
from streams.policies.fleet_view import FleetView, InstanceState, InstanceView
from streams.policies.scalers.instance_capacity import capacity_at
from streams.policies.scalers.oracle_schedule_scaler import OracleScheduleScaler

ENGINE = get_preset("llama2-7b-h100")


def fleet(n: int) -> FleetView:
    inst = [InstanceView(f"r{i}", InstanceState.READY, ENGINE.kv_capacity_tokens) for i in range(n)]
    return FleetView("svc", inst, min_instances=1, max_instances=16, cold_start_s=60.0)


def test_it_starts_what_a_future_window_needs_one_cold_start_ahead() -> None:
    cap = capacity_at(ENGINE.cost_model, ENGINE.kv_capacity_tokens, ENGINE.max_num_seqs, 1000, 200, 0.05)
    per_window = 60 * 3.0 / cap.utilisation(1000, 200)  # three instances' worth per second in window 5 only
    arrivals = [(300.0 + 60.0 * k / per_window, 1000, 200) for k in range(int(per_window))]
    arrivals = [(10.0, 1000, 200), *arrivals]  # and one early request
    s = OracleScheduleScaler(scale=1.0, max_instances=16)
    assert s.needs_future
    s.attach_oracle(arrivals)
    assert s.decide(fleet(3), now=100.0) is not None  # nothing needed before t=300 within 100 + 60 + 5: down to 1
    s2 = OracleScheduleScaler(scale=1.0, max_instances=16)
    s2.attach_oracle(arrivals)
    d = s2.decide(fleet(1), now=240.0)  # 240 + 60 s cold start reaches window [300, 360): start now
    assert d is not None and d.target_instances == math.ceil(3.0 - 1e-9)
    s3 = OracleScheduleScaler(scale=1.5, max_instances=16)
    s3.attach_oracle(arrivals)
    d = s3.decide(fleet(1), now=240.0)
    assert d is not None and d.target_instances == 5  # ceil(1.5 x 3)


def test_without_the_future_it_says_so() -> None:
    with pytest.raises(RuntimeError, match="attach_oracle"):
        OracleScheduleScaler().decide(fleet(1), now=0.0)
