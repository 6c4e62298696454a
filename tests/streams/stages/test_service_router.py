"""The route agent's pure state: one decision per request, pending until ready (its input held un-acked),
snapshots, dead letters."""

from __future__ import annotations

from streams.pipeline_config import PipelineConfig
from streams.records import (
    Completion,
    DeadLetter,
    InstanceEvent,
    InstanceEventKind,
    InstanceState,
    PredictedRequest,
    RouteDecision,
    RoutingTable,
)
from streams.stages.control import AckPlan, DeferredAcks, RouteAgentState
from streams.transport.messages import RawMessage

SVC = "svc"


def req(ts: float, rid: str, offset: int | None = None, service: str = SVC) -> RawMessage:
    r = PredictedRequest(ts=ts, request_id=rid, service=service, prompt_tokens=100, output_tokens=10,
                         predicted_tokens=50, predicted_p90_tokens=80, predictor="fallback", prompt="hi")
    return RawMessage("predicted-requests", service.encode(), r.to_json(), None if offset is None else 0, offset)


def inst(ts: float, iid: str, kind: InstanceEventKind, state: InstanceState, service: str = SVC,
         **load: int) -> RawMessage:
    e = InstanceEvent(ts=ts, service=service, instance_id=iid, kind=kind, state=state, kv_capacity_tokens=100_000,
                      **load)
    return RawMessage("instance-events", service.encode(), e.to_json(), 0, 1000 + int(ts))


def ready(ts: float, iid: str = "i0", service: str = SVC) -> RawMessage:
    return inst(ts, iid, InstanceEventKind.READY, InstanceState.READY, service)


def key(offset: int) -> tuple[str, int, int]:
    return ("predicted-requests", 0, offset)


def decisions(out: list) -> list[RouteDecision]:
    return [r for r in out if isinstance(r, RouteDecision)]


def state(policy: str = "least-requests:fixed") -> RouteAgentState:
    return RouteAgentState(PipelineConfig(policy=policy, snapshot_every_s=10.0))


def test_requests_wait_for_a_ready_instance_then_route_at_its_ready_time() -> None:
    st = state()
    assert decisions(st.handle([req(100.0, "a"), req(101.0, "b")], now=0.0)) == []
    out = st.handle([inst(105.0, "i0", InstanceEventKind.READY, InstanceState.READY)], now=0.0)
    ds = decisions(out)
    assert [d.request_id for d in ds] == ["a", "b"]
    assert all(d.instance_id == "i0" and d.ts == 105.0 for d in ds)
    assert [d.arrival_ts for d in ds] == [100.0, 101.0]
    assert ds[0].prompt_hash and "hi" not in ds[0].model_dump_json()  # the prompt is hashed, never copied


def test_exactly_one_decision_per_request_id_under_redelivery() -> None:
    st = state()
    st.handle([inst(0.0, "i0", InstanceEventKind.READY, InstanceState.READY)], now=0.0)
    out = st.handle([req(1.0, "a"), req(1.0, "a"), req(2.0, "b")], now=0.0)
    out += st.handle([req(1.0, "a")], now=0.0)
    assert [d.request_id for d in decisions(out)] == ["a", "b"]
    assert st.services.get(SVC).duplicates == 2


def test_router_spreads_over_ready_instances_and_sees_completions() -> None:
    st = state()
    st.handle([inst(0.0, "i0", InstanceEventKind.READY, InstanceState.READY),
               inst(0.0, "i1", InstanceEventKind.READY, InstanceState.READY),
               inst(0.0, "i2", InstanceEventKind.START_REQUESTED, InstanceState.STARTING)], now=0.0)
    ds = decisions(st.handle([req(1.0 + i, f"r{i}") for i in range(4)], now=0.0))
    assert sorted(d.instance_id for d in ds) == ["i0", "i0", "i1", "i1"]  # never the starting one
    c = Completion(ts=9.0, request_id="r0", service=SVC, instance_id=ds[0].instance_id, arrival_ts=1.0,
                   prompt_tokens=100, output_tokens=10, ttft_s=0.1, e2e_s=8.0)
    st.handle([RawMessage("completions", SVC.encode(), c.to_json())], now=0.0)
    svc = st.services.get(SVC)
    assert sum(i.running + i.waiting for i in svc.fleet.instances.values()) == 4  # applied before the next decision
    svc.flush()
    assert sum(i.running + i.waiting for i in svc.fleet.instances.values()) == 3


def test_routing_table_snapshots_at_a_fixed_event_time_cadence() -> None:
    st = state()
    st.handle([inst(0.0, "i0", InstanceEventKind.READY, InstanceState.READY)], now=0.0)
    tables = []
    for t in range(1, 45):
        tables += [r for r in st.handle([req(float(t), f"r{t}")], now=0.0) if isinstance(r, RoutingTable)]
    assert [t.ts for t in tables] == [10.0, 20.0, 30.0, 40.0]
    assert tables[0].instances[0]["instance_id"] == "i0"


