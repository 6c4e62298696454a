"""faust-streaming (aiokafka driver) against our broker: topic -> agent -> Table (changelog) -> output topic.

Guards the design note that faust's leader-assignor topic creation may fail on Kafka 4: the worker must create
its assignor and changelog topics, consume, update the table and produce, on the broker version we ship.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from streams.settings import project_root


def _start_worker(broker: str, probe: str, tmp_path: Path, tag: str) -> tuple[subprocess.Popen[bytes], Path]:
    env = dict(os.environ, PROBE_BROKER=broker, PROBE_ID=probe, PROBE_DATADIR=str(tmp_path / f"faust-{tag}"))
    log_path = tmp_path / f"worker-{tag}.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "tests.infra.faust_probe_app", "worker", "-l", "warn"],
                                env=env, cwd=project_root(), stdout=log, stderr=subprocess.STDOUT)
    return proc, log_path


def _stop(worker: subprocess.Popen[bytes]) -> None:
    worker.terminate()
    try:
        worker.wait(30)
    except subprocess.TimeoutExpired:
        worker.kill()
        worker.wait(10)


def _send(broker: str, topic: str, words: list[str]) -> None:
    producer = Producer({"bootstrap.servers": broker})
    for w in words:
        producer.produce(topic, w.encode(), key=w.encode())
    assert producer.flush(30) == 0


def _collect(consumer: Consumer, n: int, worker: subprocess.Popen[bytes], log_path: Path) -> list[str]:
    got: list[str] = []
    deadline = time.monotonic() + 90
    while len(got) < n and time.monotonic() < deadline and worker.poll() is None:
        msg = consumer.poll(0.5)
        if msg is not None and msg.error() is None:
            got.append(msg.value().decode())
    assert len(got) == n, log_path.read_text(errors="replace")[-3000:]
    return got


def _last_counts(got: list[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for g in got:
        k, v = g.split("=")
        out[k] = max(out.get(k, 0), int(v))
    return out


@pytest.mark.integration
def test_faust_worker_with_table_on_our_broker(kafka_broker: str, tmp_path: Path) -> None:
    probe = f"c{os.getpid()}"
    src, out = f"probe-{probe}-in", f"probe-{probe}-out"
    admin = AdminClient({"bootstrap.servers": kafka_broker})
    for fut in admin.create_topics([NewTopic(src, 2, 1), NewTopic(out, 1, 1)]).values():
        fut.result(30)
    consumer = Consumer({"bootstrap.servers": kafka_broker, "group.id": f"check-{probe}",
                         "auto.offset.reset": "earliest"})
    consumer.subscribe([out])
    words = ["a", "b", "a", "c", "a", "b"] * 5
    worker, log_path = _start_worker(kafka_broker, probe, tmp_path, "1")
    try:
        _send(kafka_broker, src, words)
        # The table counted every word exactly once: the last count per word equals its frequency.
        assert _last_counts(_collect(consumer, len(words), worker, log_path)) == dict(Counter(words))
    finally:
        _stop(worker)
    assert f"faust-probe-{probe}-probe-{probe}-counts-changelog" in admin.list_topics(timeout=10).topics
    # A fresh worker (empty local state) recovers the table from the changelog and continues counting.
    worker, log_path = _start_worker(kafka_broker, probe, tmp_path, "2")
    try:
        _send(kafka_broker, src, ["a", "c"])
        assert _last_counts(_collect(consumer, 2, worker, log_path)) == {"a": 16, "c": 6}
    finally:
        _stop(worker)
        consumer.close()
