"""Two archive workers share the topics while records keep arriving; one stops gracefully (SIGTERM) and comes
back, the other is killed with -9 and comes back (each a rebalance). Afterwards the archive holds exactly one
row per record of every topic (issue 21, finding 6: a graceful stop lost rows for good).

Why records are produced directly (no control workers, no fleet): the test is about the archive's offsets, and
a steady producer keeps batches in flight at every stop. Small batches (``--archive-batch 25``) make many files,
so a stop lands between a batch's write and its commit.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from confluent_kafka import Producer

from fleet.live.demo_run import READY_MARKER
from fleet.live.pipeline_procs import PipelineProcesses, group_lag, topic_counts
from sinks.client import clickhouse_client
from sinks.schema import table_name
from streams.records import RECORD_TYPES
from streams.settings import KafkaSettings
from streams.topics import ensure_topics
from tests.fixtures.archive_data import sample_records
from tests.reliability.live import FAST_FAILOVER, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

ARCHIVE_ARGS = ["worker", "--agents", "archive", "--loglevel", "info", "--archive-batch", "25",
                "--archive-within-s", "0.1"]


class Producing(threading.Thread):
    """Every record type, in rounds of the archive fixture's mini-run, until stopped."""

    def __init__(self, kafka: KafkaSettings) -> None:
        super().__init__(daemon=True)
        self.kafka = kafka
        self.stop_now = threading.Event()
        self.sent = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        producer = Producer({**self.kafka.confluent_config(), "linger.ms": 5, "enable.idempotence": True})
        failed: list[str] = []

        def done(err: object, _msg: object) -> None:
            if err is not None:
                failed.append(str(err))

        try:
            t0 = 1_700_000_000.0
            while not self.stop_now.is_set():
                for rec in sample_records(t0, n=20):
                    key = getattr(rec, "service", None) or "dead"
                    producer.produce(self.kafka.topic(rec.topic), key=key.encode(),
                                     value=rec.model_dump_json().encode(), on_delivery=done)
                    self.sent += 1
                producer.poll(0)
                t0 += 600.0
                time.sleep(0.1)
            if producer.flush(60) or failed:
                raise RuntimeError(f"undelivered records: {failed[:3]}")
        except BaseException as e:  # noqa: BLE001 - surfaced by the test
            self.error = e


def _file_keys(root: Path, table: str) -> Counter[tuple[int, int]]:
    keys: Counter[tuple[int, int]] = Counter()
    for f in (root / "parquet" / table).glob("*.parquet"):
        t = pq.read_table(f, columns=["kafka_partition", "kafka_offset"])
        keys.update(zip(t.column(0).to_pylist(), t.column(1).to_pylist(), strict=True))
    return keys


def test_two_archive_workers_stop_kill9_and_rebalance_lose_and_double_no_row(kafka_broker: str,
                                                                              tmp_path: Path) -> None:
    prefix = f"arch{time.time_ns() % 10**10}."
    kafka = KafkaSettings(bootstrap_servers=kafka_broker, topic_prefix=prefix)
    root = tmp_path / "clickhouse"
    env = {"PRESERVE_KAFKA__BOOTSTRAP_SERVERS": kafka_broker, "PRESERVE_KAFKA__TOPIC_PREFIX": prefix,
           "PRESERVE_CLICKHOUSE__DSN": f"chdb://{root}", "PRESERVE_DATA_DIR": str(tmp_path), **FAST_FAILOVER}
    ensure_topics(kafka)
    procs = PipelineProcesses(tmp_path / "logs", env)
    names = list(RECORD_TYPES)
    started = time.monotonic()
    try:
        for name in ("a", "b"):
            procs.start(name, ARCHIVE_ARGS)
        for name in ("a", "b"):
            procs.wait_for_log(name, READY_MARKER, 120.0)
        ready_s = time.monotonic() - started
        prod = Producing(kafka)
        prod.start()
        wait_until(lambda: prod.sent >= 1000, 60.0, what="records under way", every_s=0.1)
        t0 = time.monotonic()
        procs.start("a2", ARCHIVE_ARGS)  # a third member joins: a rebalance
        procs.start("b2", ARCHIVE_ARGS)  # (started early: Python and Faust take a while to come up here)
        procs.wait_for_log("a2", READY_MARKER, 120.0)
        procs.stop("a")  # graceful: Faust commits what was acked, then leaves the group: a rebalance
        wait_until(lambda: prod.sent >= 4000, 60.0, what="more records", every_s=0.1)
        proc_b, _ = procs.procs["b"]
        proc_b.kill()  # kill -9 mid-batch: nothing committed since its last commit; its partitions move once
        proc_b.wait(10)  # its session expires (10 s here)
        procs.stopped.add("b")
        procs.wait_for_log("b2", READY_MARKER, 120.0)
        wait_until(lambda: prod.sent >= 6000, 60.0, what="records after the restarts", every_s=0.1)
        prod.stop_now.set()
        prod.join(60)
        assert prod.error is None, prod.error
        counts = topic_counts(kafka, names)
        wait_until(lambda: group_lag(kafka, "preserve-archive", names) == 0, 90.0, what="archive caught up",
                   every_s=1.0)
        faults_s = time.monotonic() - t0
        for name in ("a2", "b2"):
            procs.stop(name)
    finally:
        procs.stop_all()
    client = clickhouse_client(f"chdb://{root}")
    report = []
    for topic in names:
        table = table_name(topic)
        rows = int(client.query_df(f"SELECT count() AS n FROM {table}")["n"].iloc[0])  # noqa: S608
        keys = _file_keys(root, table)
        report.append(f"{table}: topic {counts[topic]} sql {rows} distinct files {len(keys)}")
        assert len(keys) == counts[topic], f"{table}: archive rows != distinct topic records ({report[-1]})"
        assert rows == counts[topic], f"{table}: rows lost or doubled in SQL ({report[-1]})"
    print(f"\nworkers ready in {ready_s:.0f} s; stop + kill -9 + 2 rebalances + drain in {faults_s:.0f} s; "
          + "; ".join(report))
    assert sum(counts.values()) == prod.sent
    assert faults_s < 90.0, f"stops, rebalances and the drain took {faults_s:.0f} s (bound: 90 s)"
