"""Baseline scalers at their exact thresholds: reactive (strict up/down, ready-only mean, step), queue-depth
(ceil, the stabilisation window to its edge, all instances' queues), fixed (its widened bounds)."""

from __future__ import annotations

import pytest

from streams.policies.fleet_view import FleetView, InstanceState, InstanceView
from streams.policies.scalers.fixed_scaler import FixedScaler
from streams.policies.scalers.queue_depth_scaler import QueueDepthScaler
from streams.policies.scalers.reactive_scaler import ReactiveScaler

R, S = InstanceState.READY, InstanceState.STARTING
T = 2000.0


def fleet(kv: list[int], waiting: list[int] | None = None, starting: int = 0, starting_waiting: int = 0) -> FleetView:
    waiting = waiting or [0] * len(kv)
    views = [InstanceView(f"i{n}", R, 1000, running=1, waiting=w, kv_used_tokens=k)
             for n, (k, w) in enumerate(zip(kv, waiting, strict=True))]
    views += [InstanceView(f"s{n}", S, 1000, waiting=starting_waiting, kv_used_tokens=1000) for n in range(starting)]
    return FleetView("svc", views, 1, 8)


# ----------------------------------------------------------------- reactive
def test_reactive_thresholds_are_strict() -> None:
    s = ReactiveScaler(up=0.5, down=0.25, freeze_s=0.0)
    assert s.decide(fleet([500, 500]), T) is None  # exactly up
    d = s.decide(fleet([500, 502]), T)
    assert d is not None and d.target_instances == 3 and d.reason == "kv utilisation 0.50 > 0.5"
    assert d.details == {"kv_utilization": 0.501, "waiting": 0.0}
    assert s.decide(fleet([250, 250]), T) is None  # exactly down
    d = s.decide(fleet([250, 248]), T)
    assert d is not None and d.target_instances == 1 and d.reason == "kv utilisation 0.25 < 0.25"


def test_reactive_defaults() -> None:
    s = ReactiveScaler(freeze_s=0.0)
    assert (s.up, s.down, s.step, s.min_instances, s.max_instances, s.freeze_s, s.interval_s) == (
        0.9, 0.2, 1, 1, 8, 0.0, 5.0)
    assert s.decide(fleet([900, 900]), T) is None
    assert s.decide(fleet([901, 900]), T).target_instances == 3  # type: ignore[union-attr]
    assert s.decide(fleet([200, 200]), T) is None
    assert s.decide(fleet([199, 200]), T).target_instances == 1  # type: ignore[union-attr]


def test_reactive_mean_is_over_ready_instances_and_counts_starting_as_provisioned() -> None:
    s = ReactiveScaler(up=0.5, down=0.25, step=2, freeze_s=0.0, max_instances=10)
    d = s.decide(fleet([600, 600], starting=1), T)  # the starting one (full in this view) is not averaged
    assert d is not None and d.target_instances == 5  # provisioned 3 + step 2
    d = s.decide(fleet([100, 100, 100, 100, 100], starting=1), T)
    assert d is not None and d.target_instances == 4  # 6 - 2


def test_reactive_queue_on_ready_instances_blocks_scale_down() -> None:
    s = ReactiveScaler(freeze_s=0.0)
    assert s.decide(fleet([0, 0], waiting=[0, 1]), T) is None
    assert s.decide(fleet([0, 0], starting=1, starting_waiting=5), T).target_instances == 2  # type: ignore[union-attr]


def test_reactive_waits_while_nothing_is_ready() -> None:
    s = ReactiveScaler(freeze_s=0.0)
    assert s.decide(fleet([], starting=2), T) is None


@pytest.mark.parametrize("kw", [{"up": 0.2, "down": 0.2}, {"up": 1.1}, {"down": -0.1}, {"step": 0}])
def test_reactive_bad_parameters(kw: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        ReactiveScaler(**kw)  # type: ignore[arg-type]


def test_reactive_edge_parameters() -> None:
    s = ReactiveScaler(up=1.0, down=0.0, step=1)
    assert (s.up, s.down) == (1.0, 0.0)
    assert ReactiveScaler().freeze_s == 60.0


# ----------------------------------------------------------------- queue depth
def test_queue_depth_ceil_counts_every_instance_queue() -> None:
    s = QueueDepthScaler(threshold=4, cooldown=60, freeze_s=0)
    d = s.decide(fleet([0], waiting=[5], starting=1, starting_waiting=4), T)  # 9 waiting / 4 -> 3
    assert d is not None and d.target_instances == 3
    assert d.reason == "9 waiting / threshold 4 -> 3" and d.details == {"waiting": 9.0, "desired": 3.0}
    s2 = QueueDepthScaler(threshold=4, cooldown=60, freeze_s=0)
    assert s2.decide(fleet([0, 0], waiting=[4, 4]), T) is None  # 8 / 4 = 2: as provisioned


def test_queue_depth_scales_down_to_the_window_maximum_at_its_exact_edge() -> None:
    s = QueueDepthScaler(threshold=5, cooldown=60, freeze_s=0)
    assert s.decide(fleet([0] * 4, waiting=[5, 5, 5, 0]), T) is None  # desire 3 < 4, window not yet seen
    assert s.decide(fleet([0] * 4), T + 30.0) is None
    d = s.decide(fleet([0] * 4), T + 60.0)  # a full window seen; the 3 at T is exactly 60 s old: kept
    assert d is not None and d.target_instances == 3 and d.reason == "max desire over 60s is 3"
    d = s.decide(fleet([0] * 3), T + 60.5)  # the 3 left the window: the 0s remain
    assert d is not None and d.target_instances == 1  # clamped to min_instances


def test_queue_depth_defaults() -> None:
    s = QueueDepthScaler()
    assert (s.threshold, s.cooldown, s.interval_s, s.freeze_s, s.min_instances, s.max_instances) == (
        5.0, 300.0, 15.0, 60.0, 1, 8)
    assert QueueDepthScaler(threshold=0.5, cooldown=0.5).threshold == 0.5
    assert QueueDepthScaler(interval=15, interval_s=7.0).interval_s == 7.0


@pytest.mark.parametrize("kw", [{"threshold": 0.0}, {"cooldown": -1.0}])
def test_queue_depth_bad_parameters(kw: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        QueueDepthScaler(**kw)


def test_queue_depth_zero_cooldown_scales_down_at_once() -> None:
    s = QueueDepthScaler(threshold=5, cooldown=0, freeze_s=0)
    d = s.decide(fleet([0] * 3, waiting=[6, 0, 0]), T)
    assert d is not None and d.target_instances == 2


# ----------------------------------------------------------------- fixed
def test_fixed_widens_its_bounds_and_defaults_to_min() -> None:
    s = FixedScaler(n=0, min_instances=1, max_instances=8)
    assert (s.min_instances, s.max_instances, s.n) == (0, 8, 0)
    d = s.decide(fleet([0]), T)
    assert d is not None and d.target_instances == 0 and d.reason == "fixed n=0"
    s = FixedScaler(min_instances=2, max_instances=8)
    assert (s.n, s.initial_instances(5)) == (2, 2)
    s = FixedScaler(n=12, min_instances=1, max_instances=8)
    assert (s.min_instances, s.max_instances) == (1, 12)
    s = FixedScaler()
    assert (s.n, s.min_instances, s.max_instances, s.freeze_s, s.interval_s) == (1, 1, 8, 60.0, 5.0)
    with pytest.raises(ValueError, match=r"fixed\(n=-1\) needs n >= 0"):
        FixedScaler(n=-1)
