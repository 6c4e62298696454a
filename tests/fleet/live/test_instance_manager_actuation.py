"""The manager's actuator hooks, in event time: deaths re-route and get replaced, failed starts, retries.

A scripted actuator (simulated engines that can be declared dead or never ready) drives the pure manager; the
same paths against real llama.cpp processes are in ``test_process_engines.py``.
"""

from __future__ import annotations

from fleet.live.base_engine_adapter import EngineAdapter, LiveRequest, Provisioning, StartState
from fleet.live.instance_manager import FleetManager
from fleet.live.simulated_engine import SimulatedEngine, SimulatedEngineFactory
from streams.records import Completion, InstanceEvent, InstanceEventKind, RouteDecision, ScaleCommand

SVC = "svc"


class HoldingEngine(SimulatedEngine):
    """A simulated engine that can hand back what it still holds (as a real one whose process died)."""

    def submit(self, request: LiveRequest, now: float) -> None:
        self.held = {**getattr(self, "held", {}), request.request_id: request}
        super().submit(request, now)

    def advance(self, now: float):  # type: ignore[no-untyped-def]
        done = super().advance(now)
        for f in done:
            self.held.pop(f.request_id, None)
        return done

    def abandon(self) -> list[tuple[LiveRequest, str]]:
        out = [(r, "engine gone") for r in getattr(self, "held", {}).values()]
        self.held = {}
        return out


class ScriptedActuator(SimulatedEngineFactory):
    def __init__(self) -> None:
        super().__init__("llama2-7b-h100", cold_start_s=10.0)
        self.dead: dict[str, str] = {}
        self.never_ready: set[str] = set()
        self.log: list[tuple[str, str]] = []

    def create(self, service: str, instance_id: str, now: float) -> EngineAdapter:
        return HoldingEngine(self.config, instance_id)

    def provision(self, service: str, instance_id: str, now: float) -> None:
        self.log.append(("provision", instance_id))

    def readiness(self, service: str, instance_id: str, ready_at: float, now: float) -> Provisioning:
        if instance_id in self.never_ready and now >= ready_at:
            return Provisioning(StartState.FAILED, now, "not ready after 10 s")
        return super().readiness(service, instance_id, ready_at, now)

    def drain(self, service: str, instance_id: str, now: float) -> None:
        self.log.append(("drain", instance_id))

    def release(self, service: str, instance_id: str, now: float) -> None:
        self.log.append(("release", instance_id))

    def liveness(self, service: str, instance_id: str, now: float) -> str | None:
        return self.dead.get(instance_id)

    @property
    def drain_refuses_routes(self) -> bool:
        return True


def cmd(ts: float, target: int) -> ScaleCommand:
    return ScaleCommand(ts=ts, service=SVC, target_instances=target, current_instances=0, policy="p", reason="t")


def route(ts: float, rid: str, inst: str, out: int = 200) -> RouteDecision:
    return RouteDecision(ts=ts, request_id=rid, service=SVC, instance_id=inst, prompt_tokens=100,
                         predicted_tokens=out, output_tokens=out, arrival_ts=ts, policy="p")


def kinds(recs: list, kind: InstanceEventKind) -> list[str]:
    return [r.instance_id for r in recs if isinstance(r, InstanceEvent) and r.kind is kind]


