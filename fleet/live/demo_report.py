"""The demo's result document: counts per stage, archive row counts, live vs offline numbers (I/O at the edges:
reading the archive or the topics; the comparison itself is ``live_metrics``)."""

from __future__ import annotations

from typing import Any

import click
import pandas as pd

from fleet.live.decision_check import check_decisions
from fleet.live.demo_run import DemoOutcome, read_records
from fleet.live.live_metrics import TOLERANCES, compare_with_offline, live_summary
from streams.pipeline_config import PipelineConfig
from streams.settings import KafkaSettings

__all__ = ["collect", "print_report", "archive_frames"]

ARCHIVE_TABLES = ("requests", "predicted-requests", "routes", "completions", "instance-events", "routing-table",
                  "token-density", "forecasts", "scale-commands", "dead-letter")


def archive_frames(dsn: str) -> tuple[dict[str, int], pd.DataFrame, pd.DataFrame]:
    """Row counts per archived topic, the completions and the instance events, from ClickHouse."""
    from sinks.analytics import query_df, table_name  # the archive owns table names and SQL access

    counts = {}
    for topic in ARCHIVE_TABLES:  # table names come from the archive's schema, never from input
        counts[topic] = int(query_df(dsn, f"SELECT count() AS n FROM {table_name(topic)}")["n"].iloc[0])  # noqa: S608
    comp = query_df(dsn, "SELECT request_id, ts, arrival_ts, ttft_s, e2e_s, output_tokens, output_sampled, "  # noqa: S608
                    "truncated FROM " + table_name("completions"))
    inst = query_df(dsn, "SELECT ts, instance_id, kind FROM " + table_name("instance-events"))  # noqa: S608
    return counts, comp, inst


def collect(outcome: DemoOutcome, kafka: KafkaSettings, dsn: str | None, offline: dict[str, Any],
            cfg: PipelineConfig) -> tuple[dict[str, Any], bool]:
    """The JSON of the issue plus the checks; ``ok`` is False if any check fails."""
    replay = check_decisions(cfg, dsn, kafka)
    rows: dict[str, int] | None = None
    if dsn is not None:
        rows, comp, inst = archive_frames(dsn)
        source = "clickhouse"
    else:
        comp, inst = read_records(kafka, "completions"), read_records(kafka, "instance-events")
        source = "kafka"
    live = live_summary(comp, inst)
    cmp = compare_with_offline(live, offline)
    n = outcome.sent
    checks = {
        "every_request_routed_once": outcome.counts.get("routes") == n,
        "every_request_completed_once": outcome.counts.get("completions") == n and live["completed"] == n,
        "live_matches_offline": all(v["ok"] for v in cmp.values()),
        "decisions_replay_exactly": replay.decision_mismatches == 0 and replay.routes_compared == n,
    }
    if rows is not None:
        checks["archive_rows_match_topics"] = all(rows[t] == outcome.counts.get(t, 0) for t in
                                                  ("requests", "routes", "completions"))
    doc: dict[str, Any] = {
        "requests_replayed": n, "routes": outcome.counts.get("routes"), "completions": outcome.counts.get("completions"),
        "clickhouse_rows": rows, "p99_e2e_s": live["p99_e2e_s"], "offline_p99_e2e_s": offline.get("p99_e2e_s"),
        "instance_hours": live["instance_hours"], "offline_instance_hours": offline.get("instance_hours"),
        "live": live, "offline": {k: offline.get(k) for k in live if k in offline},
        "comparison": cmp, "tolerances": {k: {"relative": r, "absolute_floor": a} for k, (r, a) in TOLERANCES.items()},
        "decision_mismatches": replay.decision_mismatches,
        "decisions_compared": {"routes": replay.routes_compared, "scale_commands": replay.commands_compared},
        "decision_mismatch_examples": replay.mismatches[:10],
        "completions_output_sampled": _flagged(comp, "output_sampled"),
        "completions_truncated": _flagged(comp, "truncated"),
        "topic_counts": outcome.counts, "metrics_source": source, "checks": checks,
        "replay_wall_s": outcome.replay_wall_s, "drain_wall_s": outcome.drain_wall_s, "run_dir": str(outcome.run_dir),
    }
    return doc, all(checks.values())


def _flagged(frame: pd.DataFrame, column: str) -> int:
    """Completions with a flag set (older records without the column count as not flagged)."""
    if column not in frame:
        return 0
    return int(frame[column].fillna(False).astype(bool).sum())


def _fmt(x: Any) -> str:
    return f"{x:.3f}" if isinstance(x, float) else str(x)


def print_report(doc: dict[str, Any], dsn: str | None) -> None:
    if dsn is not None:
        try:
            from sinks.report import print_report as archive_report

            archive_report(dsn)
        except ImportError as e:
            click.echo(f"(archive report unavailable: {e})")
    click.echo(f"\nrequests replayed {doc['requests_replayed']}, routes {doc['routes']}, "
               f"completions {doc['completions']}; metrics from {doc['metrics_source']}")
    click.echo(f"completions with a sampled output length (the request gave none) {doc['completions_output_sampled']}, "
               f"truncated to the engine's context {doc['completions_truncated']}")
    if doc["clickhouse_rows"]:
        click.echo("clickhouse rows: " + ", ".join(f"{k} {v}" for k, v in doc["clickhouse_rows"].items()))
    dc = doc["decisions_compared"]
    click.echo(f"decisions replayed from the archive: {dc['routes']} routes, {dc['scale_commands']} scale commands, "
               f"{doc['decision_mismatches']} mismatches")
    click.echo(f"\n{'metric':<16}{'live':>12}{'offline':>12}{'allowed':>12}  agree")
    for metric, v in doc["comparison"].items():
        click.echo(f"{metric:<16}{_fmt(v['live']):>12}{_fmt(v['offline']):>12}{_fmt(v['allowed']):>12}  "
                   f"{'yes' if v['ok'] else 'NO'}")
    for name, ok in doc["checks"].items():
        click.echo(f"check {name}: {'ok' if ok else 'FAILED'}")
