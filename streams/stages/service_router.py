"""Routing state of one service, driven by the `route` agent (pure: explicit event time, no I/O).

One :class:`ServiceRouter` per service; requests, routes and instance events are all keyed by service, so the
worker that owns a service's partition owns its router, anticipators and fleet view, and decisions stay
consistent. The router object comes from the policy registry, so it is the very object the offline simulator
drives (same decisions for the same inputs).

Guarantees kept here:
- exactly one :class:`RouteDecision` per request id, even when Kafka redelivers (bounded dedup window);
- a request that arrives while no instance is READY waits here and is routed when one becomes ready;
- such a *pending* request survives a crash: the router remembers which input message(s) carried it
  (:data:`MsgKey`), the agent acks every other input at once but holds those until the request is routed
  (:meth:`ServiceRouter.take_released`), so Kafka keeps their offsets uncommitted and redelivers them to
  whichever worker owns the service next;
- a :class:`RoutingTable` snapshot at a fixed event-time cadence.
"""

from __future__ import annotations

import itertools
from collections import deque
from typing import Any

from streams.policies.base_router import BaseRouter, NoReadyInstance
from streams.privacy import prompt_hash
from streams.records import (
    Completion,
    InstanceEvent,
    InstanceState,
    PredictedRequest,
    RouteDecision,
    RoutingTable,
)
from streams.stages.control_inputs import InputCounts, completion_info, order_key, request_info
from streams.stages.fleet_state import FleetState
from streams.stages.recent_ids import DEDUP_CAP, DEDUP_SPAN_S, RecentIds

__all__ = ["ServiceRouter", "DEDUP_WINDOW", "MsgKey"]

DEDUP_WINDOW = DEDUP_CAP  # most request ids remembered per service (and only DEDUP_SPAN_S of event time of them)
MsgKey = tuple[str, int, int]  # (topic, partition, offset) of the input message that carried a request