def test_a_dead_engine_is_reported_its_requests_rerouted_and_replaced() -> None:
    act = ScriptedActuator()
    mgr = FleetManager(act, prewarm_first=False)
    mgr.offer(cmd(0.0, 2))
    out = mgr.advance(10.0)
    assert kinds(out, InstanceEventKind.READY) == ["svc-0", "svc-1"]
    assert act.log == [("provision", "svc-0"), ("provision", "svc-1")]
    for i in range(4):
        mgr.offer(route(10.0, f"r{i}", "svc-0"))
    mgr.advance(10.05)  # running on svc-0, not finished
    act.dead["svc-0"] = "died (exit code -9)"
    out = mgr.advance(10.1)
    assert kinds(out, InstanceEventKind.STOPPED) == ["svc-0"] and kinds(out, InstanceEventKind.START_REQUESTED) == [
        "svc-2"]
    assert mgr.counters.engine_failures == 1 and mgr.counters.rerouted == 4 and mgr.counters.replacements == 1
    done = [r for r in mgr.advance(200.0) if isinstance(r, Completion)]
    assert sorted(c.request_id for c in done) == ["r0", "r1", "r2", "r3"]
    assert {c.instance_id for c in done} == {"svc-1"} and all(c.arrival_ts == 10.0 for c in done)


def test_never_ready_is_stopped_backlog_rerouted_and_replacement_backs_off() -> None:
    act = ScriptedActuator()
    act.never_ready = {"svc-0", "svc-1"}
    mgr = FleetManager(act, prewarm_first=False)
    mgr.offer(cmd(0.0, 1))
    mgr.offer(route(1.0, "r0", "svc-0"))
    out = mgr.advance(10.0)
    assert kinds(out, InstanceEventKind.STOPPED) == ["svc-0"] and not kinds(out, InstanceEventKind.READY)
    assert [r.request_id for r in mgr.fleet(SVC).orphans] == ["r0"]  # held for a ready instance, not dropped
    assert kinds(out, InstanceEventKind.START_REQUESTED) == ["svc-0", "svc-1"]  # one replacement
    out = mgr.advance(20.0)  # svc-1 fails too; the next replacement waits for the back-off (5 s after 10 s)
    assert kinds(out, InstanceEventKind.STOPPED) == ["svc-1"] and kinds(out, InstanceEventKind.START_REQUESTED) == [
        "svc-2"]
    out = mgr.advance(30.0)  # svc-2 is healthy: the orphan runs there
    assert kinds(out, InstanceEventKind.READY) == ["svc-2"]
    done = [r for r in mgr.advance(300.0) if isinstance(r, Completion)]
    assert [(c.request_id, c.instance_id) for c in done] == [("r0", "svc-2")]


def test_drain_tells_the_actuator_and_refuses_new_routes() -> None:
    act = ScriptedActuator()
    mgr = FleetManager(act, prewarm_first=False)
    mgr.offer(cmd(0.0, 2))
    mgr.advance(10.0)
    mgr.offer(route(10.0, "a", "svc-0"))
    mgr.offer(cmd(10.5, 1))
    out = mgr.advance(10.6)
    (drained,) = kinds(out, InstanceEventKind.DRAIN)
    assert ("drain", drained) in act.log
    mgr.offer(route(10.7, "b", drained))  # in transit when the drain was decided: goes to the other instance
    done = [r for r in mgr.advance(300.0) if isinstance(r, Completion)]
    assert {c.request_id: c.instance_id for c in done}["b"] != drained
    assert ("release", drained) in act.log


def test_a_request_that_keeps_failing_is_dropped_with_its_reason() -> None:
    act = ScriptedActuator()
    mgr = FleetManager(act, prewarm_first=False)
    mgr.offer(cmd(0.0, 1))
    mgr.advance(10.0)
    mgr.offer(route(10.0, "r0", "svc-0"))
    t = 10.01
    mgr.advance(t)
    for _ in range(3):  # the engine holding the request dies, three times in a row
        holder = next(i for i in mgr.fleet(SVC).active() if i.engine is not None and "r0" in i.engine.held)
        act.dead[holder.instance_id] = "died"
        mgr.advance(t + 0.01)  # lost: r0 waits for a ready instance; a replacement starts
        t += 10.01
        mgr.advance(t)  # the replacement is ready and takes r0
    assert mgr.counters.failed == 1 and mgr.fleet(SVC).failures == [("r0", "engine gone")]
    assert mgr.counters.rerouted == 2 and mgr.counters.engine_failures == 3
