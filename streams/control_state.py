"""Per-worker state of the `route` and `scale` agents: one router / scaler per service it owns (no I/O).

Why not a Faust table: policy objects (anticipators, forecasters) are not serialisable records. They are
rebuilt instead: the fleet view from the instance managers' events (statuses are periodic, so a new owner of a
partition converges within one status period), the rest from the stream itself. Requests, routes, instance
events and completions are all keyed by service, so the worker that owns a service sees all of its events.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

from streams.fleet_state import FleetState
from streams.messages import RawMessage, parse_messages
from streams.pipeline_config import PipelineConfig
from streams.policies.base_router import BaseRouter
from streams.policies.base_scaler import BaseScaler
from streams.policies.policy_registry import parse_policy
from streams.records import (
    Completion,
    DeadLetter,
    EventRecord,
    Forecast,
    InstanceEvent,
    PredictedRequest,
)
from streams.route_state import ServiceRouter
from streams.scale_state import ServiceScaler

__all__ = ["build_policies", "initial_instances", "RouteAgentState", "ScaleAgentState"]

T = TypeVar("T")


def build_policies(cfg: PipelineConfig) -> tuple[BaseRouter, BaseScaler]:
    """Fresh router and scaler for ``cfg.policy``, built exactly as the offline harness builds them."""
    from fleet.harness.policies import build_policy, predictor_for

    spec = parse_policy(cfg.policy)
    return build_policy(spec, **cfg.shared_kwargs(), predictor=predictor_for(spec, cfg.predictor))


def initial_instances(scaler: BaseScaler, cfg: PipelineConfig) -> int:
    """Warm instances at the start, as the harness decides them (the scaler's own wish first)."""
    initial = getattr(scaler, "initial_instances", None)
    return cfg.instances if initial is None else int(initial)


def _cold_start(cfg: PipelineConfig) -> float:
    from fleet.engine_presets import get_preset

    return get_preset(cfg.engine).cold_start_s if cfg.cold_start_s is None else cfg.cold_start_s


class _PerService(Generic[T]):
    def __init__(self, make: Callable[[str], T]) -> None:
        self._make = make
        self.by_service: dict[str, T] = {}

    def get(self, service: str) -> T:
        if service not in self.by_service:
            self.by_service[service] = self._make(service)
        return self.by_service[service]


class RouteAgentState:
    """Routes a batch of raw messages from ``predicted-requests``, ``instance-events`` and ``completions``."""

    REPORTS = frozenset({"predicted-requests", "instance-events"})  # completions are reported by `density`

    def __init__(self, cfg: PipelineConfig) -> None:
        self.cfg = cfg
        self.spec = parse_policy(cfg.policy)
        build_policies(cfg)  # fail at start-up, not on the first request, if the spec is wrong
        self.services: _PerService[ServiceRouter] = _PerService(self._new)

    def _new(self, service: str) -> ServiceRouter:
        fleet = FleetState(service, self.cfg.min_instances, self.cfg.max_instances, _cold_start(self.cfg))
        return ServiceRouter(service, build_policies(self.cfg)[0], self.spec.label, fleet, self.cfg.snapshot_every_s)

    def handle(self, msgs: list[RawMessage], now: float) -> list[EventRecord]:
        good, bad = parse_messages(msgs, now, self.REPORTS)
        out: list[EventRecord] = list(bad)
        touched: dict[str, ServiceRouter] = {}
        for rec in good:
            svc = self.services.get(rec.service)  # type: ignore[attr-defined]
            touched[svc.service] = svc
            if isinstance(rec, PredictedRequest):
                out.extend(svc.on_request(rec))
            elif isinstance(rec, InstanceEvent):
                out.extend(svc.on_instance_event(rec))
            elif isinstance(rec, Completion):
                svc.on_completion(rec)
        for svc in touched.values():
            out.extend(svc.due_snapshots())
        return out


class ScaleAgentState:
    """Scales from a batch of raw messages of ``predicted-requests``, ``instance-events``, ``completions`` and
    ``forecasts``."""

    REPORTS = frozenset({"forecasts"})

    def __init__(self, cfg: PipelineConfig) -> None:
        self.cfg = cfg
        self.spec = parse_policy(cfg.policy)
        build_policies(cfg)
        self.services: _PerService[ServiceScaler] = _PerService(self._new)

    def _new(self, service: str) -> ServiceScaler:
        fleet = FleetState(service, self.cfg.min_instances, self.cfg.max_instances, _cold_start(self.cfg))
        scaler = build_policies(self.cfg)[1]
        return ServiceScaler(service, scaler, self.spec.label, fleet, initial_instances(scaler, self.cfg))

    def handle(self, msgs: list[RawMessage], now: float) -> list[EventRecord | DeadLetter]:
        good, bad = parse_messages(msgs, now, self.REPORTS)
        out: list[EventRecord | DeadLetter] = list(bad)
        for rec in good:
            svc = self.services.get(rec.service)  # type: ignore[attr-defined]
            if isinstance(rec, PredictedRequest):
                out.extend(svc.on_request(rec))
            elif isinstance(rec, InstanceEvent):
                out.extend(svc.on_instance_event(rec))
            elif isinstance(rec, Completion):
                out.extend(svc.on_completion(rec))
            elif isinstance(rec, Forecast):
                out.extend(svc.on_forecast(rec))
        return out
