"""Instance managers in event time (pure: explicit ``now``, no Kafka, no clock).

:class:`FleetManager` receives RouteDecisions and ScaleCommands (from Kafka, through ``fleet_runner``), applies
each at its own event time, runs the engines between inputs and returns the records to publish: a
:class:`Completion` per finished request and :class:`InstanceEvent`s for every lifecycle step
(start_requested -> ready -> drain -> stopped) plus a periodic status per instance.

Why inputs are held until the clock reaches them: the runner keeps the event clock a little behind the wall-clock
mapping of the replay, so decisions that travel through Kafka arrive *before* their event time comes and are
applied exactly when they were made; a decision that arrives later than that is applied at once (counted in
``late_inputs``).

A route can name an instance that is gone by its event time: the router decided on a view that had not yet
seen the instance's drain (the scaler drained an idle instance, the manager stopped it at once, and the DRAIN
event reaches the router one pipeline round trip later, while it keeps choosing that idle, least-loaded
instance). Such a request is **re-routed** to a ready instance of the service, and its completion names the
instance that served it with ``rerouted_from`` = the routed one: routes and completions agree except where
a completion says why.

Real engines (an actuator behind the factory, e.g. ``process_engine``): an instance is ready when the factory
says so (its measured cold start), and an engine that dies or never becomes ready is reported (a ``stopped``
event, ``engine_failures``). Its requests are **re-routed** to a ready instance (up to ``max_attempts`` tries
each), not failed: the manager is the client of every stream, nothing was delivered to a user yet, so running
the request again elsewhere keeps "every request completes once" at the cost of a longer measured latency (its
arrival time is kept). A request that fails ``max_attempts`` times is dropped with its reason (``failed``).
When the scaler's last target still wants the lost instance, a replacement is started (at most one batch per
``replace_backoff_s``, so an engine that can never start does not spin).
"""

from __future__ import annotations

import heapq
import itertools
import logging
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field

from fleet.live.base_engine_adapter import EngineAdapter, EngineFactory, LiveRequest, StartState
from fleet.live.fleet_recovery import FAILED_SOURCE, FleetLog, ServiceLog
from streams.policies.fleet_rules import scale_down_victims
from streams.records import (
    Completion,
    DeadLetter,
    EventRecord,
    InstanceEvent,
    InstanceEventKind,
    InstanceState,
    RouteDecision,
    ScaleCommand,
    derived_id,
)

__all__ = ["ManagedInstance", "ServiceFleet", "FleetManager", "FleetCounters"]

log = logging.getLogger(__name__)


@dataclass
class ManagedInstance:
    instance_id: str
    state: InstanceState
    requested_at: float
    ready_at: float
    engine: EngineAdapter | None = None
    backlog: list[LiveRequest] = field(default_factory=list)  # routed before the engine existed


@dataclass
class FleetCounters:
    routes: int = 0
    duplicate_routes: int = 0
    rerouted: int = 0
    completions: int = 0
    late_inputs: int = 0
    scale_commands: int = 0
    engine_failures: int = 0  # engines that died or never became ready
    replacements: int = 0  # instances started to replace them
    failed: int = 0  # requests dropped after max_attempts tries
    routes_given_up: int = 0  # arrivals whose route never came within the wait (the clock stopped waiting)
    recovered_routes: int = 0  # unfinished routes a restarted manager found in its log and ran again


