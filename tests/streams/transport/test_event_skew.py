"""Event times one client cannot corrupt (issue 21, item 1): the window around the stream's event time."""

from __future__ import annotations

import pytest

from streams.records import DeadLetter, PredictedRequest, RequestEvent
from streams.stages.predict import PredictAgentState
from streams.transport.event_skew import EventSkewGuard, SkewSettings
from streams.transport.messages import RawMessage

DAY = 86_400.0


def test_a_replay_with_any_epoch_and_speedup_is_accepted_by_the_stream_clock() -> None:
    for epoch, speedup in ((1_000.0, 1.0), (1.7e9 - 30 * DAY, 10.0), (5.0e8, 24.0)):
        g = EventSkewGuard(SkewSettings(speedup=speedup))
        for i in range(500):
            wall = 1.7e9 + i * 0.1
            assert g.check(epoch + i * 0.1 * speedup, wall) is None


def test_far_ahead_and_far_behind_are_refused_with_the_reason_and_a_minority_cannot_move_the_clock() -> None:
    g = EventSkewGuard()
    wall0 = 1.7e9
    refused = []
    for i in range(300):
        wall = wall0 + i
        assert g.check(wall - 0.2, wall) is None  # healthy gateways: wall-clock stamps
        if i % 5 == 0:  # a fifth of the events come from two broken clients
            refused.append(g.check(wall + 20 * 3600.0, wall))
            refused.append(g.check(2001.0, wall))
    assert all(r is not None for r in refused) and g.rejected == len(refused)
    assert "ahead" in str(refused[0]) and "more than 300 s" in str(refused[0])
    assert "behind" in str(refused[1]) and "more than 3600 s" in str(refused[1])
    # the edges of the live defaults: 5 min ahead, 1 h behind
    wall = wall0 + 400
    assert g.check(wall + 290, wall) is None and g.check(wall + 320, wall) is not None
    assert g.check(wall - 3500, wall) is None and g.check(wall - 3700, wall) is not None


def test_the_wall_clock_mode_refuses_a_replay_clock_and_zero_turns_a_side_off() -> None:
    g = EventSkewGuard(SkewSettings(clock="wall"))
    assert g.check(1.7e9 + 10.0, 1.7e9) is None
    assert g.check(1.0e9, 1.7e9) is not None  # the first event is checked too: the wall is the reference
    off = EventSkewGuard(SkewSettings(clock="wall", max_ahead_s=0.0, max_behind_s=0.0))
    assert off.check(1.0e9, 1.7e9) is None and off.check(1.8e9, 1.7e9) is None
    with pytest.raises(ValueError, match="event clock"):
        SkewSettings(clock="gps")


def test_a_stream_that_truly_jumps_is_followed_once_half_the_memory_holds_the_new_clock() -> None:
    g = EventSkewGuard(SkewSettings(memory=16))
    for i in range(16):
        assert g.check(1_000.0 + i, 1.7e9 + i) is None
    verdicts = [g.check(9_000_000.0 + i, 1.7e9 + 16 + i) is None for i in range(16)]
    assert not verdicts[0] and all(verdicts[9:])  # a new replay epoch: refused at first, then followed


def _request(i: int, service: str, ts: float) -> RawMessage:
    ev = RequestEvent(ts=ts, request_id=f"{service}-{i}", service=service, prompt_tokens=100, output_tokens=20)
    return RawMessage("requests", service.encode(), ev.to_json(), partition=0, offset=i)


def test_predict_dead_letters_a_request_20_h_ahead_and_one_at_2001_and_predicts_every_other() -> None:
    state = PredictAgentState("fallback")  # live defaults: the stream's own clock, 5 min ahead, 1 h behind
    wall = 1.7e9
    msgs = [_request(i, f"svc-{i % 3}", wall - 0.5) for i in range(30)]
    msgs.insert(10, _request(100, "svc-skew", wall + 20 * 3600.0))
    msgs.insert(20, _request(101, "svc-skew", 2001.0))
    out = state.handle(msgs, wall)
    dead = [r for r in out if isinstance(r, DeadLetter)]
    assert [(d.offset, d.source_topic) for d in dead] == [(100, "requests"), (101, "requests")]
    assert "ahead" in dead[0].reason and "behind" in dead[1].reason
    preds = [r for r in out if isinstance(r, PredictedRequest)]
    assert sorted(p.request_id for p in preds) == sorted(f"svc-{i % 3}-{i}" for i in range(30))


def test_an_undeclared_replay_speedup_is_followed_on_a_busy_and_on_a_quiet_stream() -> None:
    for rate, speedup in ((50.0, 24.0), (1.0, 20.0)):  # requests per wall second, the replay's real speedup
        g = EventSkewGuard()  # speedup 1 assumed
        verdicts = [g.check(1.7e9 + speedup * i / rate, 1.7e9 + i / rate) for i in range(2000)]
        assert verdicts.count(None) == len(verdicts), (rate, speedup, next(v for v in verdicts if v))


def test_a_quiet_stream_keeps_its_last_events_so_one_skewed_event_cannot_poison_the_next() -> None:
    g = EventSkewGuard()
    for i in range(10):  # one request a minute: older than memory_s, but the last min_keep stay
        assert g.check(1.7e9 + 60 * i, 1.7e9 + 60 * i) is None
    assert g.check(2001.0, 1.7e9 + 601) is not None
    assert g.check(1.7e9 + 660, 1.7e9 + 660) is None
