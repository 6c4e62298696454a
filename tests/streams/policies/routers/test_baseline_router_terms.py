"""Baseline routers, each rule alone: strict minima and their tie rules, the scores they report, the seeded
draws of random and power-of-two, round-robin's numeric order and re-entry, token-load's ledger."""

from __future__ import annotations

import random

import pytest

from streams.policies.fleet_view import CompletionInfo, FleetView, InstanceState, InstanceView, RequestInfo
from streams.policies.routers.least_kv_router import LeastKVRouter
from streams.policies.routers.least_requests_router import LeastRequestsRouter
from streams.policies.routers.power_of_two_router import PowerOfTwoRouter
from streams.policies.routers.random_router import RandomRouter
from streams.policies.routers.round_robin_router import RoundRobinRouter, _order
from streams.policies.routers.token_load_router import TokenLoadRouter

R, S = InstanceState.READY, InstanceState.STARTING
T = 4000.0


def inst(iid: str, running: int = 0, waiting: int = 0, kv: int = 0, state: InstanceState = R,
         cap: int = 1000) -> InstanceView:
    return InstanceView(iid, state, cap, running=running, waiting=waiting, kv_used_tokens=kv)


def fleet(*views: InstanceView) -> FleetView:
    return FleetView("svc", list(views), 1, 8)


def req(rid: str = "r", prompt: int = 100, predicted: float = 0.0) -> RequestInfo:
    return RequestInfo(rid, "svc", T, prompt, predicted, predicted)


# ----------------------------------------------------------------- least-kv
def test_least_kv_picks_the_lowest_utilisation_and_reports_it() -> None:
    c = LeastKVRouter().choose(req(), fleet(inst("a", kv=300), inst("b", kv=250, running=9), inst("c", kv=260)), T)
    assert (c.instance_id, c.score, c.reason) == ("b", 0.25, "least-kv")


def test_least_kv_ties_go_to_fewer_requests_then_to_the_first() -> None:
    f = fleet(inst("a", kv=100, running=2), inst("b", kv=100, waiting=1), inst("c", kv=100, running=1))
    assert LeastKVRouter().choose(req(), f, T).instance_id == "b"
    f = fleet(inst("a", kv=100, running=1), inst("b", kv=100, waiting=1))
    assert LeastKVRouter().choose(req(), f, T).instance_id == "a"


def test_least_kv_reads_utilisation_not_tokens() -> None:
    f = fleet(inst("small", kv=300, cap=1000), inst("big", kv=400, cap=2000))
    assert LeastKVRouter().choose(req(), f, T).instance_id == "big"
    f = fleet(inst("s", kv=0, state=S), inst("a", kv=999), inst("b", kv=998))
    assert LeastKVRouter().choose(req(), f, T).instance_id == "b"


# ----------------------------------------------------------------- least-requests
def test_least_requests_strict_minimum_first_wins_ties() -> None:
    f = fleet(inst("s", state=S), inst("a", running=2, waiting=1), inst("b", running=1, waiting=1),
              inst("c", running=2))
    c = LeastRequestsRouter().choose(req(), f, T)
    assert (c.instance_id, c.score, c.reason) == ("b", 2.0, "least-requests")
    assert LeastRequestsRouter().choose(req(), fleet(inst("a", running=1), inst("b", waiting=1)), T).instance_id == "a"


