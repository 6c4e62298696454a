from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from streams.policies.density_windows import DensityAccumulator, density_series
from streams.records import Completion


@dataclass(frozen=True)
class Ev:
    service: str
    ts: float
    prompt_tokens: int = 10
    output_tokens: int = 5


def _rows(result) -> list[tuple]:
    return [(w.service, w.window_start, w.requests, w.prompt_tokens, w.output_tokens) for w in result]


@pytest.mark.parametrize("ts, start", [(0.0, 0.0), (59.999, 0.0), (60.0, 60.0), (60.0001, 60.0), (119.9, 60.0)])
def test_boundary_event_belongs_to_next_window(ts: float, start: float) -> None:
    """Both paths (batch and incremental) put an event exactly on a boundary into the next window."""
    batch = density_series([Ev("a", ts)], window_s=60.0).windows
    assert [w.window_start for w in batch] == [start]
    acc = DensityAccumulator(60.0)
    acc.add(Ev("a", ts))
    assert [w.window_start for w in acc.flush()] == [start]


def test_batch_sums_and_fills_empty_windows() -> None:
    evs = [Ev("a", 1.0, 100, 7), Ev("a", 60.0, 1, 2), Ev("b", 5.0, 3, 4), Ev("a", 190.0, 10, 10)]
    res = density_series(evs, window_s=60.0, grace_s=0.0)
    assert _rows(res.windows) == [("a", 0.0, 1, 100, 7), ("a", 60.0, 1, 1, 2), ("a", 120.0, 0, 0, 0),
                                  ("a", 180.0, 1, 10, 10), ("b", 0.0, 1, 3, 4)]
    assert res.windows[0].ts == 60.0 and res.late == []


def test_late_within_grace_counted_after_grace_reported() -> None:
    evs = [Ev("a", 10.0), Ev("a", 65.0), Ev("a", 59.0), Ev("a", 75.0), Ev("a", 58.0)]
    # grace 10: window [0,60) closes at watermark 70; the event at 59 (watermark 65) counts, the one at 58
    # (watermark 75) is late.
    res = density_series(evs, window_s=60.0, grace_s=10.0)
    assert _rows(res.windows) == [("a", 0.0, 2, 20, 10), ("a", 60.0, 2, 20, 10)]
    assert [e.ts for e in res.late] == [58.0]
    acc = DensityAccumulator(60.0, 10.0)
    emitted = []
    for e in evs:
        acc.add(e)
        emitted += acc.close_until()
    assert _rows(emitted) == [("a", 0.0, 2, 20, 10)]
    assert [e.ts for e in acc.take_late()] == [58.0] and acc.take_late() == []


def test_closes_exactly_at_window_end_plus_grace() -> None:
    acc = DensityAccumulator(60.0, 5.0)
    acc.add(Ev("a", 1.0))
    assert acc.close_until(64.999) == []
    out = acc.close_until(65.0)
    assert [w.window_start for w in out] == [0.0]
    assert acc.add(Ev("a", 2.0)) is False  # its window was emitted: late, not silently re-opened
    assert [w.window_start for w in acc.close_until(130.0)] == [60.0]  # empty window still emitted


def test_per_service_watermark() -> None:
    acc = DensityAccumulator(60.0, 0.0)
    acc.add(Ev("a", 500.0))
    assert acc.add(Ev("b", 10.0)) is True  # another service's lag does not make this late
    assert acc.watermark("b") == 10.0


def _random_stream(seed: int, n: int = 3000) -> list[Ev]:
    rng = np.random.default_rng(seed)
    base = np.sort(rng.uniform(0, 3600, n))
    jitter = rng.exponential(20.0, n) * (rng.random(n) < 0.3)  # 30% of events arrive out of order
    ts = np.maximum(base - jitter, 0.0)
    svc = rng.choice(["a", "b", "c"], n)
    return [Ev(str(s), float(t), int(rng.integers(1, 500)), int(rng.integers(0, 300))) for s, t in zip(svc, ts, strict=True)]


@pytest.mark.parametrize("seed, window_s, grace_s", [(0, 60.0, 0.0), (1, 60.0, 15.0), (2, 300.0, 30.0),
                                                     (3, 7.5, 2.5)])
def test_batch_equals_incremental(seed: int, window_s: float, grace_s: float) -> None:
    evs = _random_stream(seed)
    batch = density_series(evs, window_s, grace_s)
    acc = DensityAccumulator(window_s, grace_s)
    inc = []
    for e in evs:
        acc.add(e)
        inc += acc.close_until()
    inc += acc.flush()
    key = lambda w: (w.service, w.window_start)  # noqa: E731
    assert sorted(inc, key=key) == sorted(batch.windows, key=key)
    assert [id(e) for e in acc.take_late()] == [id(e) for e in batch.late]
    assert len(batch.late) > 0  # the stream does exercise late events
    total = sum(w.requests for w in batch.windows) + len(batch.late)
    assert total == len(evs)  # nothing silently dropped


def test_accepts_completion_records() -> None:
    c = Completion(ts=61.0, request_id="r", service="s", instance_id="i", arrival_ts=60.0, prompt_tokens=3,
                   output_tokens=4, ttft_s=0.1, e2e_s=1.0)
    res = density_series([c], 60.0)
    assert _rows(res.windows) == [("s", 60.0, 1, 3, 4)]
