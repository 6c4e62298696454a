"""Each baseline router's choice on hand-made fleet views, and that none ever picks a non-READY instance."""

from __future__ import annotations

import pytest

from streams.policies.base_router import NoReadyInstance
from streams.policies.fleet_view import CompletionInfo, FleetView, InstanceState, InstanceView, RequestInfo
from streams.policies.routers.least_kv_router import LeastKVRouter
from streams.policies.routers.least_requests_router import LeastRequestsRouter
from streams.policies.routers.power_of_two_router import PowerOfTwoRouter
from streams.policies.routers.random_router import RandomRouter
from streams.policies.routers.round_robin_router import RoundRobinRouter
from streams.policies.routers.token_load_router import TokenLoadRouter

R, S, D = InstanceState.READY, InstanceState.STARTING, InstanceState.DRAINING


def _fleet(*specs: tuple[InstanceState, int, int, int]) -> FleetView:
    """(state, running, waiting, kv_used_tokens) per instance, capacity 1000 tokens."""
    views = [InstanceView(f"i{n}", st, 1000, running=r, waiting=w, kv_used_tokens=kv)
             for n, (st, r, w, kv) in enumerate(specs)]
    return FleetView("svc", views, 1, 8)


def _req(rid: str = "a", prompt: int = 100, predicted: float = 0.0) -> RequestInfo:
    return RequestInfo(rid, "svc", 0.0, prompt, predicted, predicted)


ALL = [RoundRobinRouter, RandomRouter, LeastRequestsRouter, LeastKVRouter, PowerOfTwoRouter, TokenLoadRouter]


@pytest.mark.parametrize("cls", ALL)
def test_only_ready_instances_are_chosen(cls: type) -> None:
    router = cls()
    fleet = _fleet((S, 0, 0, 0), (R, 9, 9, 900), (D, 0, 0, 0), (R, 5, 0, 500))
    picks = {router.choose(_req(str(i)), fleet, float(i)).instance_id for i in range(40)}
    assert picks <= {"i1", "i3"}


@pytest.mark.parametrize("cls", ALL)
def test_no_ready_instance_raises(cls: type) -> None:
    with pytest.raises(NoReadyInstance):
        cls().choose(_req(), _fleet((S, 0, 0, 0), (D, 1, 0, 10)), 0.0)


def test_round_robin_cycles_in_id_order_across_fleet_changes() -> None:
    router = RoundRobinRouter()
    fleet = _fleet((R, 0, 0, 0), (R, 0, 0, 0), (R, 0, 0, 0))
    assert [router.choose(_req(), fleet, 0).instance_id for _ in range(4)] == ["i0", "i1", "i2", "i0"]
    fleet.instances[1].state = D  # i1 leaves: the cycle goes on from i0 to i2
    assert router.choose(_req(), fleet, 0).instance_id == "i2"


def test_least_requests_counts_running_and_waiting() -> None:
    fleet = _fleet((R, 3, 2, 100), (R, 4, 0, 900), (R, 1, 5, 0))
    assert LeastRequestsRouter().choose(_req(), fleet, 0).instance_id == "i1"


def test_least_kv_prefers_emptiest_cache_then_fewer_requests() -> None:
    assert LeastKVRouter().choose(_req(), _fleet((R, 1, 0, 500), (R, 9, 0, 200)), 0).instance_id == "i1"
    assert LeastKVRouter().choose(_req(), _fleet((R, 0, 4, 0), (R, 0, 1, 0)), 0).instance_id == "i1"


def test_power_of_two_keeps_the_less_loaded_of_two() -> None:
    fleet = _fleet((R, 0, 0, 0), (R, 50, 0, 0))
    router = PowerOfTwoRouter(seed=1)
    assert {router.choose(_req(), fleet, 0).instance_id for _ in range(10)} == {"i0"}
    # with three instances the most loaded can never win a pair
    fleet3 = _fleet((R, 1, 0, 0), (R, 50, 0, 0), (R, 2, 0, 0))
    assert "i1" not in {router.choose(_req(), fleet3, 0).instance_id for _ in range(50)}


def test_random_is_seeded() -> None:
    fleet = _fleet(*[(R, 0, 0, 0)] * 5)
    a = [RandomRouter(seed=3).choose(_req(), fleet, 0).instance_id for _ in range(1)]
    seq = lambda seed: [r.choose(_req(), fleet, 0).instance_id for r in [RandomRouter(seed)] for _ in range(20)]  # noqa: E731
    assert seq(3) == seq(3) and seq(3) != seq(4) and a


def test_token_load_tracks_in_flight_tokens_and_releases_them() -> None:
    router = TokenLoadRouter(prior_output_tokens=100)
    fleet = _fleet((R, 0, 0, 0), (R, 0, 0, 0))
    first = router.choose(_req("a", 1000, predicted=500), fleet, 0)
    router.on_routed(_req("a", 1000, predicted=500), first.instance_id, 0)
    second = router.choose(_req("b", 10), fleet, 0)
    assert second.instance_id != first.instance_id  # i0 holds 1,500 tokens
    router.on_routed(_req("b", 10), second.instance_id, 0)  # 10 + prior 100
    assert router.choose(_req("c"), fleet, 0).instance_id == second.instance_id
    router.on_completed(CompletionInfo("a", first.instance_id, 0, 5, 1000, 480, 0.1), 5)
    assert router.choose(_req("d"), fleet, 5).instance_id == first.instance_id
    assert router.expected_output(_req("e")) == 480  # the running mean replaces the prior
