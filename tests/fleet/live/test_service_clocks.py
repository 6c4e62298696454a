"""Per-service event clocks in `preserve fleet` (issue 21, item 1): one service's skewed input moves only its own
clock; arrivals outside the stream's window never hold a service; the speedup check (item 4)."""

from __future__ import annotations

from fleet.live.event_clock import ReplayClock, SpeedupCheck
from fleet.live.fleet_runner import FleetInput, FleetInputs
from fleet.live.instance_manager import FleetManager
from fleet.live.simulated_engine import SimulatedEngineFactory
from streams.records import Completion, RequestEvent, RouteDecision, ScaleCommand

HEALTHY = ("svc-a", "svc-b")
T0, W0 = 1.7e9, 1.7e9 + 5.0  # event time of the replay's start, wall time it is read


def _cmd(service: str, ts: float) -> FleetInput:
    return FleetInput("scale-commands", ScaleCommand(ts=ts, service=service, target_instances=2, current_instances=0,
                                                     policy="p", reason="bootstrap", bootstrap=True).to_json())


def _route(service: str, rid: str, ts: float) -> FleetInput:
    return FleetInput("routes", RouteDecision(ts=ts, request_id=rid, service=service, instance_id=f"{service}-0",
                                              prompt_tokens=200, predicted_tokens=50, output_tokens=50,
                                              arrival_ts=ts, policy="p").to_json())


def _arrival(service: str, rid: str, ts: float) -> FleetInput:
    return FleetInput("requests", RequestEvent(ts=ts, request_id=rid, service=service, prompt_tokens=200,
                                               output_tokens=50).to_json())


def _run(skewed: bool) -> list[Completion]:
    """60 s of a replay at speedup 1: two healthy services, a request every second each; with ``skewed`` a
    third service's client sends one route 20 h ahead and one at ts = 2001 (and their arrivals)."""
    inputs = FleetInputs(FleetManager(SimulatedEngineFactory("llama2-7b-h100", 30.0)), ReplayClock(1.0, 0.5))
    out = inputs.handle([_cmd(s, T0) for s in (*HEALTHY, "svc-bad")], W0)
    for k in range(1, 61):
        wall = W0 + k
        batch = []
        for s in HEALTHY:
            batch += [_arrival(s, f"{s}-{k}", T0 + k), _route(s, f"{s}-{k}", T0 + k + 0.01)]
        if skewed and k == 10:
            batch += [_arrival("svc-bad", "far", T0 + 20 * 3600.0), _route("svc-bad", "far", T0 + 20 * 3600.0)]
        if skewed and k == 20:
            batch += [_arrival("svc-bad", "old", 2001.0), _route("svc-bad", "old", 2001.0)]
        out += inputs.handle(batch, wall)
    out += inputs.handle([], W0 + 120)
    if skewed:
        assert inputs.stats.skewed_arrivals == 2
    return [c for c in out if isinstance(c, Completion) and c.service in HEALTHY]


def test_a_route_20_h_ahead_and_one_at_2001_leave_every_other_service_as_it_was() -> None:
    clean, skewed = _run(False), _run(True)
    assert len(clean) == 120
    key = [(c.request_id, c.ts, c.ttft_s, c.e2e_s) for c in sorted(clean, key=lambda c: c.request_id)]
    assert [(c.request_id, c.ts, c.ttft_s, c.e2e_s) for c in sorted(skewed, key=lambda c: c.request_id)] == key
    assert max(c.ttft_s for c in skewed) < 1.0  # the healthy services' requests were not routed 20 h late


def test_an_arrival_outside_the_window_does_not_hold_its_service() -> None:
    mgr = FleetManager(SimulatedEngineFactory("llama2-7b-h100", 30.0))
    inputs = FleetInputs(mgr, ReplayClock(1.0, 0.5))
    inputs.handle([_cmd("svc-a", T0), _arrival("svc-a", "ok", T0)], W0)
    inputs.handle([_arrival("svc-a", "x", 2001.0)], W0 + 1)  # `predict` dead-letters it: no route will come
    assert inputs.stats.skewed_arrivals == 1 and mgr.holds(W0 + 1).get("svc-a") == T0
    inputs.handle([_route("svc-a", "ok", T0)], W0 + 2)
    inputs.handle([], W0 + 10)
    assert mgr.service_now("svc-a") > T0 + 5  # the clock ran on (a held clock would stay at 2001's hold)


def test_the_speedup_check_names_the_speed_of_the_stream() -> None:
    gateway = SpeedupCheck(10.0)  # preserve fleet --speedup 10 fed by a gateway stamping wall-clock time
    for i in range(40):
        gateway.observe(T0 + i, T0 + i)
    why = gateway.mismatch()
    assert why is not None and "--speedup 10" in why and "--speedup 1" in why
    ok = SpeedupCheck(10.0)
    for i in range(40):
        ok.observe(T0 + 10 * i, W0 + i)
    assert ok.mismatch() is None and abs((ok.measured() or 0) - 10.0) < 1e-9
    early = SpeedupCheck(1.0)
    early.observe(T0, W0)
    early.observe(T0 + 100, W0 + 1)
    assert early.mismatch() is None  # too short to judge


def test_the_speedup_check_judges_the_recent_stream_and_a_new_replay_afresh() -> None:
    check = SpeedupCheck(1.0, window_s=60.0)
    for i in range(100):  # a first replay at 10x into a fleet told 1x: a mismatch
        check.observe(T0 + 10 * i, W0 + i)
    assert check.mismatch() is not None
    for i in range(100):  # then a gateway at 1x, from an epoch before the replay's end: judged afresh
        check.observe(T0 + 200 + i, W0 + 100 + i)
    assert check.mismatch() is None and abs((check.measured() or 0) - 1.0) < 0.05
