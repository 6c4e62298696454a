"""Threshold-step autoscaling on mean KV-cache utilisation of the READY instances (0.9 up / 0.2 down).

One instance more when the fleet's cache is nearly full, one less when it is mostly empty, with the base
class's freeze after each action: a simple operator's rule. (The proportional autoscalers are ``hpa`` — the
Kubernetes HPA on the same metric — and ``kpa`` — Knative's, on concurrency.) It only sees the present, so it
scales after the load arrived plus a cold start.
"""

from __future__ import annotations

from streams.policies.base_scaler import BaseScaler
from streams.policies.fleet_view import FleetView, ScaleDecision
from streams.policies.policy_registry import register_scaler

__all__ = ["ReactiveScaler"]


@register_scaler("reactive")
class ReactiveScaler(BaseScaler):
    """:param up: scale up by ``step`` when mean KV utilisation exceeds this.
    :param down: scale down by ``step`` when mean KV utilisation is below this and nothing waits.
    :param step: instances added or removed per action.
    """

    def __init__(self, up: float = 0.9, down: float = 0.2, step: int = 1, min_instances: int = 1,
                 max_instances: int = 8, freeze_s: float = 60.0, interval_s: float = 5.0) -> None:
        super().__init__(min_instances, max_instances, freeze_s, interval_s)
        if not 0 <= down < up <= 1 or step < 1:
            raise ValueError(f"reactive needs 0 <= down < up <= 1 and step >= 1, got {down}, {up}, {step}")
        self.up, self.down, self.step = up, down, step

    def _decide(self, fleet: FleetView, now: float) -> ScaleDecision | None:
        ready = fleet.ready()
        if not ready:
            return None  # instances are starting (or none at all: the base class enforces min_instances)
        util = sum(v.kv_utilization for v in ready) / len(ready)
        waiting = sum(v.waiting for v in ready)
        details = {"kv_utilization": util, "waiting": float(waiting)}
        if util > self.up:
            return ScaleDecision(fleet.provisioned + self.step, f"kv utilisation {util:.2f} > {self.up}", details)
        if util < self.down and waiting == 0:
            return ScaleDecision(fleet.provisioned - self.step, f"kv utilisation {util:.2f} < {self.down}",
                                 details)
        return None
