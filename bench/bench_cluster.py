"""The 3-node cluster beside a single broker, in the same run: raw Kafka rates and the pipeline's throughput.

    .venv/bin/python -m bench.bench_cluster [--raw 200000] [--n 20000] [--rate 500] [--seconds 10] [--json out.json]

Starts both, each on its own free ports and data dirs with the same JVM flags (G1, full JIT — never the test
brokers' quick JIT), then on each, one after the other: raw confluent-kafka produce (acks=all, idempotent: the
project's producer settings) and consume rates of RequestEvent-sized messages, and the pipeline benchmark's
predict + route throughput and decision latency (``bench.bench_pipeline.bench_predictor``, fallback predictor,
least-requests router). On the cluster every topic has 3 replicas and ``min.insync.replicas`` 2, so each write
waits for a follower's fetch: the price of surviving a node's loss. Run it on a quiet machine (three JVMs and a
worker share the cores).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.bench_pipeline import bench_predictor, raw_ceiling
from infra.kafka_broker import KafkaBroker
from infra.kafka_cluster import ClusterConfig, KafkaCluster
from infra.kafka_config import BrokerConfig
from infra.process_control import free_port, free_port_run
from streams.settings import KafkaSettings


def _single(home: Path) -> KafkaBroker:
    port = free_port()
    broker = KafkaBroker(BrokerConfig(data_dir=home, port=port, controller_port=free_port(avoid={port}),
                                      heap_mb=512, die_with_parent=True))
    broker.start()
    return broker


def _cluster(home: Path) -> KafkaCluster:
    cluster = KafkaCluster(ClusterConfig(home=home, size=3, base_port=free_port_run("127.0.0.1", 6), heap_mb=512,
                                         die_with_parent=True))
    cluster.start()
    return cluster


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--raw", type=int, default=200_000, help="messages of the raw produce/consume phase")
    ap.add_argument("--n", type=int, default=20_000, help="requests of the pipeline throughput phase (0: skip)")
    ap.add_argument("--rate", type=float, default=500.0, help="requests/s of the latency phase")
    ap.add_argument("--seconds", type=float, default=10.0, help="length of the latency phase")
    ap.add_argument("--json", type=Path, default=None, help="write the results here")
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-cluster-"))
    results: dict[str, Any] = {"machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                                           "load_avg_at_start": os.getloadavg()}}
    single, cluster = _single(root / "single"), _cluster(root / "cluster")
    try:
        for name, bootstrap in (("single", single.bootstrap), ("cluster3", cluster.bootstrap)):
            kafka = KafkaSettings(bootstrap_servers=bootstrap, topic_prefix=f"bc{time.time_ns() % 10**8}.")
            row: dict[str, Any] = {"bootstrap": bootstrap, "raw_kafka": raw_ceiling(kafka, args.raw)}
            print(f"{name}: raw {json.dumps(row['raw_kafka'])}", flush=True)
            if args.n:
                row["pipeline"] = bench_predictor(kafka, "fallback", "least-requests:fixed", args.n, args.rate,
                                                  args.seconds, root / f"run-{name}")
                print(f"{name}: pipeline {json.dumps(row['pipeline'])}", flush=True)
            results[name] = row
        results["machine"]["load_avg_at_end"] = os.getloadavg()
        print(json.dumps(results, indent=1))
        if args.json:
            args.json.write_text(json.dumps(results, indent=2) + "\n")
    finally:
        cluster.stop()
        single.stop()


if __name__ == "__main__":
    main()
