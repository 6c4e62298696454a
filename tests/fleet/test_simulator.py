"""The event loop: order of events, conservation, determinism, cold starts, draining, gateway queueing."""

from __future__ import annotations

import numpy as np
import pytest

from fleet.sim_types import DropReason, EventType, event_key
from fleet.simulator import simulate
from streams.policies.base_scaler import BaseScaler
from streams.policies.fleet_view import FleetView, ScaleDecision
from streams.policies.routers.least_requests_router import LeastRequestsRouter
from streams.policies.routers.random_router import RandomRouter
from streams.policies.scalers.fixed_scaler import FixedScaler
from tests.fleet.sim_fixtures import WITH_CTX, config, engine, random_workload, workload


class ScriptedScaler(BaseScaler):
    """Asks for ``plan[t]`` instances at the first tick at or after each time ``t``."""

    def __init__(self, plan: dict[float, int], interval_s: float = 1.0) -> None:
        super().__init__(min_instances=0, max_instances=8, freeze_s=0.0, interval_s=interval_s)
        self.plan = sorted(plan.items())

    def _decide(self, fleet: FleetView, now: float) -> ScaleDecision | None:
        due = [n for t, n in self.plan if t <= now]
        return ScaleDecision(due[-1], "scripted") if due else None


def test_event_order_is_time_then_type_then_sequence() -> None:
    keys = [event_key(1.0, EventType.SCALER_TICK, 0), event_key(1.0, EventType.ARRIVAL, 5),
            event_key(0.5, EventType.SAMPLE, 9), event_key(1.0, EventType.STEP_END, 7),
            event_key(1.0, EventType.STEP_END, 2), event_key(1.0, EventType.INSTANCE_READY, 1)]
    ordered = sorted(keys)
    assert ordered == [(0.5, 4, 9), (1.0, 0, 2), (1.0, 0, 7), (1.0, 1, 1), (1.0, 2, 5), (1.0, 3, 0)]


def test_hand_computed_scenario_through_the_simulator() -> None:
    """The engine's hand-computed case end to end: TTFT and e2e of both requests, exactly."""
    w = workload([0.0, 0.05], [100, 50], [3, 2])
    res = simulate(w, config(engine()), LeastRequestsRouter(), FixedScaler(n=1))
    np.testing.assert_allclose(res.first_token - res.arrival, [0.11, 0.12], atol=1e-12)
    np.testing.assert_allclose(res.finish - res.arrival, [0.193, 0.132], atol=1e-12)
    assert res.instance.tolist() == [0, 0]


@pytest.mark.parametrize("chunked", [False, True])
def test_every_request_is_accounted_for(chunked: bool) -> None:
    w = random_workload(400, rate=40.0, seed=1, max_prompt=600, max_output=300)
    res = simulate(w, config(engine(chunked=chunked, kv_tokens=2048, max_len=600, max_batched=1024, cost=WITH_CTX),
                             initial=2), LeastRequestsRouter(), FixedScaler(n=2))
    assert int(res.completed.sum()) + sum(r is not None for r in res.drop_reason) == len(w)
    assert res.completed.all()
    assert (res.first_token >= res.arrival).all() and (res.finish >= res.first_token).all()
    assert res.preemptions.sum() > 0  # the small cache forces preemptions, all recovered


def test_overlength_drop_and_truncate() -> None:
    w = workload([0.0, 0.1, 0.2], [500, 100, 511], [100, 10, 5])
    dropped = simulate(w, config(engine(max_len=512), overlength="drop"), LeastRequestsRouter(), FixedScaler(n=1))
    assert dropped.drop_reason == [DropReason.PROMPT_TOO_LONG.value, None, DropReason.PROMPT_TOO_LONG.value]
    assert dropped.completed.tolist() == [False, True, False]
    cut = simulate(w, config(engine(max_len=512)), LeastRequestsRouter(), FixedScaler(n=1))
    assert cut.completed.all() and cut.truncated == 2
    assert (cut.prompt_tokens + cut.output_tokens).tolist() == [512, 110, 512]


def test_same_seed_same_simulation() -> None:
    w = random_workload(300, rate=30.0, seed=2)
    runs = [simulate(w, config(engine(cost=WITH_CTX), initial=3, check=False), RandomRouter(seed=s),
                     FixedScaler(n=3)) for s in (7, 7, 8)]
    np.testing.assert_array_equal(runs[0].finish, runs[1].finish)
    np.testing.assert_array_equal(runs[0].instance, runs[1].instance)
    assert not np.array_equal(runs[0].instance, runs[2].instance)


