"""PreServe router: ready-only choice, anticipated load vs least-requests, hooks keep anticipators in sync."""

from __future__ import annotations

import pytest

from streams.policies.base_router import NoReadyInstance
from streams.policies.fleet_view import CompletionInfo, FleetView, InstanceState, InstanceView, RequestInfo
from streams.policies.policy_registry import ROUTERS
from streams.policies.routers.preserve_router import PreServeRouter

CAP = 100_000


def inst(iid: str, state: InstanceState = InstanceState.READY, **kw: int) -> InstanceView:
    return InstanceView(instance_id=iid, state=state, kv_capacity_tokens=CAP, **kw)


def fleet(*instances: InstanceView) -> FleetView:
    return FleetView(service="svc", instances=list(instances), min_instances=1, max_instances=8)


def req(rid: str, prompt: int, p90: float, now: float = 0.0) -> RequestInfo:
    return RequestInfo(request_id=rid, service="svc", arrival=now, prompt_tokens=prompt,
                       predicted_tokens=p90 / 2, predicted_p90_tokens=p90)


def test_registered_under_its_name() -> None:
    assert ROUTERS["preserve"] is PreServeRouter


@pytest.mark.parametrize("other", [InstanceState.STARTING, InstanceState.DRAINING])
def test_never_picks_a_non_ready_instance(other: InstanceState) -> None:
    router = PreServeRouter(decode_tokens_per_s=10)
    idle_but_not_ready = inst("idle", other)
    busy = inst("busy", running=50, waiting=20, kv_used_tokens=95_000, waiting_prompt_tokens=30_000)
    for k in range(20):
        choice = router.choose(req(f"r{k}", 500, 100), fleet(idle_but_not_ready, busy), now=k)
        assert choice.instance_id == "busy"
    with pytest.raises(NoReadyInstance):
        router.choose(req("x", 10, 10), fleet(idle_but_not_ready), now=0.0)


def test_anticipated_load_changes_the_choice_against_least_requests() -> None:
    """A: three small requests about to finish. B: one request that keeps growing for minutes.
    Least-requests sends a long newcomer to B; PreServe sees A empty out and B fill up."""
    router = PreServeRouter(decode_tokens_per_s=10)
    for k in range(3):
        router.on_routed(req(f"a{k}", 200, 10), "A", now=0.0)
    router.on_routed(req("b0", 1000, 2000), "B", now=0.0)
    a = inst("A", running=3, kv_used_tokens=600)
    b = inst("B", running=1, kv_used_tokens=1000)
    view = fleet(a, b)
    newcomer = req("new", 100, 200, now=0.0)
    least_requests = min(view.ready(), key=lambda i: (i.running + i.waiting, i.instance_id)).instance_id
    assert least_requests == "B"
    assert router.choose(newcomer, view, now=0.0).instance_id == "A"


def test_prefill_backlog_steers_away_from_a_queue() -> None:
    router = PreServeRouter()
    queued = inst("queued", waiting=4, waiting_prompt_tokens=8000, kv_used_tokens=1000)
    free = inst("free", running=4, kv_used_tokens=9000)
    assert router.choose(req("r", 1000, 100), fleet(queued, free), now=0.0).instance_id == "free"


def test_instance_about_to_overflow_is_avoided() -> None:
    router = PreServeRouter(decode_tokens_per_s=10)
    for k in range(40):
        router.on_routed(req(f"f{k}", 2000, 400), "full", now=0.0)  # grows to 40 x 2400 = 96k
    for k in range(60):
        router.on_routed(req(f"m{k}", 1000, 20), "many", now=0.0)  # 60k now, ends within 2 s
    full = inst("full", running=40, kv_used_tokens=80_000)
    many = inst("many", running=60, kv_used_tokens=60_000)
    assert router.choose(req("r", 1000, 400), fleet(full, many), now=0.0).instance_id == "many"


def test_completion_rolls_back_and_removal_forgets() -> None:
    router = PreServeRouter(decode_tokens_per_s=10)
    router.on_routed(req("r1", 500, 300), "A", now=0.0)
    assert router.anticipators["A"].in_flight == 1
    router.on_completed(CompletionInfo("r1", "A", arrival=0.0, finish=2.0, prompt_tokens=500,
                                       output_tokens=20, ttft_s=0.1), now=2.0)
    assert router.anticipators["A"].in_flight == 0
    router.on_instance_removed("A", now=3.0)
    assert "A" not in router.anticipators


def test_bad_parameters_are_refused() -> None:
    with pytest.raises(TypeError):
        PreServeRouter(nonsense=1)
    with pytest.raises(ValueError):
        PreServeRouter(kv_fill=0)
