"""The route agent's pure state: one decision per request, pending until ready, snapshots, dead letters."""

from __future__ import annotations

from streams.control_state import RouteAgentState
from streams.messages import RawMessage
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

SVC = "svc"


def req(ts: float, rid: str) -> RawMessage:
    r = PredictedRequest(ts=ts, request_id=rid, service=SVC, prompt_tokens=100, output_tokens=10,
                         predicted_tokens=50, predicted_p90_tokens=80, predictor="fallback", prompt="hi")
    return RawMessage("predicted-requests", SVC.encode(), r.to_json())


def inst(ts: float, iid: str, kind: InstanceEventKind, state: InstanceState, **load: int) -> RawMessage:
    e = InstanceEvent(ts=ts, service=SVC, instance_id=iid, kind=kind, state=state, kv_capacity_tokens=100_000, **load)
    return RawMessage("instance-events", SVC.encode(), e.to_json())


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
    fleet = st.services.get(SVC).fleet
    assert sum(i.running + i.waiting for i in fleet.instances.values()) == 3


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
