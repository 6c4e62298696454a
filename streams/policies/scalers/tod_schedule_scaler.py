"""A time-of-day schedule fitted on the previous day: what an operator with a cron job would run.

From the previous day's requests (``preserve eval --history``) it computes, per window, the instances that the
load kept busy (engine profile, the window's own request mix), takes each time-of-day slot's peak window, and
provisions ``headroom`` times that, rounded up, starting each slot's instances one cold start ahead. It never
looks at the day it serves; ``--frontier`` sweeps ``headroom``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from streams.policies.base_scaler import BaseScaler
from streams.policies.engine_profiles import get_preset
from streams.policies.fleet_view import FleetView, ScaleDecision
from streams.policies.policy_registry import register_scaler
from streams.policies.scalers.window_load import instances_per_window

__all__ = ["TimeOfDayScheduleScaler"]


@register_scaler("tod-schedule")
class TimeOfDayScheduleScaler(BaseScaler):
    """:param headroom: multiple of the previous day's slot peak to provision.
    :param slot_s: schedule granularity (an hour). :param period_s: the schedule's period (a day).
    :param window_s: load measurement window within a slot. :param engine: engine profile.
    :param tpot_slo_s: TPOT SLO (the operating batch keeps decode steps under half of it).
    :param cold_start_s: start-up delay to plan ahead for (default: the fleet view's, else the profile's).
    """

    TRACE_TIME_PARAMS = ("slot_s", "period_s", "window_s", "cold_start_s", "interval_s")

    def __init__(self, headroom: float = 1.2, slot_s: float = 3600.0, period_s: float = 86_400.0,
                 window_s: float = 60.0, engine: str = "llama2-7b-h100", tpot_slo_s: float = 0.1,
                 cold_start_s: float | None = None, min_instances: int = 1, max_instances: int = 8,
                 interval_s: float = 5.0) -> None:
        super().__init__(min_instances, max_instances, 0.0, interval_s)  # a schedule needs no freeze
        if headroom <= 0 or not 0 < window_s <= slot_s <= period_s:
            raise ValueError("tod-schedule needs headroom > 0 and 0 < window_s <= slot_s <= period_s")
        self.headroom, self.slot_s, self.period_s, self.window_s = headroom, slot_s, period_s, window_s
        self.engine = get_preset(engine)
        self.tpot_target_s = tpot_slo_s / 2
        self.cold_start_s = cold_start_s
        self.counts: list[int] = []

    @property
    def needs_history(self) -> bool:
        return True

    def attach_history(self, arrivals: Sequence[tuple[float, int, int]]) -> None:
        busy = instances_per_window(arrivals, self.window_s, self.engine, self.tpot_target_s)
        slots = max(1, round(self.period_s / self.slot_s))
        peak = [0.0] * slots
        for w, u in enumerate(busy):
            k = self._slot(w * self.window_s)
            peak[k] = max(peak[k], u)
        self.counts = [math.ceil(self.headroom * u - 1e-9) for u in peak]

    def _slot(self, t: float) -> int:
        return int((t % self.period_s) // self.slot_s) % max(1, round(self.period_s / self.slot_s))

    def _decide(self, fleet: FleetView, now: float) -> ScaleDecision | None:
        if not self.counts:
            raise RuntimeError("tod-schedule has no schedule: give it the previous day (preserve eval --history)")
        cold = self.cold_start_s if self.cold_start_s is not None else (fleet.cold_start_s or self.engine.cold_start_s)
        need = max(self.counts[self._slot(now)], self.counts[self._slot(now + cold + self.interval_s)])
        current = fleet.provisioned
        if need == current:
            return None
        return ScaleDecision(need, f"time-of-day schedule: {need} in slot {self._slot(now)}")
