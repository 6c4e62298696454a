"""One settings type; a compressed trace divides every control time constant through one setting."""

from __future__ import annotations

import pytest

from fleet.harness.runner import EvalConfig
from streams.pipeline_config import PipelineConfig
from streams.policies.builder import build_policy
from streams.policies.control_settings import ControlSettings
from streams.policies.policy_registry import parse_policy


def test_time_scale_divides_cold_start_freeze_and_every_policy_window() -> None:
    cfg = ControlSettings(time_scale=24.0, cold_start_s=60.0)
    assert cfg.engine_config().cold_start_s == pytest.approx(2.5)
    _, preserve = build_policy(parse_policy("preserve:preserve(recent_s=120)"), cfg)
    assert preserve.freeze_s == pytest.approx(2.5) and preserve.recent.span_s == pytest.approx(5.0)
    assert preserve.interval_s == pytest.approx(5.0 / 24) and preserve.window_s == pytest.approx(2.5)
    _, hpa = build_policy(parse_policy("least-kv:hpa"), cfg)
    assert hpa.interval_s == pytest.approx(15 / 24) and hpa.stabilization_s == pytest.approx(300 / 24)
    _, same = build_policy(parse_policy("least-kv:hpa"), ControlSettings())
    assert same.stabilization_s == 300.0


def test_the_live_pipeline_refuses_a_compressed_clock_and_eval_takes_it() -> None:
    with pytest.raises(ValueError, match="--speedup"):
        PipelineConfig(time_scale=24.0)
    assert EvalConfig(time_scale=24.0).trace_s(60.0) == pytest.approx(2.5)
    with pytest.raises(ValueError, match="time_scale"):
        ControlSettings(time_scale=0.0)