def test_cold_start_delays_readiness_and_requests_wait_at_the_gateway() -> None:
    """No instance at first; the scaler asks for one at t=1; it is ready at 1 + 5 s of cold start."""
    w = workload([0.0, 0.5, 7.0], [10, 10, 10], [2, 2, 2])
    res = simulate(w, config(engine(cold_start=5.0), initial=0), LeastRequestsRouter(), ScriptedScaler({0.0: 1}))
    assert res.instances[0]["start_requested_at"] == 1.0 and res.instances[0]["ready_at"] == 6.0
    assert res.first_token[0] >= 6.0 and res.first_token[1] >= 6.0
    assert res.first_token[2] - res.arrival[2] < 0.1  # the instance is warm by then
    assert res.first_token[0] < res.first_token[1]  # the gateway queue is FCFS


def test_draining_finishes_work_then_stops() -> None:
    """Two instances busy with long requests; the scaler drops to one: the drained one finishes first."""
    w = workload([0.0, 0.0, 0.0, 0.0], [10, 10, 10, 10], [400, 400, 400, 400])
    res = simulate(w, config(engine(), initial=2), LeastRequestsRouter(), ScriptedScaler({1.0: 1}))
    assert res.completed.all()
    stopped = [m for m in res.instances if m["stopped_at"] is not None]
    assert len(stopped) == 1
    idx = int(stopped[0]["instance_id"][1:])  # type: ignore[index]
    assert stopped[0]["stopped_at"] == pytest.approx(res.finish[res.instance == idx].max())
    assert float(stopped[0]["stopped_at"]) > 1.0  # type: ignore[arg-type]


def test_horizon_drops_what_cannot_finish() -> None:
    w = workload([0.0, 1.0], [10, 10], [2, 2])
    res = simulate(w, config(engine(), initial=0, horizon_s=10.0), LeastRequestsRouter(), ScriptedScaler({}))
    assert res.drop_reason == [DropReason.NO_INSTANCE.value] * 2
    assert not res.completed.any()


class CountingScaler(BaseScaler):
    """Records how many arrivals it had observed at each decision."""

    def __init__(self) -> None:
        super().__init__(min_instances=1, max_instances=2, freeze_s=0.0, interval_s=1.0)
        self.arrivals = 0
        self.seen: dict[float, int] = {}

    def observe_arrival(self, request: object, now: float) -> None:  # type: ignore[override]
        self.arrivals += 1

    def _decide(self, fleet: FleetView, now: float) -> ScaleDecision | None:
        self.seen[now] = self.arrivals
        return None


def test_simulator_processes_arrivals_before_the_scaler_tick_at_the_same_instant() -> None:
    w = workload([0.5, 1.0, 1.0, 2.5], [10] * 4, [2] * 4)
    scaler = CountingScaler()
    simulate(w, config(engine()), LeastRequestsRouter(), scaler)
    assert scaler.seen[1.0] == 3 and scaler.seen[2.0] == 3


def test_scale_down_cancels_starting_instances_first_then_scale_up_starts_new_ones() -> None:
    """Two warm instances; at t=1 ask for 3 (one starts), at t=2 for 2 (the starting one is cancelled), at t=3
    for 1 (a ready one drains), at t=4 for 2 (a new one starts, ready after the 5 s cold start)."""
    w = workload([0.0, 0.0, 20.0], [10, 10, 10], [600, 600, 2])
    res = simulate(w, config(engine(cold_start=5.0), initial=2), LeastRequestsRouter(),
                   ScriptedScaler({1.0: 3, 2.0: 2, 3.0: 1, 4.0: 2}))
    meta = {m["instance_id"]: m for m in res.instances}
    assert meta["i2"]["start_requested_at"] == 1.0 and meta["i2"]["stopped_at"] == 2.0
    assert meta["i2"]["ready_at"] is None
    assert meta["i3"]["start_requested_at"] == 4.0 and meta["i3"]["ready_at"] == 9.0
    drained = [m for m in (meta["i0"], meta["i1"]) if m["stopped_at"] is not None]
    assert len(drained) == 1 and float(drained[0]["stopped_at"]) > 3.0  # type: ignore[arg-type]
    assert [a["to"] for a in res.scale_actions] == [3, 2, 1, 2]
    assert res.completed.all()


def test_scaler_is_first_polled_after_the_warmup() -> None:
    w = workload([0.5, 4.2], [10, 10], [2, 2])
    scaler = CountingScaler()
    simulate(w, config(engine(), warmup_s=2.5), LeastRequestsRouter(), scaler)
    assert sorted(scaler.seen) == [2.5, 3.5]
