"""Round-robin over READY instances: the next instance after the last one chosen, in instance-id order."""

from __future__ import annotations

from streams.policies.base_router import BaseRouter, NoReadyInstance
from streams.policies.fleet_view import FleetView, RequestInfo, RouteChoice
from streams.policies.policy_registry import register_router

__all__ = ["RoundRobinRouter"]


@register_router("round-robin")
class RoundRobinRouter(BaseRouter):
    """Cycles through the ready instances. Keyed on the last instance id so that instances joining or
    leaving the fleet do not reset or skip the cycle."""

    def __init__(self) -> None:
        self._last: str | None = None
        self._ready: tuple[str, ...] = ()
        self._cycle: list[str] = []
        self._pos: dict[str, int] = {}

    def choose(self, request: RequestInfo, fleet: FleetView, now: float) -> RouteChoice:
        ready = tuple(v.instance_id for v in fleet.instances if v.is_ready)
        if not ready:
            raise NoReadyInstance(fleet.service)
        if ready != self._ready:  # the fleet changed: rebuild the cycle (rare)
            self._ready = ready
            self._cycle = sorted(ready, key=_order)
            self._pos = {iid: n for n, iid in enumerate(self._cycle)}
        cycle = self._cycle
        if self._last is None:
            pick = cycle[0]
        elif self._last in self._pos:
            pick = cycle[(self._pos[self._last] + 1) % len(cycle)]
        else:
            last = _order(self._last)
            pick = next((i for i in cycle if _order(i) > last), cycle[0])
        self._last = pick
        return RouteChoice(pick, reason="round-robin")


def _order(instance_id: str) -> tuple[int, str]:
    """Instance ids like ``i12`` sort numerically; others by text."""
    digits = instance_id.lstrip("abcdefghijklmnopqrstuvwxyz-_")
    return (int(digits), instance_id) if digits.isdigit() else (-1, instance_id)
