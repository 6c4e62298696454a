"""Per-worker state of the `route` and `scale` agents: one router / scaler per service it owns (no I/O).

Why not a Faust table: policy objects (anticipators, forecasters) are not serialisable records. They are
rebuilt instead: the fleet view from the instance managers' events (statuses are periodic, so a new owner of a
partition converges within one status period), the rest from the stream itself. Requests, routes, instance
events and completions are all keyed by service, so the worker that owns a service sees all of its events.

One piece of route state must survive a crash and is not rebuilt: the requests *pending* while their service has
no READY instance (start-up, scale from zero). Their input messages are simply not acked until they are routed
(:class:`AckPlan`, :class:`DeferredAcks`), so Kafka redelivers them after a crash. The price: Faust commits a
partition only up to its oldest un-acked message, so while a service has a pending request, its partition's
later requests are not committed either, and a crash redelivers them too; the route agent of the next owner
routes them again, and the instance managers act on the first decision of a request id only
(``FleetManager.offer`` in fleet/live/instance_manager.py: the first decision of a request id wins, later ones
are counted as ``duplicate_routes`` and dropped). Pending happens only while a service has no READY instance
(start-up, scale from zero: about one cold start), so holding the partition's commit back that long is acceptable;
a service that never gets an instance holds it for good (and its pending queue grows, as before).
Committing past an un-acked message needed a fix in Faust's commit bookkeeping (``LeanConsumer`` in
streams/transport/faust_transport.py). A redelivered copy of a pending request (a rebalance that gives the partition back
to this worker) is held with it; if the partition moves to another worker, that worker gets the request
redelivered and routes it, and the copy left here is routed at most once more, a duplicate the fleet drops.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from streams.pipeline_config import PipelineConfig
from streams.policies.base_router import BaseRouter
from streams.policies.base_scaler import BaseScaler
from streams.policies.builder import build_policy
from streams.policies.policy_registry import PolicySpecError, parse_policy
from streams.records import (
    Completion,
    DeadLetter,
    EventRecord,
    Forecast,
    InstanceEvent,
    PredictedRequest,
)
from streams.stages.fleet_state import FleetState
from streams.stages.service_router import MsgKey, ServiceRouter
from streams.stages.service_scaler import ServiceScaler
from streams.transport.messages import RawMessage, parse_messages

__all__ = ["build_policies", "AckPlan", "DeferredAcks", "msg_key", "RouteAgentState",
           "ScaleAgentState"]

T = TypeVar("T")
E = TypeVar("E")


def build_policies(cfg: PipelineConfig) -> tuple[BaseRouter, BaseScaler]:
    """Fresh router and scaler for ``cfg.policy`` from the core's one builder (as the offline harness builds
    them); a policy that needs the trace's future (an oracle forecast) is refused: live there is none."""
    router, scaler = build_policy(parse_policy(cfg.policy), cfg)
    if scaler.needs_future:
        raise PolicySpecError(f"{cfg.policy!r} reads the future of the trace (an oracle), which exists only in "
                              "`preserve eval`; choose forecast=online for the live pipeline")
    if scaler.needs_history:
        raise PolicySpecError(f"{cfg.policy!r} is fitted on a previous day's trace (`preserve eval --history`); "
                              "the live pipeline has no such input yet")
    return router, scaler


class _PerService(Generic[T]):
    def __init__(self, make: Callable[[str], T]) -> None:
        self._make = make
        self.by_service: dict[str, T] = {}

    def get(self, service: str) -> T:
        if service not in self.by_service:
            self.by_service[service] = self._make(service)
        return self.by_service[service]


def msg_key(m: RawMessage) -> MsgKey | None:
    """Where ``m`` sits in Kafka, or None for a message without coordinates (built in memory)."""
    return None if m.partition is None or m.offset is None else (m.topic, m.partition, m.offset)