class ServiceFleet:
    """The instances of one service.

    :param service: the service name.
    :param factory: creates engines and says their cold start.
    :param status_every_s: event-time period of status events per instance (when its load changed).
    :param heartbeat_s: event-time period of a status for every instance, changed or not.
    :param prewarm_first: the bootstrap command of the service (the scale agent's first, see
        ``ScaleCommand.bootstrap``) starts its instances ready at once: a fleet that was already
        serving before the replay began, as the offline simulator's ``initial_instances``.
    """

    def __init__(self, service: str, factory: EngineFactory, counters: FleetCounters, status_every_s: float = 1.0,
                 prewarm_first: bool = True, heartbeat_s: float = 5.0) -> None:
        self.service = service
        self.factory = factory
        self.counters = counters
        self.status_every_s = status_every_s
        self.prewarm_first = prewarm_first
        self.instances: dict[str, ManagedInstance] = {}
        self.orphans: deque[LiveRequest] = deque()  # routed to an instance that is gone, waiting for a ready one
        self._ids = itertools.count()
        self._next_status: float | None = None
        self._last_status: dict[str, tuple[object, ...]] = {}
        self.heartbeat_s = heartbeat_s
        self._next_heartbeat: float | None = None
        self.target: int | None = None  # the scaler's last target (replacements fill up to it)
        self.max_attempts = 3
        self.replace_backoff_s = 5.0
        self._attempts: dict[str, int] = {}
        self._routed_to: dict[str, str] = {}  # request id -> the instance its route named (until it completes)
        self._failed_out: list[EventRecord] = []  # dead letters of requests given up on, to publish
        self._to_replace = 0
        self._next_replace = float("-inf")
        self.failures: list[tuple[str, str]] = []  # (request id, reason) of dropped requests
        self.completions_out = 0  # completions of this service emitted so far (certified by instance events)
        self.routes_in = 0  # route decisions of this service applied so far (idem)
        self.now = 0.0  # this service's event time (its own clock: see FleetManager)

    def active(self) -> list[ManagedInstance]:
        return [i for i in self.instances.values() if i.state is not InstanceState.STOPPED]

    def _event(self, inst: ManagedInstance, kind: InstanceEventKind, ts: float) -> InstanceEvent:
        st = inst.engine.status() if inst.engine else None
        return InstanceEvent(ts=ts, service=self.service, instance_id=inst.instance_id, kind=kind, state=inst.state,
                             running=st.running if st else 0, waiting=(st.waiting if st else 0) + len(inst.backlog),
                             kv_used_tokens=st.kv_used_tokens if st else 0,
                             kv_capacity_tokens=st.kv_capacity_tokens if st else self.factory.kv_capacity_tokens,
                             completions_published=self.completions_out, routes_applied=self.routes_in)

    def scale(self, cmd: ScaleCommand, now: float) -> list[EventRecord]:
        out: list[EventRecord] = []
        bootstrap = cmd.bootstrap
        if bootstrap and self.active():
            return out  # a restarted scale agent re-bootstraps: the running fleet stays as it is
        prewarm = bootstrap and self.prewarm_first
        self.target = cmd.target_instances
        self._to_replace = 0
        provisioned = self._provisioned()
        for _ in range(cmd.target_instances - len(provisioned)):
            out.extend(self._start(now, prewarm))
        surplus = len(provisioned) - cmd.target_instances
        if surplus > 0:
            out.extend(self._remove(provisioned, surplus, now))
        return out

    def _provisioned(self) -> list[ManagedInstance]:
        return [i for i in self.active() if i.state in (InstanceState.READY, InstanceState.STARTING)]

    def _start(self, now: float, prewarm: bool) -> list[EventRecord]:
        inst_id = derived_id(self.service, f"-{next(self._ids)}")
        ready_at = now if prewarm else now + self.factory.cold_start_s
        inst = ManagedInstance(inst_id, InstanceState.STARTING, now, ready_at)
        self.instances[inst_id] = inst
        out: list[EventRecord] = [self._event(inst, InstanceEventKind.START_REQUESTED, now)]
        if prewarm:
            out.extend(self._make_ready(inst, now))
        else:
            self.factory.provision(self.service, inst_id, now)
        return out

    def _remove(self, provisioned: list[ManagedInstance], n: int, now: float) -> list[EventRecord]:
        """Cancel or drain the instances the one scale-down rule picks (``fleet_rules.scale_down_victims``)."""
        def load(i: ManagedInstance) -> int:
            st = i.engine.status() if i.engine else None
            return ((st.running + st.waiting) if st else 0) + len(i.backlog)

        out: list[EventRecord] = []
        for inst in scale_down_victims(provisioned, n, lambda i: i.state is InstanceState.STARTING, load):
            if inst.state is InstanceState.STARTING:
                inst.state = InstanceState.STOPPED
                out.append(self._event(inst, InstanceEventKind.STOPPED, now))
                self.factory.release(self.service, inst.instance_id, now)
                for req in inst.backlog:  # routed while it started: run elsewhere
                    self._submit_anywhere(req, now)
                inst.backlog.clear()
            else:
                inst.state = InstanceState.DRAINING
                out.append(self._event(inst, InstanceEventKind.DRAIN, now))
                self.factory.drain(self.service, inst.instance_id, now)
        return out

    def _submit_anywhere(self, req: LiveRequest, now: float, avoid: str | None = None) -> None:
        """To the ready instance with the fewest waiting requests (another than ``avoid``, the one that just
        failed it, if there is one: it may be dying), or held until one is ready."""
        ready = [i for i in self.active() if i.state is InstanceState.READY and i.engine]
        ready = [i for i in ready if i.instance_id != avoid] or ready
        target = min(ready, key=lambda i: i.engine.status().waiting if i.engine else 0, default=None)
        if target is None or target.engine is None:
            self.orphans.append(req)
        else:
            target.engine.submit(req, now)

    def _retry(self, req: LiveRequest, reason: str, now: float, avoid: str | None = None) -> None:
        n = self._attempts[req.request_id] = self._attempts.get(req.request_id, 1) + 1
        if n > self.max_attempts:
            self.counters.failed += 1
            self.failures.append((req.request_id, reason))
            self._routed_to.pop(req.request_id, None)
            self._failed_out.append(DeadLetter(  # fails once, with its reason (a restart does not run it again)
                ts=now, source_topic=FAILED_SOURCE, key=req.request_id, payload="",
                reason=f"request {req.request_id} of service {self.service} failed after {n - 1} tries: {reason}"
                [:2000]))
            log.warning("request %s dropped after %d tries: %s", req.request_id, n - 1, reason)
            return
        self.counters.rerouted += 1
        self._submit_anywhere(req, now, avoid)

    def _lost(self, inst: ManagedInstance, now: float, reason: str) -> list[EventRecord]:
        """An engine died or never became ready: report it, re-route its requests, ask for a replacement."""
        log.warning("%s lost: %s", inst.instance_id, reason)
        self.counters.engine_failures += 1
        if inst.state is not InstanceState.DRAINING:
            self._to_replace += 1
        inst.state = InstanceState.STOPPED
        out: list[EventRecord] = [self._event(inst, InstanceEventKind.STOPPED, now)]
        held = [(r, reason) for r in inst.backlog]
        inst.backlog.clear()
        if inst.engine is not None:
            held += inst.engine.abandon()
            inst.engine.close()
        self.factory.release(self.service, inst.instance_id, now)
        for req, why in held:
            self._retry(req, why, now)
        return out

    def _replace(self, now: float) -> list[EventRecord]:
        if self._to_replace <= 0 or self.target is None or now < self._next_replace:
            return []
        n = min(self._to_replace, self.target - len(self._provisioned()))
        self._to_replace = 0
        self._next_replace = now + self.replace_backoff_s
        out: list[EventRecord] = []
        for _ in range(max(0, n)):
            self.counters.replacements += 1
            out.extend(self._start(now, False))
        return out

    def _make_ready(self, inst: ManagedInstance, now: float) -> list[EventRecord]:
        inst.engine = self.factory.create(self.service, inst.instance_id, now)
        inst.state = InstanceState.READY
        for req in inst.backlog:
            inst.engine.submit(req, now)
        inst.backlog.clear()
        out: list[EventRecord] = [self._event(inst, InstanceEventKind.READY, now)]
        while self.orphans:
            inst.engine.submit(self.orphans.popleft(), now)
        return out

    def route(self, d: RouteDecision, now: float) -> None:
        self.routes_in += 1
        self._routed_to[d.request_id] = d.instance_id
        arrival = d.arrival_ts if d.arrival_ts is not None else d.ts
        req = LiveRequest(d.request_id, d.service, arrival, d.prompt_tokens, d.output_tokens,
                          predicted_tokens=d.predicted_tokens)
        inst = self.instances.get(d.instance_id)
        refused = (inst is not None and inst.state is InstanceState.DRAINING and self.factory.drain_refuses_routes)
        if inst is None or inst.state is InstanceState.STOPPED or refused:
            self.counters.rerouted += 1
            self._submit_anywhere(req, now)
        elif inst.engine is None:
            inst.backlog.append(req)
        else:
            inst.engine.submit(req, now)

    def advance(self, now: float) -> list[EventRecord]:
        """Run every instance to ``now``: readiness, completions, drains that finish, periodic statuses."""
        out: list[EventRecord] = []
        for inst in self.active():
            if inst.state is InstanceState.STARTING:
                p = self.factory.readiness(self.service, inst.instance_id, inst.ready_at, now)
                if p.state is StartState.READY:
                    out.extend(self._make_ready(inst, p.at))
                elif p.state is StartState.FAILED:
                    out.extend(self._lost(inst, now, p.reason))
                    continue
            if inst.engine is None:
                continue
            gone = self.factory.liveness(self.service, inst.instance_id, now)
            if gone is not None:
                out.extend(self._lost(inst, now, gone))
                continue
            for f in inst.engine.advance(now):
                self.counters.completions += 1
                self.completions_out += 1
                named = self._routed_to.pop(f.request_id, inst.instance_id)
                out.append(Completion(ts=f.finished_at, request_id=f.request_id, service=self.service,
                                      instance_id=inst.instance_id, arrival_ts=f.arrival, prompt_tokens=f.prompt_tokens,
                                      output_tokens=f.output_tokens, ttft_s=f.ttft_s, e2e_s=f.e2e_s,
                                      preemptions=f.preemptions, output_sampled=f.output_sampled,
                                      truncated=f.truncated,
                                      rerouted_from=named if named != inst.instance_id else None))
            for req, why in inst.engine.take_failed():
                self._retry(req, why, now, avoid=inst.instance_id)
            if inst.state is InstanceState.DRAINING and inst.engine.idle():
                inst.state = InstanceState.STOPPED
                out.append(self._event(inst, InstanceEventKind.STOPPED, now))
                inst.engine.close()
                self.factory.release(self.service, inst.instance_id, now)
        out.extend(self._replace(now))
        out.extend(self._statuses(now))
        out.extend(self._failed_out)
        self._failed_out.clear()
        return out

    def unfinished_ids(self) -> list[str]:
        """Requests routed to this fleet that have neither completed nor failed."""
        return list(self._routed_to)

    def adopt(self, log: ServiceLog, now: float) -> list[EventRecord]:
        """A restarted manager takes the service over from its log (``fleet_recovery``): the desired size from the
        last scale command; the instances alive in the log re-created under their ids if the factory adopts
        (READY at once, DRAINING until idle, STARTING with a fresh cold start), else reported STOPPED (the
        router drops them) and replaced; new ids continue after the highest one seen."""
        out: list[EventRecord] = []
        suffixes = [int(t) for i in log.instances if (t := i.rsplit("-", 1)[-1]).isdigit()]
        self._ids = itertools.count(max(suffixes, default=-1) + 1)
        if log.command is not None:
            self.target = log.command.target_instances
        for ev in log.alive():
            inst = ManagedInstance(ev.instance_id, ev.state, ev.ts, now)
            self.instances[ev.instance_id] = inst
            if not self.factory.adopts_instances:
                inst.state = InstanceState.STOPPED
                out.append(self._event(inst, InstanceEventKind.STOPPED, now))
            elif ev.state is InstanceState.STARTING:
                inst.ready_at = now + self.factory.cold_start_s
                self.factory.provision(self.service, inst.instance_id, now)
            else:
                inst.engine = self.factory.create(self.service, inst.instance_id, now)
                out.append(self._event(inst, InstanceEventKind.STATUS, now))
        if self.target is not None:
            provisioned = self._provisioned()
            for _ in range(self.target - len(provisioned)):
                self.counters.replacements += 1
                out.extend(self._start(now, False))
            if len(provisioned) > self.target:  # a scale-down whose drains the old manager had not yet started
                out.extend(self._remove(provisioned, len(provisioned) - self.target, now))
        return out

    def _statuses(self, now: float) -> list[EventRecord]:
        """A status per instance every ``status_every_s`` for instances whose load changed since the last, and
        for all every ``heartbeat_s``: the heartbeat carries the fleet's event time to the scale agent, which
        holds arrivals until the fleet's events pass them (an idle fleet sends little, but never nothing)."""
        if self._next_status is None:
            self._next_status = now + self.status_every_s
            return []
        if now < self._next_status:
            return []
        self._next_status = now + self.status_every_s
        out: list[EventRecord] = []
        heartbeat = self._next_heartbeat is None or now >= self._next_heartbeat
        if heartbeat:
            self._next_heartbeat = now + self.heartbeat_s
        for inst in self.active():
            ev = self._event(inst, InstanceEventKind.STATUS, now)
            sig = (ev.state, ev.running, ev.waiting, ev.kv_used_tokens)
            if heartbeat or self._last_status.get(inst.instance_id) != sig:
                self._last_status[inst.instance_id] = sig
                out.append(ev)
        return out


