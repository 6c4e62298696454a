"""Baseline scalers: their decisions, bounds and freeze (via BaseScaler), and spec parsing with parameters."""

from __future__ import annotations

import pytest

from streams.policies.builder import build_policy
from streams.policies.control_settings import ControlSettings
from streams.policies.fleet_view import FleetView, InstanceState, InstanceView
from streams.policies.policy_registry import PolicySpecError, parse_policies
from streams.policies.scalers.fixed_scaler import FixedScaler
from streams.policies.scalers.queue_depth_scaler import QueueDepthScaler
from streams.policies.scalers.reactive_scaler import ReactiveScaler

R, S = InstanceState.READY, InstanceState.STARTING


def _fleet(kv: list[int], waiting: int = 0, starting: int = 0) -> FleetView:
    views = [InstanceView(f"i{n}", R, 1000, running=1, waiting=waiting, kv_used_tokens=k) for n, k in enumerate(kv)]
    views += [InstanceView(f"s{n}", S, 1000) for n in range(starting)]
    return FleetView("svc", views, 1, 8)


def test_fixed_asks_for_n_and_starts_with_n() -> None:
    s = FixedScaler(n=3, min_instances=1, max_instances=8)
    assert s.initial_instances(default=4) == 3
    assert s.decide(_fleet([0, 0]), 0.0).target_instances == 3  # type: ignore[union-attr]
    assert s.decide(_fleet([0, 0, 0]), 100.0) is None
    assert FixedScaler(n=10, max_instances=8).decide(_fleet([0]), 0).target_instances == 10  # type: ignore[union-attr]


def test_reactive_thresholds_freeze_and_bounds() -> None:
    s = ReactiveScaler(up=0.9, down=0.2, min_instances=1, max_instances=3, freeze_s=60)
    assert s.decide(_fleet([950, 950]), 0.0).target_instances == 3  # type: ignore[union-attr]
    assert s.decide(_fleet([950, 950, 950]), 10.0) is None  # frozen
    assert s.decide(_fleet([950, 950, 950]), 100.0) is None  # at max: clamped to no change
    assert s.decide(_fleet([100, 100, 100]), 200.0).target_instances == 2  # type: ignore[union-attr]
    assert s.decide(_fleet([100]), 300.0) is None  # at min
    assert s.decide(_fleet([100, 100], waiting=2), 400.0) is None  # a queue blocks scale-down
    assert s.decide(_fleet([500, 500]), 500.0) is None  # between thresholds
    with pytest.raises(ValueError):
        ReactiveScaler(up=0.2, down=0.9)


def test_queue_depth_scales_up_at_once_and_down_after_the_window() -> None:
    s = QueueDepthScaler(threshold=5, interval=15, cooldown=60, min_instances=1, max_instances=8, freeze_s=0)
    assert s.interval_s == 15
    assert s.decide(_fleet([0, 0], waiting=10), 0.0).target_instances == 4  # type: ignore[union-attr]  # 20 / 5
    assert s.decide(_fleet([0, 0, 0, 0]), 15.0) is None  # the window still remembers 4
    assert s.decide(_fleet([0, 0, 0, 0]), 45.0) is None
    d = s.decide(_fleet([0, 0, 0, 0]), 75.0)  # the 4 has left the 60 s window
    assert d is not None and d.target_instances == 1


def test_policy_specs_with_parameters_build_configured_objects() -> None:
    specs = parse_policies("least-kv:reactive(up=0.8,down=0.3),random(seed=5):fixed(n=2),"
                           "token-load(predictor=oracle):queue-depth(threshold=2,cooldown=30)")
    built = [build_policy(s, ControlSettings(min_instances=1, max_instances=6, freeze_s=30.0, seed=9)) for s in specs]
    (_, reactive), (rnd, fixed), (tok, qd) = built
    assert isinstance(reactive, ReactiveScaler) and isinstance(fixed, FixedScaler)
    assert isinstance(qd, QueueDepthScaler)
    assert (reactive.up, reactive.down, reactive.max_instances, reactive.freeze_s) == (0.8, 0.3, 6, 30.0)
    assert fixed.n == 2 and rnd.__class__.__name__ == "RandomRouter"
    assert (qd.threshold, qd.cooldown) == (2, 30)
    assert tok.__class__.__name__ == "TokenLoadRouter"  # predictor= is the harness's, not the router's
    with pytest.raises(PolicySpecError):
        build_policy(parse_policies("least-kv:reactive(upp=0.8)")[0])
    with pytest.raises(PolicySpecError):
        build_policy(parse_policies("nope:fixed")[0])
