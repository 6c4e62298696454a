"""A restarted `preserve fleet` takes its services over from the log (issue 21 item 2, issue 19's restart): the
desired size, the instances (adopted, or reported stopped and replaced), the unfinished requests run once."""

from __future__ import annotations

from fleet.live.fleet_recovery import FleetLog
from fleet.live.instance_manager import FleetManager
from fleet.live.simulated_engine import SimulatedEngineFactory
from streams.records import (
    Completion,
    DeadLetter,
    EventRecord,
    InstanceEvent,
    InstanceEventKind,
    InstanceState,
    RouteDecision,
    ScaleCommand,
)

SVC = "svc"


class RealLikeFactory(SimulatedEngineFactory):
    """Simulated engines that die with their manager, as real engine processes do (PR_SET_PDEATHSIG)."""

    @property
    def adopts_instances(self) -> bool:
        return False


def _cmd(ts: float, target: int, bootstrap: bool = False) -> ScaleCommand:
    return ScaleCommand(ts=ts, service=SVC, target_instances=target, current_instances=0, policy="p",
                        reason="bootstrap" if bootstrap else "test", bootstrap=bootstrap)


def _route(i: int, inst: str) -> RouteDecision:
    return RouteDecision(ts=1.0 + i * 0.2, request_id=f"r{i}", service=SVC, instance_id=inst, prompt_tokens=300,
                         predicted_tokens=200, output_tokens=200, arrival_ts=1.0 + i * 0.2, policy="p")


def _first_life(factory: SimulatedEngineFactory, crash_at: float) -> tuple[list[EventRecord], list[RouteDecision]]:
    """A manager that bootstraps 2 instances, scales to 3, serves 100 routes and dies at ``crash_at`` (its
    published records and its inputs are what the topics hold)."""
    mgr = FleetManager(factory)
    inputs: list[EventRecord] = [_cmd(0.0, 2, bootstrap=True)]
    mgr.offer(inputs[0])  # type: ignore[arg-type]
    out = mgr.advance(0.0)
    routes = [_route(i, f"{SVC}-{i % 2}") for i in range(100)]
    inputs += [_cmd(2.0, 3), *routes]
    for item in inputs[1:]:
        mgr.offer(item)  # type: ignore[arg-type]
    out += mgr.advance(crash_at)
    return inputs + out, routes


def _second_life(factory: SimulatedEngineFactory, records: list[EventRecord],
                 routes: list[RouteDecision]) -> tuple[FleetManager, list[EventRecord]]:
    flog = FleetLog()
    for rec in records:
        flog.add(rec)
    mgr = FleetManager(factory)
    out = mgr.restore(flog)
    for r in routes:  # the consumer group redelivers what it had not committed: all of it, at worst
        mgr.offer(r)
    mgr.offer(_cmd(0.0, 2, bootstrap=True))  # a re-bootstrap of the scale agent changes nothing
    out += mgr.advance(1000.0)
    return mgr, out


def _completed(recs: list[EventRecord]) -> list[str]:
    return sorted(c.request_id for c in recs if isinstance(c, Completion))


def test_a_restarted_simulated_fleet_adopts_its_instances_and_runs_each_unfinished_request_once() -> None:
    before, routes = _first_life(SimulatedEngineFactory(cold_start_s=5.0), crash_at=15.0)
    done_before = _completed(before)
    assert 0 < len(done_before) < 100  # killed mid-replay: some requests were in flight
    mgr, after = _second_life(SimulatedEngineFactory(cold_start_s=5.0), before, routes)
    assert sorted(done_before + _completed(after)) == sorted(f"r{i}" for i in range(100))  # each exactly once
    assert mgr.counters.recovered_routes == 100 - len(done_before) and mgr.counters.duplicate_routes == 100
    fleet = mgr.fleets[SVC]
    assert fleet.target == 3 and sorted(fleet.instances) == [f"{SVC}-0", f"{SVC}-1", f"{SVC}-2"]  # same ids
    assert not [e for e in after if isinstance(e, InstanceEvent) and e.kind is InstanceEventKind.STOPPED]
    last = max(r.ts for r in before if isinstance(r, InstanceEvent | Completion))
    arrival = {r.request_id: r.arrival_ts for r in routes}
    late = [c for c in after if isinstance(c, Completion)]
    assert all(c.ts >= last and c.arrival_ts == arrival[c.request_id] for c in late)  # downtime in their latency


