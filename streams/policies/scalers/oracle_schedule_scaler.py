"""The oracle schedule: whole instances, sized window by window from the trace's *future* arrivals.

The lower bound a comparison measures against (offline only: it reads the future through ``attach_oracle``).
For each window it knows the prompt and generated tokens that will arrive, turns them into instances with the
engine profile's per-instance capacity at the window's own request mix, multiplies by ``scale`` and rounds up,
and starts them one cold start ahead. ``preserve eval --frontier`` sweeps ``scale``; the cheapest run that
meets the SLO is the bound (rows of kind ``oracle``), so no guess of head room is built in.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence

from streams.policies.base_scaler import BaseScaler
from streams.policies.engine_profiles import get_preset
from streams.policies.fleet_view import FleetView, ScaleDecision
from streams.policies.policy_registry import register_scaler
from streams.policies.scalers.window_load import instances_per_window

__all__ = ["OracleScheduleScaler"]


@register_scaler("oracle-schedule")
class OracleScheduleScaler(BaseScaler):
    """:param scale: multiple of the future load's instances to provision (swept by the frontier).
    :param window_s: schedule granularity. :param engine: engine profile. :param tpot_slo_s: TPOT SLO, whose
    half the operating batch keeps decode steps under (as PreServe's capacity model).
    :param cold_start_s: start-up delay to plan ahead for (default: the fleet view's, else the profile's).
    """

    TRACE_TIME_PARAMS = ("window_s", "cold_start_s", "interval_s")

    def __init__(self, scale: float = 1.0, window_s: float = 60.0, engine: str = "llama2-7b-h100",
                 tpot_slo_s: float = 0.1, cold_start_s: float | None = None, min_instances: int = 1,
                 max_instances: int = 8, interval_s: float = 5.0) -> None:
        super().__init__(min_instances, max_instances, 0.0, interval_s)  # a schedule needs no freeze
        if scale <= 0 or window_s <= 0:
            raise ValueError(f"oracle-schedule needs scale > 0 and window_s > 0, got {scale}, {window_s}")
        self.scale, self.window_s, self.tpot_target_s = scale, window_s, tpot_slo_s / 2
        self.engine = get_preset(engine)
        self.cold_start_s = cold_start_s
        self._starts: list[float] = []
        self._counts: list[int] = []

    @property
    def needs_future(self) -> bool:
        return True

    def attach_oracle(self, arrivals: Sequence[tuple[float, int, int]]) -> None:
        busy = instances_per_window(arrivals, self.window_s, self.engine, self.tpot_target_s)
        self._starts = [w * self.window_s for w in range(len(busy))]
        self._counts = [math.ceil(self.scale * u - 1e-9) for u in busy]

    def _needed(self, t0: float, t1: float) -> int:
        """The most instances any window overlapping [t0, t1] needs."""
        i = max(0, bisect.bisect_right(self._starts, t0) - 1)
        j = bisect.bisect_right(self._starts, t1)
        return max(self._counts[i:j], default=0)

    def _decide(self, fleet: FleetView, now: float) -> ScaleDecision | None:
        if not self._counts:
            raise RuntimeError("oracle-schedule without attach_oracle(): only `preserve eval` has the future")
        cold = self.cold_start_s if self.cold_start_s is not None else (fleet.cold_start_s or self.engine.cold_start_s)
        # what must be up from now until an instance started now is ready, and what the window then needs
        need = self._needed(now, now + cold + self.interval_s)
        current = fleet.provisioned
        if need > current:
            return ScaleDecision(need, f"oracle schedule: {need} for [{now:.0f}, {now + cold:.0f}] s")
        if need < current:
            return ScaleDecision(need, f"oracle schedule: {need} from now on")
        return None
