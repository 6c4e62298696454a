"""Time-compressed replay: event time = trace time, wall pacing = trace time / speedup, valid RequestEvents."""

from __future__ import annotations

import json
import math

import pandas as pd

from replay.producer import LONG_SPAN_S, default_epoch, replay_trace, request_payloads
from streams.records import MAX_PROMPT_CHARS, RequestEvent, parse_event


def trace() -> pd.DataFrame:
    return pd.DataFrame({"request_id": ["a", "b", "c"], "arrival_s": [0.0, 10.0, 30.0], "service": ["s", "s", "t"],
                         "prompt_tokens": [5, 6, 7], "output_tokens": [1, 2, 3],
                         "prompt": ["hi", None, "x" * (MAX_PROMPT_CHARS + 10)]})


class FakeClock:
    def __init__(self) -> None:
        self.t = 100.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.t

    def sleep(self, s: float) -> None:
        self.slept.append(s)
        self.t += s


def test_payloads_are_valid_request_events_in_trace_time() -> None:
    out = list(request_payloads(trace(), epoch=1000.0))
    events = [parse_event(p, RequestEvent) for _, _, p in out]
    assert [e.ts for e in events] == [1000.0, 1010.0, 1030.0]
    assert [e.output_tokens for e in events] == [1, 2, 3] and events[0].prompt == "hi" and events[1].prompt is None
    assert len(events[2].prompt or "") == MAX_PROMPT_CHARS
    assert [s for _, s, _ in out] == ["s", "s", "t"]
    bare = json.loads(next(iter(request_payloads(trace(), 0.0, with_prompts=False, with_truth=False)))[2])
    assert "prompt" not in bare and "output_tokens" not in bare


def test_paced_by_speedup_in_wall_time() -> None:
    clock, sent = FakeClock(), []
    counts = replay_trace(trace(), lambda k, v: sent.append((clock.t, k)), speedup=10.0, epoch=0.0, clock=clock,
                          sleep=clock.sleep)
    assert [round(t - 100.0, 6) for t, _ in sent] == [0.0, 1.0, 3.0]
    assert counts.sent == 3 and math.isclose(counts.wall_s, 3.0)


def test_unpaced_and_epochs() -> None:
    clock, sent = FakeClock(), []
    replay_trace(trace(), lambda k, v: sent.append(v), speedup=math.inf, epoch=0.0, clock=clock, sleep=clock.sleep)
    assert len(sent) == 3 and clock.slept == []
    assert default_epoch(60.0, 5000.5) == 5000.0
    assert default_epoch(LONG_SPAN_S + 1, 1e6) == 1e6 - LONG_SPAN_S - 1  # long traces end now, not in the future