class FleetManager:
    """Every service's fleet; each service's inputs are applied in event-time order as *its* clock reaches them.

    Every service runs on its own event time (``ServiceFleet.now``): an input stamped far ahead or behind by one
    service's client can move that service's clock only, never another service's routes or scaling (issue 21).
    :meth:`advance` takes one time for all (tests, one-clock callers) or a time per service (``fleet_runner``).

    :param factory: engine factory shared by all services.
    :param status_every_s: event-time period of status events.
    :param prewarm_first: see :class:`ServiceFleet`.
    """

    def __init__(self, factory: EngineFactory, status_every_s: float = 1.0, prewarm_first: bool = True) -> None:
        self.factory = factory
        self.status_every_s = status_every_s
        self.prewarm_first = prewarm_first
        self.fleets: dict[str, ServiceFleet] = {}
        self.counters = FleetCounters()
        self._inputs: dict[str, list[tuple[float, int, RouteDecision | ScaleCommand]]] = {}  # per service
        self._seq = itertools.count()
        self._routed: set[str] = set()
        self._unrouted: dict[str, tuple[str, float, float]] = {}  # request id -> (service, arrival, wall seen)

    @property
    def now(self) -> float:
        """The latest service clock (0 before any input): for reports; decisions use :meth:`service_now`."""
        return max((f.now for f in self.fleets.values()), default=0.0)

    def service_now(self, service: str) -> float:
        fleet = self.fleets.get(service)
        return fleet.now if fleet is not None else 0.0

    def fleet(self, service: str) -> ServiceFleet:
        if service not in self.fleets:
            self.fleets[service] = ServiceFleet(service, self.factory, self.counters, self.status_every_s,
                                                self.prewarm_first)
        return self.fleets[service]

    def expect(self, request_id: str, service: str, ts: float, wall: float) -> None:
        """A request arrived at the gateway (the `requests` topic): its route is on its way. Until it comes, or
        ``max_wait_s`` wall seconds pass, :meth:`holds` keeps its service's clock at its arrival, so that a slow
        control plane delays the simulated fleet in wall time instead of making it apply the route late (which
        would invent queueing that the offline simulation of the same decisions does not have)."""
        if request_id not in self._routed and request_id not in self._unrouted:
            self._unrouted[request_id] = (service, ts, wall)

    def holds(self, wall: float, max_wait_s: float = 30.0) -> dict[str, float]:
        """Per service with a ready instance, the event time its clock may not pass: its oldest arrival whose
        route has not come (a service without a ready instance waits for the fleet's own time to make one)."""
        out: dict[str, float] = {}
        ready = {s for s, f in self.fleets.items() if any(i.state is InstanceState.READY for i in f.active())}
        for rid, (service, ts, seen) in list(self._unrouted.items()):
            if wall - seen > max_wait_s:  # dead-lettered upstream, or a control plane that is gone
                del self._unrouted[rid]
                self.counters.routes_given_up += 1
            elif service in ready and ts < out.get(service, float("inf")):
                out[service] = ts
        return out

    def hold_at(self, wall: float, max_wait_s: float = 30.0) -> float:
        """The earliest of :meth:`holds` (inf if none)."""
        return min(self.holds(wall, max_wait_s).values(), default=float("inf"))

    def offer(self, item: RouteDecision | ScaleCommand) -> None:
        """Queue an input; it is applied when its service's clock reaches its event time (at once if past)."""
        if isinstance(item, RouteDecision):
            self._unrouted.pop(item.request_id, None)
            if item.request_id in self._routed:  # a redelivered route must not run the request twice
                self.counters.duplicate_routes += 1
                return
            self._routed.add(item.request_id)
            self.counters.routes += 1
        else:
            self.counters.scale_commands += 1
        fleet_now = self.fleet(item.service).now
        if item.ts < fleet_now:
            self.counters.late_inputs += 1
        heapq.heappush(self._inputs.setdefault(item.service, []), (max(item.ts, fleet_now), next(self._seq), item))

    def advance(self, now: float | Mapping[str, float]) -> list[EventRecord]:
        """Apply due inputs in event-time order, running the engines between them; then run to ``now``.

        ``now``: one event time for every service, or one per service (services not in the mapping stay)."""
        self.factory.poll(self.now)
        out: list[EventRecord] = []
        for service, fleet in list(self.fleets.items()):
            t = now if isinstance(now, int | float) else now.get(service)
            if t is None:
                continue
            t = max(t, fleet.now)
            heap = self._inputs.get(service, [])
            while heap and heap[0][0] <= t:
                ts, _, item = heapq.heappop(heap)
                out.extend(self._run_to(fleet, ts))
                if isinstance(item, ScaleCommand):
                    out.extend(fleet.scale(item, ts))
                else:
                    fleet.route(item, ts)
            out.extend(self._run_to(fleet, t))
        return out

    @staticmethod
    def _run_to(fleet: ServiceFleet, ts: float) -> list[EventRecord]:
        fleet.now = max(fleet.now, ts)
        return fleet.advance(fleet.now)

    def restore(self, flog: FleetLog) -> list[EventRecord]:
        """Take over the services of ``flog`` (a restart, or partitions that moved here from a manager that is gone):
        each service's fleet is adopted at its latest event time in the log, every routed request is remembered
        (a redelivered route is a duplicate), and the routes that never completed nor failed run again, once."""
        out: list[EventRecord] = []
        taken, rerun = 0, self.counters.recovered_routes
        for service, slog in flog.finish().services.items():
            if not slog.instances:  # the managers never acted for it: its scale commands are still to be read
                continue
            if service in self.fleets and self.fleets[service].instances:
                continue  # already served here (an eager rebalance hands back the partitions this process had)
            fleet = self.fleet(service)
            taken += 1
            fleet.now = max(fleet.now, slog.last_ts)
            out += fleet.adopt(slog, fleet.now)
            unfinished = [r for r in slog.unfinished() if r.request_id not in self._routed]
            self._routed.update(slog.routes)
            self._routed.update(slog.done)
            for route in unfinished:
                self._unrouted.pop(route.request_id, None)
                self.counters.recovered_routes += 1
                heapq.heappush(self._inputs.setdefault(service, []), (fleet.now, next(self._seq), route))
        if taken:
            log.warning("restored %d services from %d log records: %d unfinished requests run again", taken,
                        flog.records, self.counters.recovered_routes - rerun)
        return out

    def drop(self, service: str) -> None:
        """Hand a service over (its partition moved to another manager in a rebalance): forget its fleet, queued
        inputs and arrivals without publishing anything, and stop its real engines. The new owner takes it over
        from the log (:meth:`restore`): what was in flight here runs there once, since nothing of it completes
        here any more."""
        fleet = self.fleets.pop(service, None)
        queued = self._inputs.pop(service, [])
        for rid in [r for r, (svc, _, _) in self._unrouted.items() if svc == service]:
            del self._unrouted[rid]
        # requests routed here that did not finish here: not "routed" any more, should the service come back
        self._routed.difference_update(i.request_id for _, _, i in queued if isinstance(i, RouteDecision))
        if fleet is None:
            return
        self._routed.difference_update(fleet.unfinished_ids())
        for inst in fleet.active():
            if inst.engine is not None:
                inst.engine.abandon()
                inst.engine.close()
            if not self.factory.adopts_instances:
                self.factory.release(service, inst.instance_id, fleet.now)
        log.warning("handed service %s over (%d instances) to the manager that now owns its partition", service,
                    len(fleet.active()))

    def shutdown(self) -> None:
        """Stop every engine the factory started (real processes: SIGTERM, then SIGKILL)."""
        self.factory.shutdown()

    def in_flight(self) -> int:
        """Requests queued here or in engines (the demo waits for zero before reading the archive)."""
        n = sum(len(h) for h in self._inputs.values())
        for fleet in self.fleets.values():
            n += len(fleet.orphans)
            for inst in fleet.active():
                n += len(inst.backlog)
                if inst.engine is not None:
                    st = inst.engine.status()
                    n += st.running + st.waiting
        return n
