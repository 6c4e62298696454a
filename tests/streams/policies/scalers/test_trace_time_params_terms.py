"""Each scaler names the parameters that are trace time (the builder rescales them with a sped-up trace):
every name is a real parameter, and every parameter in seconds is named."""

from __future__ import annotations

import inspect

import pytest

from streams.policies.base_scaler import BaseScaler
from streams.policies.scalers.apa_scaler import APAScaler
from streams.policies.scalers.hpa_scaler import HPAScaler
from streams.policies.scalers.interval_planner_scaler import IntervalPlannerScaler
from streams.policies.scalers.kpa_scaler import KPAScaler
from streams.policies.scalers.oracle_schedule_scaler import OracleScheduleScaler
from streams.policies.scalers.preserve_scaler import PreServeScaler
from streams.policies.scalers.queue_depth_scaler import QueueDepthScaler
from streams.policies.scalers.tod_schedule_scaler import TimeOfDayScheduleScaler

SECONDS_WITHOUT_SUFFIX = {QueueDepthScaler: {"interval", "cooldown"}}


@pytest.mark.parametrize("cls", [APAScaler, HPAScaler, IntervalPlannerScaler, KPAScaler, OracleScheduleScaler, PreServeScaler,
                                 QueueDepthScaler, TimeOfDayScheduleScaler])
def test_trace_time_params_are_the_parameters_in_seconds(cls: type[BaseScaler]) -> None:
    params = set(inspect.signature(cls.__init__).parameters) - {"self", "unknown"}
    in_seconds = {p for p in params if p.endswith("_s") and p not in ("tpot_slo_s", "ttft_slo_s")}
    in_seconds |= SECONDS_WITHOUT_SUFFIX.get(cls, set())
    assert set(cls.TRACE_TIME_PARAMS) == in_seconds