class ServiceRouter:
    """Routes one service's requests.

    :param service: the service name.
    :param router: the policy object (from the registry).
    :param policy: label written into every decision (e.g. ``preserve:preserve``).
    :param fleet: the service's fleet view (rebuilt from instance events).
    :param snapshot_every_s: event-time cadence of routing-table snapshots.
    :param max_model_len: the engine's context limit: policies see the prompt length it serves, as offline.
    """

    def __init__(self, service: str, router: BaseRouter, policy: str, fleet: FleetState,
                 snapshot_every_s: float = 10.0, max_model_len: int = 4096) -> None:
        self.service = service
        self.router = router
        self.policy = policy
        self.fleet = fleet
        self.snapshot_every_s = snapshot_every_s
        self.max_model_len = max_model_len
        self.now = 0.0
        self.pending: deque[PredictedRequest] = deque()
        self.duplicates = 0
        self._held: dict[str, list[MsgKey]] = {}  # pending request id -> the input messages that carried it
        self._released: list[MsgKey] = []  # inputs of requests routed since the last take_released()
        self._seen = RecentIds(DEDUP_SPAN_S, DEDUP_WINDOW)  # redeliveries come from the last uncommitted batch
        self._next_snapshot: float | None = None
        self._fleet_inputs: list[tuple[tuple[float, int, int], InstanceEvent | Completion]] = []
        self._arrivals = itertools.count()
        self.applied = InputCounts()
        self._queued_at: dict[str, dict[str, int]] = {}  # pending request id -> input counts when queued

    def _advance(self, ts: float) -> None:
        self.now = max(self.now, ts)  # the router's clock never goes back, even for a late event

    def on_request(self, req: PredictedRequest, source: MsgKey | None = None) -> list[RouteDecision]:
        """Route one request (or queue it while no instance is ready). Duplicates produce nothing.

        The fleet's events received so far are applied first, in the canonical order (a request that joins a
        queue applies none: its place in the queue does not depend on them).

        :param source: the input message that carried ``req``; while the request is pending,
            :meth:`is_held` is true for it (and for a redelivered copy's message too).
        """
        if req.request_id in self._seen or req.request_id in self._held:  # (pending ones outlive the window)
            self.duplicates += 1
            held = self._held.get(req.request_id)
            if held is not None and source is not None:
                held.append(source)  # a redelivery of a pending request: its message must wait as well
            return []
        self._seen.add(req.request_id, req.ts)
        self.applied.add(req)
        self._advance(req.ts)
        if not self.pending:
            self.flush()
            decision = self._route(req)
            if decision is not None:
                return [decision]
        self.pending.append(req)
        self._held[req.request_id] = [] if source is None else [source]
        self._queued_at[req.request_id] = self.applied.snapshot()
        return []

    def offer_fleet(self, rec: InstanceEvent | Completion) -> None:
        """Take one fleet event; it is applied (in the canonical order) before the next decision."""
        self._fleet_inputs.append((order_key(rec, next(self._arrivals)), rec))

    def flush(self) -> None:
        """Apply the fleet events received so far, in the canonical order."""
        batch, self._fleet_inputs = sorted(self._fleet_inputs, key=lambda x: x[0]), []
        for _, rec in batch:
            self.applied.add(rec)
            if isinstance(rec, InstanceEvent):
                self._apply_instance_event(rec)
            else:
                self._apply_completion(rec)

    def drain(self) -> list[RouteDecision]:
        """Route the pending requests that a newly ready instance can take now (the agent calls this after a
        batch). Without such an instance nothing is applied, so a drain that routes nothing leaves no trace."""
        if not self.pending or not self._may_become_ready():
            return []
        self.flush()
        return self._drain_pending()

    def _may_become_ready(self) -> bool:
        return any(isinstance(r, InstanceEvent) and r.state is InstanceState.READY for _, r in self._fleet_inputs)

    def is_held(self, request_id: str) -> bool:
        """Whether ``request_id`` is pending, so the messages that carried it must not be acked yet."""
        return request_id in self._held

    def take_released(self) -> list[MsgKey]:
        """Input messages of the pending requests routed since the last call: they may be acked now."""
        out, self._released = self._released, []
        return out

    def _apply_instance_event(self, ev: InstanceEvent) -> None:
        self._advance(ev.ts)
        was_there = ev.instance_id in self.fleet.instances
        self.fleet.apply(ev)
        if was_there and ev.instance_id not in self.fleet.instances:
            self.router.on_instance_removed(ev.instance_id, self.now)

    def _apply_completion(self, c: Completion) -> None:
        self._advance(c.ts)
        self.fleet.note_completion(c)
        self.router.on_completed(completion_info(c), self.now)

    def _drain_pending(self) -> list[RouteDecision]:
        out: list[RouteDecision] = []
        while self.pending:
            decision = self._route(self.pending[0])
            if decision is None:
                break
            self._released.extend(self._held.pop(self.pending.popleft().request_id))
            out.append(decision)
        return out

    def _route(self, req: PredictedRequest) -> RouteDecision | None:
        info = request_info(req, self.max_model_len)
        now = max(self.now, req.ts)
        try:
            choice = self.router.choose(info, self.fleet.view, now)
        except NoReadyInstance:
            return None
        self.router.on_routed(info, choice.instance_id, now)
        self.fleet.note_dispatch(choice.instance_id, req.prompt_tokens)
        queued_at = self._queued_at.pop(req.request_id, None)
        return RouteDecision(ts=now, request_id=req.request_id, service=req.service, instance_id=choice.instance_id,
                             arrival_ts=req.ts,
                             prompt_tokens=req.prompt_tokens, predicted_tokens=req.predicted_tokens,
                             output_tokens=req.output_tokens, policy=self.policy, score=choice.score,
                             reason=choice.reason[:500],
                             prompt_hash=req.prompt_hash or (prompt_hash(req.prompt) if req.prompt else None),
                             inputs=self.applied.snapshot(), queued_at_inputs=queued_at)

    def due_snapshots(self) -> list[RoutingTable]:
        """Snapshots whose cadence boundary the event clock has crossed (at most one per call, at the latest)."""
        if self._next_snapshot is None:
            self._next_snapshot = (self.now // self.snapshot_every_s + 1) * self.snapshot_every_s
            return []
        if self.now < self._next_snapshot:
            return []
        boundary = (self.now // self.snapshot_every_s) * self.snapshot_every_s
        self._next_snapshot = boundary + self.snapshot_every_s
        return [RoutingTable(ts=boundary, service=self.service, instances=self._table_rows(boundary))]

    def _table_rows(self, now: float) -> list[dict[str, Any]]:
        rows = []
        for inst in self.fleet.view.instances:
            row: dict[str, Any] = {"instance_id": inst.instance_id, "state": inst.state.value,
                                   "running": inst.running, "waiting": inst.waiting,
                                   "kv_used_tokens": inst.kv_used_tokens,
                                   "kv_capacity_tokens": inst.kv_capacity_tokens}
            rows.append(row)
        return rows