@dataclass(frozen=True)
class AckPlan:
    """What the route agent may ack after a batch.

    :param hold: messages of the batch that carry a request still pending: not acked yet.
    :param release: messages held by earlier batches whose request has been routed now: ack them.
    """

    hold: frozenset[MsgKey] = frozenset()
    release: list[MsgKey] = field(default_factory=list)


class DeferredAcks(Generic[E]):
    """The input events (any type: Faust's at the edge) whose ack an :class:`AckPlan` holds back."""

    def __init__(self) -> None:
        self._held: dict[MsgKey, list[E]] = {}

    def __len__(self) -> int:
        return sum(len(v) for v in self._held.values())

    def settle(self, events: Sequence[E], msgs: Sequence[RawMessage], plan: AckPlan) -> list[E]:
        """The events to ack now: this batch's except the held ones, plus the earlier ones released."""
        ready = [e for key in plan.release for e in self._held.pop(key, ())]
        for event, m in zip(events, msgs, strict=True):
            key = msg_key(m)
            if key is not None and key in plan.hold:
                self._held.setdefault(key, []).append(event)
            else:
                ready.append(event)
        return ready


class RouteAgentState:
    """Routes a batch of raw messages from ``predicted-requests``, ``instance-events`` and ``completions``."""

    REPORTS = frozenset({"predicted-requests", "instance-events"})  # completions are reported by `density`

    def __init__(self, cfg: PipelineConfig) -> None:
        self.cfg = cfg
        self.spec = parse_policy(cfg.policy)
        build_policies(cfg)  # fail at start-up, not on the first request, if the spec is wrong
        self.services: _PerService[ServiceRouter] = _PerService(self._new)
        self._plan = AckPlan()

    def _new(self, service: str) -> ServiceRouter:
        eng = self.cfg.engine_config()
        fleet = FleetState(service, self.cfg.min_instances, self.cfg.max_instances, eng.cold_start_s)
        return ServiceRouter(service, build_policies(self.cfg)[0], self.spec.label, fleet, self.cfg.snapshot_every_s,
                             eng.max_model_len)

    def handle(self, msgs: list[RawMessage], now: float) -> list[EventRecord]:
        """The batch's outputs; :meth:`take_acks` then says which of its messages to ack."""
        out: list[EventRecord] = []
        touched: dict[str, ServiceRouter] = {}
        requests: list[tuple[MsgKey, ServiceRouter, str]] = []
        for m in msgs:  # one at a time: a request's message is needed to hold its ack
            good, bad = parse_messages([m], now, self.REPORTS)
            out.extend(bad)
            for rec in good:
                svc = self.services.get(rec.service)  # type: ignore[attr-defined]
                touched[svc.service] = svc
                if isinstance(rec, PredictedRequest):
                    key = msg_key(m)
                    out.extend(svc.on_request(rec, key))
                    if key is not None:
                        requests.append((key, svc, rec.request_id))
                elif isinstance(rec, InstanceEvent | Completion):
                    svc.offer_fleet(rec)
        for svc in touched.values():
            out.extend(svc.drain())
            out.extend(svc.due_snapshots())
        self._plan = AckPlan(frozenset(key for key, svc, rid in requests if svc.is_held(rid)),
                             [key for svc in touched.values() for key in svc.take_released()])
        return out

    def take_acks(self) -> AckPlan:
        """The ack plan of the last :meth:`handle` (once: a second call returns an empty plan)."""
        plan, self._plan = self._plan, AckPlan()
        return plan


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
        eng = self.cfg.engine_config()
        fleet = FleetState(service, self.cfg.min_instances, self.cfg.max_instances, eng.cold_start_s)
        scaler = build_policies(self.cfg)[1]
        return ServiceScaler(service, scaler, self.spec.label, fleet, scaler.initial_instances(self.cfg.instances),
                             warmup_s=self.cfg.warmup_s, density=(self.cfg.density_window_s, self.cfg.density_grace_s),
                             max_model_len=eng.max_model_len)

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
