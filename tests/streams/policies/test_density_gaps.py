"""Gaps in event time are skipped in O(1) (issue 21, item 1): a service idle for ten days (or a clock that jumps)
must not make the density stage, or the forecaster it feeds, roll the gap window by window."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from models.workload import OnlineForecaster
from streams.policies.density_windows import MAX_QUIET_WINDOWS, DensityAccumulator, density_frame

W = 60.0
DAY = 86_400.0


@dataclass(frozen=True)
class Ev:
    service: str
    ts: float
    prompt_tokens: int = 10
    output_tokens: int = 5


def _gap_windows(gap_s: float) -> list:
    acc = DensityAccumulator(W, grace_s=30.0)
    out = []
    for t in (0.0, 61.0, 130.0, 130.0 + gap_s, 130.0 + gap_s + 70.0, 130.0 + gap_s + 200.0):
        acc.add(Ev("svc", t))
        out += acc.close_until()
    return out


def test_a_ten_day_gap_emits_a_bounded_run_of_zero_windows_then_jumps() -> None:
    ten_days, thousand_days = _gap_windows(10 * DAY), _gap_windows(1000 * DAY)
    assert len(ten_days) == len(thousand_days) <= MAX_QUIET_WINDOWS + 6  # O(1): the gap's length does not count
    start = (130.0 + 10 * DAY) // W * W
    quiet = [w.window_start for w in ten_days if w.requests == 0]
    # the first hour of the gap as zeros, then a jump; a short hole after it is a zero window again
    assert quiet == [(3 + i) * W for i in range(MAX_QUIET_WINDOWS)] + [start + 2 * W]
    busy = [(w.window_start, w.requests) for w in ten_days if w.requests]
    assert busy == [(0.0, 1), (W, 1), (2 * W, 1), (start, 1), (start + W, 1)]


def test_the_offline_frame_follows_the_same_rule() -> None:
    ts = [0.0, 61.0, 130.0, 130.0 + 10 * DAY, 130.0 + 10 * DAY + 70.0, 130.0 + 10 * DAY + 200.0]
    frame, late = density_frame(pd.DataFrame({"service": "svc", "ts": ts, "prompt_tokens": 10, "output_tokens": 5}),
                                W, 30.0)
    live = _gap_windows(10 * DAY) + DensityAccumulator(W, 30.0).flush()
    acc = DensityAccumulator(W, 30.0)
    for t in ts:
        acc.add(Ev("svc", t))
    flushed = acc.flush()
    assert not late.any()
    assert list(frame["window_start"]) == [w.window_start for w in flushed]
    assert [w.window_start for w in live] == [w.window_start for w in flushed][:len(live)]


def test_the_forecaster_fills_a_gap_up_to_its_memory_only() -> None:
    appended: list[int] = []

    def after_gap(gap_windows: int) -> OnlineForecaster:
        f = OnlineForecaster(W, "ewma", checkpoint=None)
        for i in range(30):
            f.observe(i * W, 10, 100, 50)
            f.forecast(3)
        append = f._append
        n = [0]

        def counted(start: float, row: list[float]) -> None:
            n[0] += 1
            append(start, row)

        f._append = counted  # type: ignore[method-assign]
        f.observe((30 + gap_windows) * W, 10, 100, 50)
        appended.append(n[0])
        return f

    ten_days, thousand_days = after_gap(int(10 * DAY / W)), after_gap(int(1000 * DAY / W))
    assert appended[0] == appended[1] <= ten_days._memory() + 1  # work per gap: the memory, not the gap's length
    assert len(ten_days) == len(thousand_days)
    assert ten_days._n_total == 30 + int(10 * DAY / W) + 1  # absolute window indices still count the whole gap
    out = thousand_days.forecast(3)
    assert out.first_window_start == (31 + int(1000 * DAY / W)) * W
