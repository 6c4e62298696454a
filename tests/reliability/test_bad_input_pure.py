"""Bad input at the pure level: ``parse_or_dead_letter`` and the agents' ``handle(...)`` (many examples, fast).

What must hold for any input: nothing raises; every bad message becomes exactly one dead letter carrying its
Kafka coordinates and a reason that names the fault; the good messages around it are processed as if the bad
ones were not there (same predictions, same routes, same density windows as the offline function).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streams.pipeline_config import PipelineConfig
from streams.policies.density_windows import density_series
from streams.records import (
    Completion,
    DeadLetter,
    InstanceEvent,
    InstanceEventKind,
    InstanceState,
    PredictedRequest,
    RequestEvent,
    RouteDecision,
    parse_event,
)
from streams.stages.control import RouteAgentState, ScaleAgentState
from streams.stages.density import DensityAgentState
from streams.stages.predict import PredictAgentState
from streams.transport.dead_letters import MAX_PAYLOAD_CHARS, parse_or_dead_letter
from streams.transport.event_skew import SkewSettings
from streams.transport.messages import RawMessage
from tests.reliability.bad_events import Case, bad_completion, bad_request, encode, good_request, mixed

# The fuzzed good requests are spread over three days (odd but valid *content*); the window around the stream's
# event time is a separate rule, tested in tests/streams/test_event_skew.py: it is off here.
NO_SKEW = SkewSettings(max_ahead_s=0.0, max_behind_s=0.0)

pytestmark = pytest.mark.timeout(180)

# database=None: no example database written into the working tree; every run draws fresh examples.
FAST = settings(max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
BATCH = settings(max_examples=60, deadline=None, database=None,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
CFG = PipelineConfig(policy="preserve:preserve", predictor="fallback", density_window_s=60.0, density_grace_s=30.0)


FUZZED: Counter[str] = Counter()  # messages handled (bad / good / duplicate), printed at the end (figures in the docs)


@pytest.fixture(scope="module", autouse=True)
def fuzz_figures() -> Iterator[None]:
    yield
    print(f"\nfuzzed at the pure level: {sum(FUZZED.values())} messages, {FUZZED['bad']} of them bad, "
          f"{FUZZED['duplicate']} redelivered duplicates")


def _count(cases: list[Case], duplicates: int = 0) -> None:
    FUZZED["bad"] += sum(c.bad for c in cases)
    FUZZED["good"] += sum(not c.bad for c in cases)
    FUZZED["duplicate"] += duplicates


@pytest.fixture(scope="module")
def route_cfg() -> PipelineConfig:
    RouteAgentState(CFG)  # pays the policy imports once for the module
    return CFG


def _msgs(topic: str, cases: list[Case], first_offset: int = 0) -> list[RawMessage]:
    return [RawMessage(topic, b"svc-a", c.value, 0, first_offset + i) for i, c in enumerate(cases)]


@FAST
@given(raw=st.binary(max_size=3000), cls=st.sampled_from([RequestEvent, Completion]), offset=st.integers(0, 2**40))
def test_arbitrary_bytes_never_raise_and_dead_letters_are_bounded(raw: bytes, cls: type, offset: int) -> None:
    out = parse_or_dead_letter(raw, cls, cls.topic, time.time(), key=raw[:300], partition=3, offset=offset)
    assert isinstance(out, (cls, DeadLetter))
    FUZZED["bad" if isinstance(out, DeadLetter) else "good"] += 1
    if isinstance(out, DeadLetter):
        assert out.reason and out.source_topic == cls.topic and (out.partition, out.offset) == (3, offset)
        assert len(out.payload) <= MAX_PAYLOAD_CHARS and (out.key is None or len(out.key) <= 256)
        assert parse_event(out.to_json(), DeadLetter) == out  # the dead letter itself is a valid record


@FAST
@given(case=bad_request())
def test_every_bad_request_is_dead_lettered_with_its_reason(case: Case) -> None:
    out = parse_or_dead_letter(case.value, RequestEvent, "requests", time.time(), b"k", 0, 7)
    _count([case])
    assert isinstance(out, DeadLetter), case.kind
    assert case.expect in out.reason, (case.kind, out.reason)


@FAST
@given(case=bad_completion())
def test_every_bad_completion_is_dead_lettered_with_its_reason(case: Case) -> None:
    out = parse_or_dead_letter(case.value, Completion, "completions", time.time(), b"k", 0, 7)
    _count([case])
    assert isinstance(out, DeadLetter), case.kind
    assert case.expect in out.reason, (case.kind, out.reason)


def _check_dead_letters(out: list, cases: list[Case], topic: str) -> None:
    dead = [r for r in out if isinstance(r, DeadLetter)]
    want = {i: c for i, c in enumerate(cases) if c.bad}
    assert sorted(d.offset for d in dead) == sorted(want)  # exactly one per bad message, none for good ones
    for d in dead:
        assert d.source_topic == topic and want[d.offset].expect in d.reason


@BATCH
@given(cases=mixed("requests"))
def test_predict_state_answers_every_good_request_and_dead_letters_each_bad_one(cases: list[Case]) -> None:
    state = PredictAgentState("fallback", skew=NO_SKEW)
    _count(cases)
    out = state.handle(_msgs("requests", cases), time.time())
    _check_dead_letters(out, cases, "requests")
    preds = [r for r in out if isinstance(r, PredictedRequest)]
    good = [parse_event(c.value, RequestEvent) for c in cases if not c.bad]  # type: ignore[arg-type]
    assert [p.request_id for p in preds] == [g.request_id for g in good]  # order kept
    assert all(p.predictor == "fallback" and p.predicted_p90_tokens >= p.predicted_tokens >= 0 for p in preds)
    alone = state.handle(_msgs("requests", [c for c in cases if not c.bad]), time.time())
    assert [(p.request_id, p.predicted_tokens) for p in alone] == [(p.request_id, p.predicted_tokens) for p in preds]


def _ready(service: str, ts: float) -> bytes:
    return InstanceEvent(ts=ts, service=service, instance_id=f"{service}-0", kind=InstanceEventKind.READY,
                         state=InstanceState.READY, kv_capacity_tokens=100_000).to_json()


def _predicted(raw: bytes | None) -> bytes | None:
    """A request case as the predict agent would forward it (bad ones stay bad)."""
    try:
        req = parse_event(raw or b"", RequestEvent)
    except ValueError:
        return raw
    return encode({**req.model_dump(), "predicted_tokens": 100.0, "predicted_p90_tokens": 200.0,
                   "predictor": "fallback"})


@BATCH
@given(cases=mixed("requests", 25), dup_every=st.integers(1, 5))
def test_route_state_routes_each_good_request_once_despite_bad_and_duplicate_input(
        route_cfg: PipelineConfig, cases: list[Case], dup_every: int) -> None:
    state = RouteAgentState(route_cfg)
    t0 = time.time() - 4 * 86400
    state.handle([RawMessage("instance-events", b"svc-a", _ready("svc-a", t0), 0, 0)], time.time())
    raw = [Case(_predicted(c.value), c.expect, c.kind) for c in cases]
    # at-least-once: every dup_every-th good message is delivered again right behind the original
    delivered: list[Case] = []
    for i, c in enumerate(raw):
        delivered.append(c)
        if not c.bad and i % dup_every == 0:
            delivered.append(c)
    _count(raw, len(delivered) - len(raw))
    out = state.handle(_msgs("predicted-requests", delivered), time.time())
    dead = [r for r in out if isinstance(r, DeadLetter)]
    assert len(dead) == sum(c.bad for c in raw)
    routes = [r for r in out if isinstance(r, RouteDecision)]
    good = [parse_event(c.value, PredictedRequest) for c in raw if not c.bad]  # type: ignore[arg-type]
    on_a = {g.request_id for g in good if g.service == "svc-a"}
    assert len(routes) == len({r.request_id for r in routes})  # never two decisions for one request
    assert {r.request_id for r in routes} == on_a  # svc-a has a ready instance: all routed
    waiting = sum(len(s.pending) for name, s in state.services.by_service.items() if name != "svc-a")
    assert waiting == len({(g.service, g.request_id) for g in good if g.service != "svc-a"})  # no instance yet


@BATCH
@given(cases=mixed("completions", 40), dup_every=st.integers(1, 4))
def test_density_state_equals_offline_windows_despite_bad_and_duplicate_completions(
        cases: list[Case], dup_every: int) -> None:
    state = DensityAgentState(CFG.density_window_s, CFG.density_grace_s)
    delivered = [c for i, c in enumerate(cases) for _ in range(2 if not c.bad and i % dup_every == 0 else 1)]
    _count(cases, len(delivered) - len(cases))
    out = state.handle(_msgs("completions", delivered), time.time())
    assert sum(isinstance(r, DeadLetter) for r in out) == sum(c.bad for c in cases)
    live = [r for r in out if not isinstance(r, DeadLetter)] + state.acc.flush()
    good = [parse_event(c.value, Completion) for c in cases if not c.bad]  # type: ignore[arg-type]
    offline = density_series(good, CFG.density_window_s, CFG.density_grace_s)
    key = lambda w: (w.service, w.window_start)  # noqa: E731
    assert sorted(live, key=key) == sorted(offline.windows, key=key)


@pytest.mark.parametrize("topic", ["requests", "predicted-requests", "completions", "instance-events", "forecasts"])
def test_a_bad_message_is_reported_by_exactly_one_of_the_agents_reading_its_topic(
        route_cfg: PipelineConfig, topic: str) -> None:
    """Several agents read completions and predicted-requests; only one of them may dead-letter a bad one."""
    readers = {"requests": [PredictAgentState("fallback", skew=NO_SKEW)],
               "predicted-requests": [RouteAgentState(route_cfg), ScaleAgentState(route_cfg)],
               "completions": [RouteAgentState(route_cfg), DensityAgentState(60.0, 30.0), ScaleAgentState(route_cfg)],
               "instance-events": [RouteAgentState(route_cfg), ScaleAgentState(route_cfg)],
               "forecasts": [ScaleAgentState(route_cfg)]}[topic]
    bad = [RawMessage(topic, b"svc-a", v, 0, i) for i, v in enumerate([b"{", b"[]", b'{"v": 1}', None])]
    dead = [r for state in readers for r in state.handle(bad, time.time()) if isinstance(r, DeadLetter)]
    assert sorted(d.offset for d in dead) == [0, 1, 2, 3]


def test_good_requests_around_an_oversized_prompt_are_unaffected() -> None:
    from streams.records import MAX_PROMPT_CHARS

    cases = [Case(encode(good_request(0)), "", "good"),
             Case(encode(good_request(1, prompt="x" * (MAX_PROMPT_CHARS + 1))), "prompt", "oversized"),
             Case(encode(good_request(2)), "", "good")]
    out = PredictAgentState("fallback", skew=NO_SKEW).handle(_msgs("requests", cases), time.time())
    assert [type(r).__name__ for r in out] == ["DeadLetter", "PredictedRequest", "PredictedRequest"]
    assert "prompt" in out[0].reason and len(out[0].payload) <= MAX_PAYLOAD_CHARS  # type: ignore[union-attr]
