"""The replay clock: anchored on the inputs, lagging, monotone, with a lag that follows the pipeline's delay."""

from __future__ import annotations

import pytest

from fleet.live.event_clock import ReplayClock


def test_maps_wall_to_event_time_behind_by_the_lag() -> None:
    c = ReplayClock(speedup=10.0, lag_s=0.5)
    assert c.now(100.0) is None
    c.observe(1000.0, 100.0)
    assert c.now(100.2) == 1000.0  # inside the lag: the clock has not started
    assert c.now(101.5) == pytest.approx(1010.0)


def test_a_delayed_input_widens_the_lag_then_it_shrinks_back() -> None:
    c = ReplayClock(speedup=10.0, lag_s=0.5, margin=0.0, window_s=5.0)
    c.observe(1000.0, 100.0)
    assert c.now(102.5) == pytest.approx(1020.0)
    c.observe(1015.0, 102.5)  # ideal wall 101.5: one wall second late
    assert c.lag_s == pytest.approx(1.5)
    assert c.now(102.6) == pytest.approx(1020.0)  # holds (never goes back) while the mapping catches up
    assert c.now(104.0) == pytest.approx(1025.0)
    c.observe(1060.0, 106.0)  # on time
    assert c.now(108.0) == pytest.approx(1075.0)  # the late input left the window: base lag again


def test_quicker_inputs_re_anchor_and_the_lag_is_capped() -> None:
    c = ReplayClock(speedup=1.0, lag_s=0.1, max_lag_s=2.0)
    c.observe(10.0, 5.0)  # the first input was itself slow
    c.observe(20.0, 14.0)  # one second quicker: becomes the reference
    assert c.anchor == (10.0, 4.0)
    c.observe(30.0, 100.0)
    assert c.lag_s == 2.0
