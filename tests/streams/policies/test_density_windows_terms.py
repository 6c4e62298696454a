"""Token density rules at their exact edges, batch and live side by side: an event exactly on a window
boundary, a watermark exactly at window end + grace, an event before the service's first window, several
services, flush, snapshot/restore. Windows of 7.5 s away from the origin (t ~ 6000 s)."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import pytest

from streams.policies.density_windows import (
    DENSITY_COLUMNS,
    DensityAccumulator,
    density_frame,
    density_series,
)

W = 7.5
B = 6000.0  # a window boundary (800 x 7.5)


@dataclass(frozen=True)
class Ev:
    service: str
    ts: float
    prompt_tokens: int = 10
    output_tokens: int = 5


def rows(windows: list) -> list[tuple]:
    return [(w.service, w.window_start, w.requests, w.prompt_tokens, w.output_tokens) for w in windows]


def live(evs: list[Ev], window_s: float = W, grace_s: float = 0.0) -> tuple[list[tuple], list[float]]:
    acc = DensityAccumulator(window_s, grace_s)
    out = []
    for e in evs:
        acc.add(e)
        out += acc.close_until()
    out += acc.flush()
    return sorted(rows(out)), [e.ts for e in acc.take_late()]


def batch(evs: list[Ev], window_s: float = W, grace_s: float = 0.0) -> tuple[list[tuple], list[float]]:
    res = density_series(evs, window_s, grace_s)
    return sorted(rows(res.windows)), [e.ts for e in res.late]


def both(evs: list[Ev], window_s: float = W, grace_s: float = 0.0) -> tuple[list[tuple], list[float]]:
    a, b = live(evs, window_s, grace_s), batch(evs, window_s, grace_s)
    assert a == b
    return a


def test_an_event_on_a_boundary_opens_the_next_window_in_both_paths() -> None:
    windows, late = both([Ev("a", B - 1.0, 1, 2), Ev("a", B, 3, 4), Ev("a", B + W, 5, 6)])
    assert windows == [("a", B - W, 1, 1, 2), ("a", B, 1, 3, 4), ("a", B + W, 1, 5, 6)]
    assert late == []


def test_a_watermark_exactly_at_window_end_plus_grace_makes_the_next_event_late() -> None:
    # grace 2: window [B - W, B) closes at watermark B + 2; an event of it after that is late in both paths
    evs = [Ev("a", B - 3.0), Ev("a", B + 2.0), Ev("a", B - 1.0)]
    windows, late = both(evs, grace_s=2.0)
    assert late == [B - 1.0]
    assert windows == [("a", B - W, 1, 10, 5), ("a", B, 1, 10, 5)]
    # just before the close it still counts
    windows, late = both([Ev("a", B - 3.0), Ev("a", B + 1.999), Ev("a", B - 1.0)], grace_s=2.0)
    assert late == [] and windows[0] == ("a", B - W, 2, 20, 10)


def test_zero_grace_closes_a_window_at_its_end() -> None:
    windows, late = both([Ev("a", B - 3.0), Ev("a", B), Ev("a", B - 0.5)])
    assert late == [B - 0.5]
    assert windows == [("a", B - W, 1, 10, 5), ("a", B, 1, 10, 5)]


def test_an_event_before_the_first_window_of_its_service_is_late() -> None:
    windows, late = both([Ev("a", B + 1.0), Ev("a", B - 0.5), Ev("b", B - 0.5)], grace_s=100.0)
    assert late == [B - 0.5]
    assert windows == [("a", B, 1, 10, 5), ("b", B - W, 1, 10, 5)]


def test_quiet_windows_are_emitted_as_zeros_and_records_are_stamped_at_their_end() -> None:
    res = density_series([Ev("a", B + 1.0, 7, 8), Ev("a", B + 3 * W, 1, 1)], W)
    assert rows(res.windows) == [("a", B, 1, 7, 8), ("a", B + W, 0, 0, 0), ("a", B + 2 * W, 0, 0, 0),
                                 ("a", B + 3 * W, 1, 1, 1)]
    assert [w.ts for w in res.windows] == [B + W, B + 2 * W, B + 3 * W, B + 4 * W]
    assert {w.window_s for w in res.windows} == {W}
    acc = DensityAccumulator(W)
    acc.add(Ev("a", B + 1.0, 7, 8))
    acc.add(Ev("a", B + 3 * W, 1, 1))
    out = acc.close_until()
    assert rows(out) == rows(res.windows[:3]) and [w.ts for w in out] == [B + W, B + 2 * W, B + 3 * W]


def test_close_until_takes_the_larger_watermark_and_flush_the_rest() -> None:
    acc = DensityAccumulator(W, 1.0)
    acc.add(Ev("a", B + 1.0))
    acc.add(Ev("b", B + 2.0))
    assert acc.close_until(B + W + 0.999) == []
    out = acc.close_until(B + W + 1.0)
    assert sorted(rows(out)) == [("a", B, 1, 10, 5), ("b", B, 1, 10, 5)]
    assert acc.watermark("a") == B + W + 1.0
    assert acc.close_until(B) == []  # a lower watermark does not move it back
    assert acc.watermark("a") == B + W + 1.0
    assert acc.add(Ev("a", B + W + 0.5)) is True
    assert rows(acc.flush()) == [("a", B + W, 1, 10, 5)]  # b has nothing open
    acc2 = DensityAccumulator(W)
    acc2.add(Ev("a", B + 1.0))
    acc2.add(Ev("a", B + 2 * W + 1.0))
    assert rows(acc2.flush()) == [("a", B, 1, 10, 5), ("a", B + W, 0, 0, 0), ("a", B + 2 * W, 1, 10, 5)]
    assert acc2.flush() == []
    # later quiet windows up to a watermark are zeros, from where the flush stopped
    assert rows(acc2.close_until(B + 10 * W)) == [("a", B + k * W, 0, 0, 0) for k in range(3, 10)]


def test_flush_skips_services_with_nothing_open() -> None:
    acc = DensityAccumulator(W)
    acc.add(Ev("a", B + 1.0))
    acc.close_until(B + W)
    acc.add(Ev("b", B + 1.0))
    assert rows(acc.flush()) == [("b", B, 1, 10, 5)]


def test_late_events_are_kept_until_taken() -> None:
    acc = DensityAccumulator(W)
    acc.add(Ev("a", B + W))
    late_ev = Ev("a", B)
    assert acc.add(late_ev) is False
    assert acc.late == (late_ev,)
    assert acc.take_late() == [late_ev] and acc.late == () and acc.take_late() == []
    assert acc.watermark("nobody") is None


def test_snapshot_and_restore_round_trip() -> None:
    acc = DensityAccumulator(W, 2.0)
    acc.add(Ev("a", B + 1.0, 3, 4))
    acc.add(Ev("a", B + W + 1.0, 5, 6))
    acc.add(Ev("a", B + 1.5, 1, 1))
    snap = acc.snapshot("a")
    assert snap == {"next_start": B, "watermark": B + W + 1.0,
                    "open": {str(int(B / W)): [2, 4, 5], str(int(B / W) + 1): [1, 5, 6]}}
    assert acc.snapshot("b") is None
    fresh = DensityAccumulator(W, 2.0)
    fresh.restore("a", snap)
    assert fresh.snapshot("a") == snap
    assert rows(fresh.close_until(B + 3 * W)) == [("a", B, 2, 4, 5), ("a", B + W, 1, 5, 6)]  # grace 2 s


def test_token_counts_are_integers() -> None:
    acc = DensityAccumulator(W)
    acc.add(Ev("a", B, 3.7, 2.2))  # type: ignore[arg-type]
    assert rows(acc.flush()) == [("a", B, 1, 3, 2)]


@pytest.mark.parametrize("window_s, grace_s", [(0.0, 0.0), (-1.0, 0.0), (1.0, -0.1)])
def test_parameters_are_validated(window_s: float, grace_s: float) -> None:
    with pytest.raises(ValueError):
        DensityAccumulator(window_s, grace_s)
    with pytest.raises(ValueError):
        density_frame(pd.DataFrame({"service": ["a"], "ts": [1.0], "prompt_tokens": [1], "output_tokens": [1]}),
                      window_s, grace_s)


def test_small_positive_window_and_grace_are_valid() -> None:
    frame, _ = density_frame(pd.DataFrame({"service": ["a"], "ts": [B], "prompt_tokens": [1], "output_tokens": [1]}),
                             0.5, 0.5)
    assert frame["window_start"].tolist() == [B] and frame["window_s"].tolist() == [0.5]


def test_frame_of_nothing() -> None:
    frame, late = density_frame(pd.DataFrame(columns=["service", "ts", "prompt_tokens", "output_tokens"]), W)
    assert list(frame.columns) == DENSITY_COLUMNS and frame.empty and late.shape == (0,)
    assert density_series([], W).windows == []


def test_frame_columns_and_services_in_order() -> None:
    frame, late = density_frame(pd.DataFrame({"service": ["b", "a", "b"], "ts": [B + 1, B + 2, B + W + 1],
                                              "prompt_tokens": [1, 2, 3], "output_tokens": [4, 5, 6]}), W)
    assert list(frame.columns) == DENSITY_COLUMNS and list(late) == [False, False, False]
    assert frame.to_dict("records") == [
        {"service": "a", "window_start": B, "window_s": W, "requests": 1, "prompt_tokens": 2, "output_tokens": 5},
        {"service": "b", "window_start": B, "window_s": W, "requests": 1, "prompt_tokens": 1, "output_tokens": 4},
        {"service": "b", "window_start": B + W, "window_s": W, "requests": 1, "prompt_tokens": 3, "output_tokens": 6}]
