"""Live headline metrics (same definitions as the offline harness), the comparison, and demo helpers."""

from __future__ import annotations

import pandas as pd
import pytest

from fleet.live.demo_run import pipeline_args
from fleet.live.live_metrics import compare_with_offline, live_summary
from streams.pipeline_config import PipelineConfig


def test_live_summary_percentiles_and_instance_hours() -> None:
    comp = pd.DataFrame({"request_id": ["a", "b", "b"], "ts": [10.0, 20.0, 20.0], "arrival_ts": [0.0, 5.0, 5.0],
                         "ttft_s": [1.0, 2.0, 2.0], "e2e_s": [10.0, 15.0, 15.0], "output_tokens": [10, 1, 1]})
    inst = pd.DataFrame({"ts": [0.0, 0.0, 0.0, 3600.0 + 5.0], "instance_id": ["i0", "i0", "i1", "i1"],
                         "kind": ["start_requested", "ready", "start_requested", "stopped"]})
    s = live_summary(comp, inst)
    assert s["completed"] == 2  # the redelivered completion counts once
    assert s["p50_e2e_s"] == pytest.approx(12.5) and s["p99_tpot_s"] == pytest.approx(1.0)
    # i0 never stopped: counted to the end of the run (the last completion, t=20); i1 ran 3605 s
    assert s["instance_hours"] == pytest.approx((20.0 + 3605.0) / 3600.0)


def test_comparison_uses_relative_tolerance_with_a_floor() -> None:
    cmp = compare_with_offline({"p99_e2e_s": 10.0, "instance_hours": 1.2}, {"p99_e2e_s": 9.0, "instance_hours": 1.0},
                               {"p99_e2e_s": (0.25, 2.0), "instance_hours": (0.15, 0.05)})
    assert cmp["p99_e2e_s"]["ok"] and cmp["p99_e2e_s"]["allowed"] == 2.25
    assert not cmp["instance_hours"]["ok"]
    assert not compare_with_offline({"p99_e2e_s": None}, {"p99_e2e_s": 1.0}, {"p99_e2e_s": (0.1, 0.0)})["p99_e2e_s"]["ok"]


def test_pipeline_args_round_trip_through_the_worker_options() -> None:
    from click.testing import CliRunner

    from preserve_cli.worker_cmd import pipeline_options

    cfg = PipelineConfig(policy="least-kv:reactive(up=0.8)", instances=3, cold_start_s=12.5)
    seen = {}

    import click

    @click.command()
    @pipeline_options
    def cmd(**kw: object) -> None:
        seen.update(kw)

    res = CliRunner().invoke(cmd, pipeline_args(cfg))
    assert res.exit_code == 0, res.output
    assert PipelineConfig(**seen) == cfg
    assert PipelineConfig.from_json(cfg.to_json()) == cfg