# ----------------------------------------------------------------- power of two
def test_power_of_two_keeps_the_less_loaded_of_its_seeded_pair() -> None:
    views = [inst(f"i{k}", running=k % 4, waiting=k // 4) for k in range(8)]
    f = fleet(inst("s", state=S), *views)
    router, rng = PowerOfTwoRouter(seed=7), random.Random(7)
    for _ in range(30):
        a, b = rng.sample(views, 2)
        la, lb = a.running + a.waiting, b.running + b.waiting
        c = router.choose(req(), f, T)
        assert c.instance_id == (a if la <= lb else b).instance_id
        assert c.score == float(min(la, lb)) and c.reason == "power-of-two"


def test_power_of_two_default_seed_and_single_instance() -> None:
    f = fleet(*[inst(f"i{k}") for k in range(6)])
    assert [PowerOfTwoRouter().choose(req(), f, T).instance_id for _ in range(3)] == \
        [PowerOfTwoRouter(seed=0).choose(req(), f, T).instance_id for _ in range(3)]
    rng = random.Random(0)
    router = PowerOfTwoRouter()
    assert [router.choose(req(), f, T).instance_id for _ in range(10)] == \
        [rng.sample(f.instances, 2)[0].instance_id for _ in range(10)]  # equal loads: the first of the pair
    c = PowerOfTwoRouter().choose(req(), fleet(inst("s", state=S), inst("only", running=5)), T)
    assert (c.instance_id, c.score, c.reason) == ("only", None, "power-of-two: single instance")


# ----------------------------------------------------------------- random
def test_random_draws_from_its_own_seeded_stream() -> None:
    views = [inst(f"i{k}") for k in range(5)]
    f = fleet(inst("s", state=S), *views)
    rng = random.Random(0)
    router = RandomRouter()
    picks = [router.choose(req(), f, T) for _ in range(20)]
    assert [p.instance_id for p in picks] == [views[rng.randrange(5)].instance_id for _ in range(20)]
    assert {p.reason for p in picks} == {"random"}


# ----------------------------------------------------------------- round robin
def test_round_robin_orders_ids_numerically() -> None:
    f = fleet(inst("i10"), inst("i2"), inst("i1"), inst("x", state=S))
    router = RoundRobinRouter()
    assert [router.choose(req(), f, T).instance_id for _ in range(4)] == ["i1", "i2", "i10", "i1"]
    assert router.choose(req(), f, T).reason == "round-robin"


def test_round_robin_continues_after_the_last_pick_when_it_left() -> None:
    router = RoundRobinRouter()
    f = fleet(inst("i1"), inst("i2"), inst("i3"), inst("i4"))
    assert [router.choose(req(), f, T).instance_id for _ in range(2)] == ["i1", "i2"]
    f.instances[1].state = S  # i2 (the last pick) leaves: go on with the next id after it
    assert router.choose(req(), f, T).instance_id == "i3"
    f.instances[3].state = S  # i4 leaves too: after i3 comes i1 again
    assert router.choose(req(), f, T).instance_id == "i1"
    router2 = RoundRobinRouter()
    g = fleet(inst("i1"), inst("i2"), inst("i3"))
    assert [router2.choose(req(), g, T).instance_id for _ in range(3)] == ["i1", "i2", "i3"]
    g.instances[2].state = S  # i3 (the last pick, the highest id) leaves: wrap to the first
    assert router2.choose(req(), g, T).instance_id == "i1"
    g.instances[2].state = R  # i3 is back: the cycle is rebuilt and goes on after i1
    assert [router2.choose(req(), g, T).instance_id for _ in range(3)] == ["i2", "i3", "i1"]


def test_round_robin_order_key() -> None:
    assert _order("i12") == (12, "i12")
    assert _order("node-7") == (7, "node-7")
    assert _order("gpu_3") == (3, "gpu_3")
    assert _order("zeta") == (-1, "zeta")
    assert _order("i1a") == (-1, "i1a")
    assert sorted(["b", "i3", "a", "i20"], key=_order) == ["a", "b", "i3", "i20"]


# ----------------------------------------------------------------- token load
def test_token_load_ledger_uses_prediction_then_mean_then_prior() -> None:
    r = TokenLoadRouter(prior_output_tokens=50)
    assert r.expected_output(req()) == 50
    assert r.expected_output(req(predicted=7.5)) == 7.5
    r.on_routed(req("a", 100, predicted=400), "i0", T)  # 500 tokens
    r.on_routed(req("b", 100), "i1", T)  # 100 + prior 50
    c = r.choose(req(), fleet(inst("i0"), inst("i1"), inst("i2", state=S)), T)
    assert (c.instance_id, c.score, c.reason) == ("i1", 150.0, "token-load")
    r.on_completed(CompletionInfo("a", "i0", T, T + 1, 100, 300, 0.1), T + 1)
    r.on_completed(CompletionInfo("x", "i0", T, T + 1, 100, 100, 0.1), T + 1)  # not placed by this router
    assert r.expected_output(req()) == 200.0  # (300 + 100) / 2
    assert r.choose(req(), fleet(inst("i0"), inst("i1")), T + 1).score == 0.0  # i0 released its 500


def test_token_load_ties_go_to_the_first_and_unknown_instances_are_empty() -> None:
    r = TokenLoadRouter()
    r.on_routed(req("a", 10), "i0", T)
    c = r.choose(req(), fleet(inst("i0"), inst("i1"), inst("i2")), T)
    assert (c.instance_id, c.score) == ("i1", 0.0)
    tiny = TokenLoadRouter()
    tiny.on_routed(req("t", 0, predicted=0.5), "i0", T)  # half a token in flight: still more than nothing
    assert tiny.expected_output(req(predicted=0.5)) == 0.5
    assert tiny.choose(req(), fleet(inst("i0"), inst("i1")), T).instance_id == "i1"
    r.on_routed(req("b", 10), "i1", T)
    assert r.choose(req(), fleet(inst("i0"), inst("i1")), T).instance_id == "i0"


def test_token_load_never_goes_negative_and_forgets_removed_instances() -> None:
    r = TokenLoadRouter(prior_output_tokens=0)
    r.on_routed(req("a", 100), "i0", T)
    r.on_routed(req("b", 50), "i1", T)
    r.on_instance_removed("i0", T)
    r.on_completed(CompletionInfo("a", "i0", T, T + 1, 100, 10, 0.1), T + 1)  # its instance is gone
    assert "i0" not in r._load
    r.on_instance_removed("never", T)
    r._load["i1"] = 20.0  # the ledger drifted below what is placed
    r.on_completed(CompletionInfo("b", "i1", T, T + 1, 50, 10, 0.1), T + 1)
    assert r._load["i1"] == 0.0
    r.on_completed(CompletionInfo("b", "i1", T, T + 1, 50, 10, 0.1), T + 1)  # a duplicate: nothing placed
    assert r._load["i1"] == 0.0


def test_token_load_prior_is_validated() -> None:
    with pytest.raises(ValueError):
        TokenLoadRouter(prior_output_tokens=-1)
    assert TokenLoadRouter(prior_output_tokens=0).expected_output(req()) == 0
    assert TokenLoadRouter().expected_output(req()) == 200.0
