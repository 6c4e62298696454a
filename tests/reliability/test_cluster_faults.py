"""Broker faults on the 3-node cluster mid-replay: kill -9 the node that leads most `requests` and `routes`
partitions, restart it; then kill -9 the active controller, restart it. Topics have 3 replicas with
min.insync.replicas 2 and every producer writes with acks=all, so nothing acknowledged lives on one node only.

Afterwards: every request routed and completed exactly once on the instance of its first decision, no duplicate
decision acted on (``recovery.py``), and the archive holds exactly one row per message of every topic.
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import pytest

from fleet.live.pipeline_procs import group_lag, topic_counts
from infra.kafka_cluster import KafkaCluster
from sinks.client import clickhouse_client
from sinks.schema import table_name
from streams.pipeline_config import PipelineConfig
from streams.records import RECORD_TYPES
from tests.reliability.live import FAST_FAILOVER, LiveRun, Replayer, live_run, records, trace, wait_until
from tests.reliability.recovery import first_routes, recovery

pytestmark = [pytest.mark.integration, pytest.mark.cluster, pytest.mark.timeout(600)]

SERVICES = ["svc-a", "svc-b", "svc-c", "svc-d"]
SPEEDUP = 1.25  # 500 requests 0.1 trace-s apart: a 40 s replay, long enough for both faults to fall inside it
WINDOW_S, GRACE_S = 20.0, 5.0


def _wait_sent(rep: Replayer, n: int, timeout_s: float = 90.0) -> None:
    deadline = time.monotonic() + timeout_s
    while rep.sent < n:
        assert rep.error is None and time.monotonic() < deadline, f"replay stalled at {rep.sent}: {rep.error}"
        time.sleep(0.05)


def _busiest_leader(cluster: KafkaCluster, run: LiveRun) -> int:
    """The node leading most partitions of `requests` and `routes` (ties: the lowest id)."""
    leaders: Counter[int] = Counter()
    for topic in ("requests", "routes"):
        leaders.update(cluster.partition_leaders(run.kafka.topic(topic)).values())
    return min(leaders, key=lambda n: (-leaders[n], n))


def test_leader_and_controller_kill9_mid_replay_lose_and_double_nothing(kafka_cluster: KafkaCluster,
                                                                        tmp_path: Path) -> None:
    df = trace(500, SERVICES, gap_s=0.1)
    ids = list(df["request_id"])
    cfg = PipelineConfig(policy="preserve:preserve", predictor="fallback", instances=2, density_window_s=WINDOW_S,
                         density_grace_s=GRACE_S, cold_start_s=10.0, archive_within_s=0.2)
    root = tmp_path / "run" / "clickhouse"
    events: list[str] = []
    try:
        with live_run(kafka_cluster.bootstrap, tmp_path / "run", cfg, archive=True, speedup=SPEEDUP,
                      extra_env=FAST_FAILOVER) as run:
            rep = Replayer(run.kafka, df, SPEEDUP)
            rep.start()
            _wait_sent(rep, 60)
            victim = _busiest_leader(kafka_cluster, run)
            t0 = time.monotonic()
            kafka_cluster.kill_node(victim)
            events.append(f"kill -9 node {victim} (leader) after {rep.sent} sent")
            _wait_sent(rep, 120)  # requests keep coming while the partitions' leadership moves
            kafka_cluster.start_node(victim)
            events.append(f"node {victim} back after {time.monotonic() - t0:.1f} s")
            ctl, _ = kafka_cluster.active_controller()
            assert ctl is not None
            t1 = time.monotonic()
            kafka_cluster.kill_node(ctl)
            events.append(f"kill -9 node {ctl} (active controller) after {rep.sent} sent")
            assert rep.sent < len(df), "the replay ended before the controller was killed: slow it down"
            time.sleep(5.0)  # a new controller is elected; the replay goes on
            kafka_cluster.start_node(ctl)
            events.append(f"node {ctl} back after {time.monotonic() - t1:.1f} s")
            rep.join(240)
            assert rep.error is None and rep.failed == 0 and rep.sent == len(df)

            want = set(ids)

            def done() -> bool:
                routed = set(first_routes(run.kafka)[0])
                completed = {r["request_id"] for r in records(run.kafka, "completions")}
                return want <= routed and want <= completed

            wait_until(done, 240.0, run, "every request routed and completed", every_s=2.0)
            time.sleep(3.0)  # late duplicates, if any, arrive now
            rec = recovery(run.kafka, ids, WINDOW_S, GRACE_S)
            sent_ids = [r["request_id"] for r in records(run.kafka, "requests")]
            for name in ("fleet", "worker-0"):  # the topics stop growing: exact counts for the archive
                run.procs.stop(name)
            names = list(RECORD_TYPES)
            counts = topic_counts(run.kafka, names)
            wait_until(lambda: group_lag(run.kafka, "preserve-archive", names) == 0, 180.0, run, "archive caught up")
            run.procs.stop("archive")
        print("\ncluster faults: " + "; ".join(events))
        print(f"recovery: {rec.line()}")
        assert rec.lost == 0 and rec.duplicates_acted_on == 0 and rec.wrong_instance == 0
        # The gateway's idempotent producer may still write a request twice across a leader's kill -9 (seen once
        # in 3 runs: 501 messages for 500 requests); the pipeline must absorb it: one decision acted on per request.
        doubled_at_gateway = len(sent_ids) - len(set(sent_ids))
        print(f"requests written twice by the gateway producer: {doubled_at_gateway}")
        assert set(sent_ids) == set(ids) and counts["dead-letter"] == 0
        client = clickhouse_client(f"chdb://{root}")
        report = []
        for topic in names:
            rows = int(client.query_df(f"SELECT count() AS n FROM {table_name(topic)}")["n"].iloc[0])  # noqa: S608
            report.append(f"{topic} {counts[topic]}/{rows}")
            assert rows == counts[topic], f"{topic}: topic {counts[topic]} messages, archive {rows} rows"
        print("archive (topic/rows): " + ", ".join(report))
    finally:
        for node in kafka_cluster.nodes:
            kafka_cluster.start_node(node)  # no-op where it runs: the session's cluster stays whole
        kafka_cluster.wait_fully_replicated(120.0)
