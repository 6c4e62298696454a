"""PrefillBursts: the per-arrival window sum at its exact edge, the quantile over the memory span at its exact
edge, and the refresh cache. Times start at T = 3000 s; a 2 s window."""

from __future__ import annotations

import pytest

from streams.policies.scalers.prefill_bursts import PrefillBursts

T = 3000.0


def filled(quantile: float = 0.5, refresh_s: float = 10.0) -> PrefillBursts:
    b = PrefillBursts(window_s=2.0, memory_s=100.0, quantile=quantile, refresh_s=refresh_s)
    b.observe(T, 100)  # sum 100
    b.observe(T + 1.0, 200)  # 300
    b.observe(T + 2.0, 300)  # the arrival at T is exactly 2 s old: still in: 600
    b.observe(T + 2.5, 50)  # T left: 550
    return b


def test_window_sums_per_arrival_and_their_median() -> None:
    b = filled()
    assert b.tokens(T + 3.0) == pytest.approx((300 + 550) / 2)  # sums 100, 300, 600, 550


@pytest.mark.parametrize("q, expected", [(1.0, 600.0), (0.25, 250.0), (0.99, 0.97 * 600 + 0.03 * 550)])
def test_quantiles(q: float, expected: float) -> None:
    assert filled(quantile=q).tokens(T + 3.0) == pytest.approx(expected)


def test_the_quantile_is_refreshed_at_most_every_refresh_s() -> None:
    b = filled()
    assert b.tokens(T + 3.0) == pytest.approx(425.0)
    b.observe(T + 4.0, 5000)  # sum 5050
    assert b.tokens(T + 12.9) == pytest.approx(425.0)  # cached
    assert b.tokens(T + 13.0) == pytest.approx(550.0)  # exactly refresh_s later: recomputed (100, 300, 550, 600, 5050)
    fresh = filled(refresh_s=0.0)
    fresh.tokens(T + 3.0)
    fresh.observe(T + 4.0, 5000)
    assert fresh.tokens(T + 4.0) == pytest.approx(550.0)


def test_sums_older_than_the_memory_are_forgotten_at_their_exact_age() -> None:
    b = filled(refresh_s=0.0)
    assert b.tokens(T + 101.0) == pytest.approx(550.0)  # T left; T + 1 is exactly 100 s old: kept (300, 600, 550)
    assert b.tokens(T + 101.5) == pytest.approx(575.0)  # 600, 550
    assert b.tokens(T + 500.0) == 0.0


def test_nothing_seen_is_zero() -> None:
    assert PrefillBursts(1.0, 10.0, 0.9, 0.0).tokens(T) == 0.0


@pytest.mark.parametrize("args", [(0.0, 1.0, 0.5, 0.0), (1.0, 0.0, 0.5, 0.0), (1.0, 1.0, 0.0, 0.0),
                                  (1.0, 1.0, 1.5, 0.0), (1.0, 1.0, 0.5, -1.0)])
def test_parameters_are_validated(args: tuple[float, float, float, float]) -> None:
    with pytest.raises(ValueError):
        PrefillBursts(*args)


def test_edge_parameters_are_accepted() -> None:
    b = PrefillBursts(1.0, 1.0, 1.0, 0.0)
    assert (b.window_s, b.memory_s, b.quantile, b.refresh_s) == (1.0, 1.0, 1.0, 0.0)
