"""An interval planner in the style of NVIDIA Dynamo's SLA planner: every adjustment interval, provision for the
previous interval's observed load through the profiled per-instance capacity (no forecast, no queue signal).

Each interval it sums the prompt and generated tokens of the requests that arrived in it, turns them into busy
instances with the engine profile at that interval's request mix, and asks for ``ceil(busy / target_util)``.
"""

from __future__ import annotations

import math

from streams.policies.base_scaler import BaseScaler
from streams.policies.engine_profiles import get_preset
from streams.policies.fleet_view import FleetView, RequestInfo, ScaleDecision
from streams.policies.policy_registry import register_scaler
from streams.policies.scalers.window_load import instances_for

__all__ = ["IntervalPlannerScaler"]


@register_scaler("interval-planner")
class IntervalPlannerScaler(BaseScaler):
    """:param adjustment_s: planning interval (Dynamo's ``adjustment-interval``).
    :param target_util: utilisation an instance is planned for. :param engine: engine profile.
    :param tpot_slo_s: TPOT SLO (the operating batch keeps decode steps under half of it).
    """

    TRACE_TIME_PARAMS = ("adjustment_s",)

    def __init__(self, adjustment_s: float = 60.0, target_util: float = 0.8, engine: str = "llama2-7b-h100",
                 tpot_slo_s: float = 0.1, min_instances: int = 1, max_instances: int = 8) -> None:
        # decides once per interval: no freeze beyond that
        super().__init__(min_instances, max_instances, 0.0, adjustment_s)
        if adjustment_s <= 0 or not 0 < target_util <= 1:
            raise ValueError("interval-planner needs adjustment_s > 0 and 0 < target_util <= 1")
        self.target_util = target_util
        self.engine = get_preset(engine)
        self.tpot_target_s = tpot_slo_s / 2
        self._reqs, self._prompt, self._gen = 0, 0.0, 0.0

    def observe_arrival(self, request: RequestInfo, now: float) -> None:
        self._reqs += 1
        self._prompt += request.prompt_tokens
        # generated tokens are not known at arrival: the predictor's expected length stands for them
        self._gen += request.predicted_tokens or request.predicted_p90_tokens

    def _decide(self, fleet: FleetView, now: float) -> ScaleDecision | None:
        busy = instances_for(self.engine, self.tpot_target_s, self.interval_s, self._reqs, self._prompt, self._gen)
        self._reqs, self._prompt, self._gen = 0, 0.0, 0.0
        need = max(self.min_instances, math.ceil(busy / self.target_util - 1e-9))
        if need == fleet.provisioned:
            return None
        return ScaleDecision(need, f"interval planner: last interval kept {busy:.2f} instances busy",
                             {"busy_instances": busy})
