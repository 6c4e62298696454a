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


@pytest.mark.integration
def test_faust_worker_with_table_on_our_broker(kafka_broker: str, tmp_path: Path) -> None:
    probe = f"c{os.getpid()}"
    admin = AdminClient({"bootstrap.servers": kafka_broker})
    for fut in admin.create_topics([NewTopic(f"probe-{probe}-in", 2, 1), NewTopic(f"probe-{probe}-out", 1, 1)]).values():
        fut.result(30)
    env = dict(os.environ, PROBE_BROKER=kafka_broker, PROBE_ID=probe, PROBE_DATADIR=str(tmp_path / "faust"))
    log = open(tmp_path / "worker.log", "wb")  # noqa: SIM115 - closed in finally
    worker = subprocess.Popen([sys.executable, "-m", "tests.infra.faust_probe_app", "worker", "-l", "warn"],
                              env=env, cwd=project_root(), stdout=log, stderr=subprocess.STDOUT)
    try:
        words = ["a", "b", "a", "c", "a", "b"] * 5
        producer = Producer({"bootstrap.servers": kafka_broker})
        for w in words:
            producer.produce(f"probe-{probe}-in", w.encode(), key=w.encode())
        assert producer.flush(30) == 0
        consumer = Consumer({"bootstrap.servers": kafka_broker, "group.id": f"check-{probe}",
                             "auto.offset.reset": "earliest"})
        consumer.subscribe([f"probe-{probe}-out"])
        got: list[str] = []
        deadline = time.monotonic() + 90
        while len(got) < len(words) and time.monotonic() < deadline and worker.poll() is None:
            msg = consumer.poll(0.5)
            if msg is not None and msg.error() is None:
                got.append(msg.value().decode())
        consumer.close()
        log.flush()
        assert len(got) == len(words), (tmp_path / "worker.log").read_text()[-3000:]
        # The table counted every word exactly once: the last count per word equals its frequency.
        final = {k: max(int(g.split("=")[1]) for g in got if g.startswith(k + "=")) for k in Counter(words)}
        assert final == dict(Counter(words))
        topics = admin.list_topics(timeout=10).topics
        assert f"faust-probe-{probe}-probe-{probe}-counts-changelog" in topics
    finally:
        worker.terminate()
        try:
            worker.wait(30)
        except subprocess.TimeoutExpired:
            worker.kill()
        log.close()
