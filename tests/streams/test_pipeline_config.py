"""The worker's pipeline config: JSON round trip and clear errors for settings it does not know."""

from __future__ import annotations

import json

import pytest

from streams.pipeline_config import PipelineConfig


def test_round_trip_keeps_every_setting() -> None:
    cfg = PipelineConfig(policy="least-requests:fixed(n=2)", predict_batch=64)
    assert PipelineConfig.from_json(cfg.to_json()) == cfg


def test_retired_batch_timers_are_named_with_what_replaced_them() -> None:
    raw = json.loads(PipelineConfig().to_json()) | {"route_within_s": 0.01}
    with pytest.raises(ValueError, match=r"\['route_within_s'\] are retired.*ready_batches"):
        PipelineConfig.from_json(json.dumps(raw))


def test_unknown_setting_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown pipeline settings: \\['polcy'\\]"):
        PipelineConfig.from_json('{"polcy": "x"}')