def test_real_engines_that_died_with_the_manager_are_reported_stopped_and_replaced() -> None:
    before, routes = _first_life(RealLikeFactory(cold_start_s=5.0), crash_at=15.0)
    mgr, after = _second_life(RealLikeFactory(cold_start_s=5.0), before, routes)
    stopped = sorted(e.instance_id for e in after if isinstance(e, InstanceEvent)
                     and e.kind is InstanceEventKind.STOPPED)
    assert stopped == [f"{SVC}-0", f"{SVC}-1", f"{SVC}-2"]  # the router learns the old instances are gone
    started = sorted(e.instance_id for e in after if isinstance(e, InstanceEvent)
                     and e.kind is InstanceEventKind.START_REQUESTED)
    assert started == [f"{SVC}-3", f"{SVC}-4", f"{SVC}-5"]  # replacements under new ids, up to the target
    assert sorted(_completed(before) + _completed(after)) == sorted(f"r{i}" for i in range(100))


def test_a_request_that_failed_with_a_reason_is_not_run_again() -> None:
    before, routes = _first_life(SimulatedEngineFactory(cold_start_s=5.0), crash_at=15.0)
    pending = sorted({r.request_id for r in routes} - set(_completed(before)))
    failed = DeadLetter(ts=15.0, source_topic="routes", key=pending[0], payload="", reason="failed after 3 tries")
    mgr, after = _second_life(SimulatedEngineFactory(cold_start_s=5.0), [failed, *before], routes)
    assert pending[0] not in _completed(after)
    assert sorted(_completed(before) + _completed(after) + [pending[0]]) == sorted(f"r{i}" for i in range(100))


def test_a_service_the_managers_never_acted_for_is_left_to_its_scale_commands() -> None:
    flog = FleetLog()
    flog.add(_cmd(0.0, 2, bootstrap=True))
    mgr = FleetManager(SimulatedEngineFactory())
    assert mgr.restore(flog) == [] and not mgr.fleets
    mgr.offer(_cmd(0.0, 2, bootstrap=True))
    ready = [e for e in mgr.advance(0.0) if isinstance(e, InstanceEvent) and e.state is InstanceState.READY]
    assert len(ready) == 2  # the bootstrap still prewarms, as on a first start


def test_a_scale_down_the_old_manager_had_not_applied_is_applied_by_the_new_one() -> None:
    flog = FleetLog()
    for i in range(3):
        flog.add(InstanceEvent(ts=5.0, service=SVC, instance_id=f"{SVC}-{i}", kind=InstanceEventKind.READY,
                               state=InstanceState.READY, kv_capacity_tokens=1000))
    flog.add(_cmd(9.0, 1))  # consumed, then the manager died before it drained anything
    mgr = FleetManager(SimulatedEngineFactory())
    out = mgr.restore(flog) + mgr.advance(10.0)
    drained = [e.instance_id for e in out if isinstance(e, InstanceEvent) and e.kind is InstanceEventKind.DRAIN]
    assert len(drained) == 2 and len(mgr.fleets[SVC]._provisioned()) == 1


def test_a_service_handed_over_in_a_rebalance_runs_each_request_once_across_both_managers() -> None:
    """A live rebalance between two running managers: the one that loses the partition drops the service
    (publishing nothing more for it), the one that gains it takes it over from the log."""
    before, routes = _first_life(SimulatedEngineFactory(cold_start_s=5.0), crash_at=15.0)  # manager A's records
    a = FleetManager(SimulatedEngineFactory(cold_start_s=5.0))  # A again, as it stood: restored from the same log
    flog = FleetLog()
    for rec in before:
        flog.add(rec, partition=3)
    a.restore(flog)
    assert flog.partitions == {SVC: 3}
    a.drop(SVC)  # the partition moved away
    assert not a.fleets and a.in_flight() == 0 and a.advance(1000.0) == []
    b, after = _second_life(SimulatedEngineFactory(cold_start_s=5.0), before, routes)
    assert sorted(_completed(before) + _completed(after)) == sorted(f"r{i}" for i in range(100))
    back = FleetLog()  # and if it comes back to A later, A runs what is unfinished then, not nothing
    for rec in before:
        back.add(rec)
    a.restore(back)
    assert a.counters.recovered_routes == 2 * (100 - len(_completed(before)))
