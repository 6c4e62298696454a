"""The scale agent's pure state: bootstrap, event-time polling, commands with reasons."""

from __future__ import annotations

from streams.pipeline_config import PipelineConfig
from streams.records import InstanceEvent, InstanceEventKind, InstanceState, PredictedRequest, ScaleCommand
from streams.stages.control import ScaleAgentState
from streams.stages.service_scaler import BOOTSTRAP_REASON
from streams.transport.messages import RawMessage

SVC = "svc"


def req(ts: float, rid: str) -> RawMessage:
    r = PredictedRequest(ts=ts, request_id=rid, service=SVC, prompt_tokens=100, predicted_tokens=50,
                         predicted_p90_tokens=80, predictor="fallback")
    return RawMessage("predicted-requests", SVC.encode(), r.to_json())


def ready(ts: float, iid: str, waiting: int = 0) -> RawMessage:
    e = InstanceEvent(ts=ts, service=SVC, instance_id=iid, kind=InstanceEventKind.STATUS, state=InstanceState.READY,
                      waiting=waiting, kv_capacity_tokens=100_000)
    return RawMessage("instance-events", SVC.encode(), e.to_json())


def commands(out: list) -> list[ScaleCommand]:
    return [r for r in out if isinstance(r, ScaleCommand)]


def test_first_event_bootstraps_then_waits_for_the_fleet() -> None:
    st = ScaleAgentState(PipelineConfig(policy="round-robin:fixed(n=2)"))
    [boot] = commands(st.handle([req(100.0, "a")], now=0.0))
    assert boot.bootstrap and boot.reason == BOOTSTRAP_REASON and boot.target_instances == 2 and boot.ts == 100.0
    assert commands(st.handle([req(101.0 + i, f"r{i}") for i in range(20)], now=0.0)) == []


def test_reactive_scaler_polled_in_event_time() -> None:
    cfg = PipelineConfig(policy="round-robin:queue-depth", instances=1, max_instances=4)
    st = ScaleAgentState(cfg)
    st.handle([req(0.0, "a")], now=0.0)
    out = []
    for t in range(1, 100):
        out += st.handle([ready(float(t), "i0", waiting=50)], now=0.0)
    ups = commands(out)
    assert ups and ups[0].target_instances > 1 and ups[0].reason and ups[0].policy == "round-robin:queue-depth"
    assert ups[0].ts == cfg.warmup_s  # first polled warmup_s after the first arrival, as the simulator polls it
    assert len(ups) < 39  # polled every interval_s of event time, frozen after an action


def test_arrivals_wait_for_the_fleet_event_time_before_the_scaler_sees_them() -> None:
    st = ScaleAgentState(PipelineConfig(policy="round-robin:fixed(n=1)"))
    st.handle([req(0.0, "boot")], now=0.0)
    svc = st.services.get(SVC)
    seen: list[float] = []
    svc.scaler.observe_arrival = lambda info, now: seen.append(now)  # type: ignore[method-assign]
    st.handle([req(10.0, "a"), req(20.0, "b")], now=0.0)
    assert seen == []  # the fleet has reported nothing up to t=10 yet
    st.handle([ready(15.0, "i0")], now=0.0)
    assert seen == [0.0, 10.0]
    st.handle([ready(25.0, "i0")], now=0.0)
    assert seen == [0.0, 10.0, 20.0]
