"""Saved queries, `preserve sql` formats and `preserve report` (tables + PNG plots) on a known mini-run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from preserve_cli.report_cmd import report
from preserve_cli.sql_cmd import sql
from sinks.analytics import query_df
from sinks.clickhouse_sink import ClickHouseSink


@pytest.fixture()
def archive(tmp_path: Path, sample_items: list) -> str:
    dsn = f"chdb://{tmp_path / 'archive'}"
    sink = ClickHouseSink(dsn)
    for item in sample_items:
        sink.add(*item)
    sink.flush()
    return dsn


def test_latency_per_minute_matches_numpy(archive: str, sample_items: list) -> None:
    df = query_df(archive, "latency_per_minute")
    comps = [r for t, _, _, r in sample_items if t == "completions"]
    assert df["completions"].sum() == len(comps)
    first = df.iloc[0]
    minute0 = int(comps[0].arrival_ts // 60 * 60)
    in_min = [c for c in comps if minute0 <= c.arrival_ts < minute0 + 60]
    assert first["p50_e2e_s"] == pytest.approx(np.quantile([c.e2e_s for c in in_min], 0.5, method="lower"), abs=0.011)
    assert first["p99_ttft_s"] == pytest.approx(max(c.ttft_s for c in in_min), abs=0.011)


def test_instances_predictor_and_scaler_views(archive: str) -> None:
    inst = query_df(archive, "instances_over_time")
    assert list(inst["instances"]) == [1, 2, 2]  # i1 starts in minute 2, stops in minute 3
    err = query_df(archive, "predictor_error").set_index("predictor")
    assert err.loc["model", "requests"] + err.loc["fallback", "requests"] == 120
    assert err.loc["model", "bias_tokens"] > 0  # the sample predicts 10% too long
    dec = query_df(archive, "SELECT change, reason FROM scaler_decisions")
    assert list(dec["change"]) == [1, -1]
    assert dec["reason"].iloc[0] == "forecast above capacity"


def test_sql_cli_formats(archive: str) -> None:
    runner = CliRunner()
    q = "SELECT service, count() AS n FROM completions GROUP BY service"
    out = runner.invoke(sql, ["--dsn", archive, "--format", "json", q])
    assert out.exit_code == 0, out.output
    assert json.loads(out.output) == {"service": "svc-a", "n": 120}
    out = runner.invoke(sql, ["--dsn", archive, "--format", "csv", q])
    assert out.output.splitlines() == ["service,n", "svc-a,120"]
    out = runner.invoke(sql, ["--dsn", archive, "SELECT nope FROM completions"])
    assert out.exit_code != 0 and "nope" in out.output
    out = runner.invoke(sql, ["--list"])
    assert "latency_per_minute" in out.output and "dead_letter" in out.output


def test_report_prints_tables_and_writes_plots(archive: str, tmp_path: Path) -> None:
    out = CliRunner().invoke(report, ["--dsn", archive, "--out", str(tmp_path / "plots")])
    assert out.exit_code == 0, out.output
    for name in ("latency_per_minute", "instances_over_time", "predictor_error", "scaler_decisions"):
        assert f"== {name}" in out.output
        png = tmp_path / "plots" / f"{name}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bad_dsn_is_a_clear_error_without_the_password() -> None:
    out = CliRunner().invoke(sql, ["--dsn", "mysql://u:hunter2@h/db", "SELECT 1"])
    assert out.exit_code != 0
    assert "unsupported ClickHouse DSN" in out.output and "hunter2" not in out.output
