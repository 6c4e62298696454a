"""A fixed fleet of ``n`` instances (the static provisioning baseline; swept over n by ``--frontier``)."""

from __future__ import annotations

from streams.policies.base_scaler import BaseScaler
from streams.policies.fleet_view import FleetView, ScaleDecision
from streams.policies.policy_registry import register_scaler

__all__ = ["FixedScaler"]


@register_scaler("fixed")
class FixedScaler(BaseScaler):
    """Keeps ``n`` instances provisioned (replaces any that stop). ``n`` defaults to ``min_instances``.

    The harness starts the fleet with :attr:`initial_instances` warm instances, so a fixed fleet never pays
    a cold start.
    """

    def __init__(self, n: int | None = None, min_instances: int = 1, max_instances: int = 8,
                 freeze_s: float = 60.0, interval_s: float = 5.0) -> None:
        target = min_instances if n is None else int(n)
        if target < 0:
            raise ValueError(f"fixed(n={n}) needs n >= 0")
        # A fixed fleet of n is its own bound: widen min/max so that the base class does not clamp it.
        super().__init__(min(min_instances, target), max(max_instances, target), freeze_s, interval_s)
        self.n = target

    def initial_instances(self, default: int) -> int:
        return self.n

    def _decide(self, fleet: FleetView, now: float) -> ScaleDecision | None:
        return ScaleDecision(self.n, f"fixed n={self.n}")
