"""The ClickHouse archive under faults: the archive becomes unwritable for a while mid-replay (the sink raises
backpressure and the agent retries), then the archive worker is killed with -9 and restarted (Kafka redelivers
from its last commit). Afterwards every message of every topic is exactly one row: none lost, none doubled,
both as the SQL readers see it and in the Parquet files themselves. The run's predictor checkpoint is missing,
so the analytics (the ``predictor_error`` view) must attribute every request to the fallback.

Why swap the directory for a file instead of chmod: tests may run as root, and root ignores permissions.
"""

from __future__ import annotations

import shutil
import time
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from fleet.live.pipeline_procs import group_lag, topic_counts
from sinks.client import clickhouse_client
from sinks.schema import table_name
from streams.pipeline_config import PipelineConfig
from streams.records import RECORD_TYPES
from tests.reliability.live import FAST_FAILOVER, Replayer, live_run, trace, wait_until
from tests.reliability.recovery import first_routes

pytestmark = [pytest.mark.integration, pytest.mark.timeout(480)]

SPEEDUP = 5.0


def _cfg(predictor: str) -> PipelineConfig:
    return PipelineConfig(policy="preserve:preserve", predictor=predictor, instances=2, density_window_s=20.0,
                          density_grace_s=5.0, cold_start_s=10.0, archive_within_s=0.2)


def _break(root: Path) -> None:
    (root / "parquet").rename(root / "parquet.away")
    (root / "parquet").write_text("the archive is unavailable")


def _repair(root: Path) -> None:
    (root / "parquet").unlink()
    (root / "parquet.away").rename(root / "parquet")


def _file_rows(root: Path, table: str) -> tuple[int, int]:
    """(rows, distinct (partition, offset)) over the table's Parquet files."""
    keys: Counter[tuple[int, int]] = Counter()
    for f in (root / "parquet" / table).glob("*.parquet"):
        t = pq.read_table(f, columns=["kafka_partition", "kafka_offset"])
        keys.update(zip(t.column(0).to_pylist(), t.column(1).to_pylist(), strict=True))
    return sum(keys.values()), len(keys)


def test_archive_outage_and_kill9_lose_and_double_no_row(kafka_broker: str, tmp_path: Path) -> None:
    df = trace(300, ["svc-a", "svc-b", "svc-c"], gap_s=0.2)
    ids = set(df["request_id"])
    root = tmp_path / "run" / "clickhouse"
    cfg = _cfg(f"model(path={tmp_path / 'missing-checkpoint'})")  # a model fault too: the metrics must say so
    with live_run(kafka_broker, tmp_path / "run", cfg, archive=True, speedup=SPEEDUP,
                  extra_env=FAST_FAILOVER) as run:
        rep = Replayer(run.kafka, df, SPEEDUP)
        rep.start()
        wait_until(lambda: rep.sent >= 60, 60.0, run, "replay under way", every_s=0.1)
        _break(root)
        wait_until(lambda: "backpressure" in run.procs.tail("archive", 200), 60.0, run, "archive backpressure")
        time.sleep(4.0)
        _repair(root)
        wait_until(lambda: rep.sent >= 200, 120.0, run, "replay two thirds", every_s=0.1)
        run.kill9("archive")
        run.procs.procs.pop("archive")
        run.start_worker("archive-restarted", agents="archive")
        rep.join(120)
        assert rep.error is None and rep.failed == 0
        wait_until(lambda: ids <= set(first_routes(run.kafka)[0]), 240.0, run, "every request routed", every_s=2.0)
        time.sleep(3.0)
        for name in ("fleet", "worker-0"):  # the topics stop growing: exact counts
            run.procs.stop(name)
            run.procs.procs.pop(name)
        names = list(RECORD_TYPES)
        counts = topic_counts(run.kafka, names)
        wait_until(lambda: group_lag(run.kafka, "preserve-archive", names) == 0, 180.0, run, "archive caught up")
        run.procs.stop("archive-restarted")
    client = clickhouse_client(f"chdb://{root}")
    report = []
    for topic in names:
        table = table_name(topic)
        rows = int(client.query_df(f"SELECT count() AS n FROM {table}")["n"].iloc[0])  # noqa: S608
        file_rows, distinct = _file_rows(root, table)
        report.append(f"{table}: topic {counts[topic]} sql {rows} files {file_rows}")
        assert rows == counts[topic], f"{table}: rows lost or doubled ({report[-1]})"
        assert file_rows == distinct, f"{table}: a (partition, offset) written twice ({report[-1]})"
    print("\narchive after outage + kill -9: " + "; ".join(report))
    assert counts["requests"] == len(df) and counts["dead-letter"] == 0
    by_predictor = client.query_df("SELECT predictor, sum(requests) AS n FROM predictor_error GROUP BY predictor")
    assert dict(zip(by_predictor["predictor"], by_predictor["n"], strict=True)) == {"fallback": len(df)}
    shutil.rmtree(root, ignore_errors=True)
