"""The shared GPU pool: scale-ups take what is free, the rest waits; freed GPUs go to the longest waiter."""

from __future__ import annotations

import numpy as np
import pytest

from fleet.metrics import summarize
from fleet.pool import InstancePool
from fleet.pool_simulator import merge_results, simulate_pool
from fleet.simulator import Simulator, simulate
from streams.policies.base_scaler import BaseScaler
from streams.policies.builder import build_policy
from streams.policies.fleet_view import FleetView, ScaleDecision
from streams.policies.policy_registry import parse_policy
from tests.fleet.sim_fixtures import config, engine, random_workload


class Member:
    def __init__(self) -> None:
        self.got: list[tuple[int, float]] = []

    def grant(self, count: int, t: float) -> None:
        self.got.append((count, t))


def test_take_what_is_free_then_first_come_first_served() -> None:
    pool = InstancePool(4)
    pool.occupy(2)
    a, b = Member(), Member()
    assert pool.take(3) == 2 and pool.free == 0
    pool.want(a, 1, 10.0)  # a waits for one since t=10
    assert pool.take(2) == 0
    pool.want(b, 2, 11.0)
    pool.release(20.0)  # the longest waiter first
    assert a.got == [(1, 20.0)] and b.got == []
    pool.release(21.0)
    pool.release(22.0)
    assert b.got == [(1, 21.0), (1, 22.0)] and pool.waiting() == 0
    assert pool.waits == 2
    # a's 1 instance waited 10 s; b's 2 waited 10 s (a was served first at t=20), then 1 waited 1 s more
    assert pool.wait_instance_s == pytest.approx(1 * 10 + 2 * 10 + 1 * 1)


def test_a_new_decision_replaces_the_wait_and_a_fleet_needs_no_wait_for_zero() -> None:
    pool = InstancePool(1)
    pool.occupy(1)
    a = Member()
    pool.want(a, 3, 0.0)
    pool.want(a, 0, 5.0)  # the scaler no longer wants them
    pool.release(6.0)
    assert a.got == [] and pool.free == 1
    with pytest.raises(ValueError, match="the pool has 1"):
        pool.occupy(2)


class StepTo(BaseScaler):
    """Asks for ``n`` instances at ``at`` (a scale-up the pool may make wait), ``down`` at ``down_at``."""

    def __init__(self, n: int, at: float, down: int | None = None, down_at: float = 1e18) -> None:
        super().__init__(min_instances=1, max_instances=3, freeze_s=0.0, interval_s=1.0)
        self.n, self.at, self.down, self.down_at = n, at, down, down_at

    def _decide(self, fleet: FleetView, now: float) -> ScaleDecision | None:
        if self.down is not None and now >= self.down_at:
            return ScaleDecision(self.down, "down")
        return ScaleDecision(self.n, "up") if now >= self.at else None


def test_a_full_pool_delays_a_scale_up_until_another_service_scales_down() -> None:
    eng = engine(cold_start=5.0)
    pool = InstancePool(3)
    w_a, w_b = random_workload(200, 2.0, seed=1), random_workload(200, 2.0, seed=2)
    router_a, _ = build_policy(parse_policy("least-requests:fixed(n=1)"))
    router_b, _ = build_policy(parse_policy("least-requests:fixed(n=1)"))
    a = Simulator(w_a, config(eng, initial=2, check=False, max_instances=3), router_a,
                  StepTo(2, 0.0, down=1, down_at=30.0), pool=pool)
    b = Simulator(w_b, config(eng, initial=1, check=False, max_instances=3), router_b, StepTo(2, 10.0), pool=pool)
    run = simulate_pool([a, b], pool)
    starts = [float(m["start_requested_at"]) for m in run.results[1].instances]
    assert starts[0] == 0.0 and len(starts) == 2
    # b asked at t=10 with the pool full; a scaled down at t=30 and its instance stopped once drained
    stop_a = min(float(m["stopped_at"]) for m in run.results[0].instances if m["stopped_at"] is not None)
    assert 30.0 <= stop_a < 31.0 + 1e-9 and starts[1] == pytest.approx(stop_a)
    assert len(run.results[1].scale_actions) == 1  # the pending instance counts as provisioned: asked once
    assert run.pool_waits == 1 and run.pool_wait_instance_s == pytest.approx(stop_a - 10.0)
    merged = merge_results(run.results, ["a", "b"])
    assert len(merged.arrival) == 400 and merged.completed.all()
    assert {str(m["instance_id"]).split("/")[0] for m in merged.instances} == {"a", "b"}


def test_one_service_in_a_roomy_pool_is_the_plain_simulation() -> None:
    eng = engine(cold_start=5.0)
    w = random_workload(400, 6.0, seed=3)
    spec = parse_policy("least-requests:reactive")
    plain = simulate(w, config(eng, initial=1, max_instances=4), *build_policy(spec))
    pool = InstancePool(4)
    pooled = simulate_pool([Simulator(w, config(eng, initial=1, max_instances=4), *build_policy(spec), pool=pool)],
                           pool).results[0]
    for key in ("first_token", "finish", "instance"):
        np.testing.assert_array_equal(getattr(plain, key), getattr(pooled, key))
    assert summarize(plain, 1.0, 0.1)["instance_hours"] == pytest.approx(summarize(pooled, 1.0, 0.1)["instance_hours"])
    assert plain.scale_actions == pooled.scale_actions