def test_bad_input_becomes_one_dead_letter_only_for_reported_topics() -> None:
    st = state()
    out = st.handle([RawMessage("predicted-requests", b"k", b"{not json", 3, 17),
                     RawMessage("completions", b"k", b"{not json")], now=5.0)
    dead = [r for r in out if isinstance(r, DeadLetter)]
    assert len(dead) == 1 and dead[0].source_topic == "predicted-requests" and dead[0].offset == 17
    assert "malformed JSON" in dead[0].reason


def test_stopped_instances_leave_the_view() -> None:
    st = state()
    st.handle([inst(0.0, "i0", InstanceEventKind.READY, InstanceState.READY),
               inst(1.0, "i1", InstanceEventKind.READY, InstanceState.READY)], now=0.0)
    st.handle([inst(2.0, "i1", InstanceEventKind.STOPPED, InstanceState.STOPPED)], now=0.0)
    assert {d.instance_id for d in decisions(st.handle([req(3.0 + i, f"r{i}") for i in range(3)], 0.0))} == {"i0"}


def test_a_pending_request_holds_its_input_until_it_is_routed() -> None:
    st = state()
    st.handle([req(1.0, "a", offset=10), req(2.0, "b", offset=11)], now=0.0)
    assert st.take_acks() == AckPlan(hold=frozenset({key(10), key(11)}), release=[])
    assert st.take_acks() == AckPlan()  # a plan is taken once
    out = st.handle([ready(5.0)], now=0.0)
    assert [d.request_id for d in decisions(out)] == ["a", "b"]
    assert st.take_acks() == AckPlan(hold=frozenset(), release=[key(10), key(11)])


def test_only_the_pending_service_holds_its_inputs() -> None:
    st = state()
    st.handle([ready(0.0, service="up")], now=0.0)
    st.take_acks()
    out = st.handle([req(1.0, "a", offset=10), req(1.5, "x", offset=11, service="up"), req(2.0, "b", offset=12)],
                    now=0.0)
    assert [d.request_id for d in decisions(out)] == ["x"]  # routed at once: its input is acked with the batch
    assert st.take_acks().hold == frozenset({key(10), key(12)})


def test_a_request_pending_and_routed_in_one_batch_is_not_held() -> None:
    st = state()
    out = st.handle([req(1.0, "a", offset=10), ready(2.0), req(3.0, "b", offset=11)], now=0.0)
    assert [d.request_id for d in decisions(out)] == ["a", "b"]
    # b joined the queue behind a (a queue keeps its order), and both were routed when the batch's READY applied
    assert st.take_acks() == AckPlan(hold=frozenset(), release=[key(10), key(11)])


def test_a_redelivered_copy_of_a_pending_request_is_held_and_released_with_it() -> None:
    st = state()
    st.handle([req(1.0, "a", offset=10)], now=0.0)
    st.take_acks()
    st.handle([req(1.0, "a", offset=10)], now=0.0)  # e.g. after a rebalance back to this worker
    assert st.take_acks().hold == frozenset({key(10)})
    out = st.handle([ready(5.0)], now=0.0)
    assert [d.request_id for d in decisions(out)] == ["a"]  # still one decision
    assert st.take_acks().release == [key(10), key(10)]


def test_deferred_acks_hand_back_held_events_once_released() -> None:
    st, acks = state(), DeferredAcks[str]()
    batch1 = [req(1.0, "a", offset=10), req(2.0, "b", offset=11)]
    st.handle(batch1, now=0.0)
    assert acks.settle(["ev-a", "ev-b"], batch1, st.take_acks()) == [] and len(acks) == 2
    batch2 = [ready(5.0), req(6.0, "c", offset=12)]
    st.handle(batch2, now=0.0)
    assert acks.settle(["ev-ready", "ev-c"], batch2, st.take_acks()) == ["ev-a", "ev-b", "ev-ready", "ev-c"]
    assert len(acks) == 0


def test_messages_without_coordinates_are_never_held() -> None:
    st = state()
    batch = [req(1.0, "a")]
    st.handle(batch, now=0.0)
    assert DeferredAcks[str]().settle(["ev-a"], batch, st.take_acks()) == ["ev-a"]
    assert len(st.services.get(SVC).pending) == 1


def test_policies_see_the_prompt_length_the_engine_serves_as_offline() -> None:
    st = state("token-load:fixed")
    st.handle([ready(0.0)], now=0.0)
    svc = st.services.get(SVC)
    seen: list[int] = []
    choose = svc.router.choose
    svc.router.choose = lambda info, fleet, now: (seen.append(info.prompt_tokens), choose(info, fleet, now))[1]  # type: ignore[method-assign]
    big = PredictedRequest(ts=1.0, request_id="long", service=SVC, prompt_tokens=10_000, predicted_tokens=10.0,
                           predicted_p90_tokens=20.0, predictor="fallback")
    st.handle([RawMessage("predicted-requests", SVC.encode(), big.to_json())], now=0.0)
    assert seen == [4095]  # llama2-7b's 4,096-token context: the simulator's over-length rule
