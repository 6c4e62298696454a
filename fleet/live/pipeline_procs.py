"""Running the live pipeline as processes (workers, fleet) and watching it through Kafka: used by
``preserve demo``, the integration tests and the pipeline benchmark.

Why subprocesses: each Faust worker is its own consumer-group member with its own event loop, exactly as in a
deployment, and the embedded ClickHouse store can only be owned by one process (the archive worker).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from confluent_kafka import Consumer, TopicPartition

from streams.settings import KafkaSettings, project_root
from streams.transport.kafka_wait import kafka_reachable

__all__ = ["topic_counts", "group_lag", "PipelineProcesses", "ProcessFailed", "kafka_reachable",
           "read_topic"]


class ProcessFailed(RuntimeError):
    """A pipeline process exited or did not become ready; the message carries the tail of its log."""


def _consumer(kafka: KafkaSettings, group: str = "preserve-watch") -> Consumer:
    return Consumer({**kafka.confluent_config(), "group.id": group, "enable.auto.commit": False})


def topic_counts(kafka: KafkaSettings, names: Iterable[str], consumer: Consumer | None = None) -> dict[str, int]:
    """Messages currently in each topic (sum over partitions of high - low watermark)."""
    c = consumer or _consumer(kafka)
    out: dict[str, int] = {}
    try:
        md = c.list_topics(timeout=10)
        for name in names:
            t = md.topics.get(kafka.topic(name))
            total = 0
            for p in (t.partitions if t else {}):
                lo, hi = c.get_watermark_offsets(TopicPartition(kafka.topic(name), p), timeout=10)
                total += hi - lo
            out[name] = total
    finally:
        if consumer is None:
            c.close()
    return out


def group_lag(kafka: KafkaSettings, group: str, names: Iterable[str]) -> int:
    """Messages of ``names`` not yet committed by consumer group ``group`` (everything, if it committed none)."""
    c = _consumer(kafka, group)
    try:
        md = c.list_topics(timeout=10)
        parts = [TopicPartition(kafka.topic(n), p) for n in names
                 for p in (md.topics[kafka.topic(n)].partitions if kafka.topic(n) in md.topics else {})]
        committed = c.committed(parts, timeout=10)
        lag = 0
        for tp in committed:
            lo, hi = c.get_watermark_offsets(TopicPartition(tp.topic, tp.partition), timeout=10)
            lag += hi - (tp.offset if tp.offset >= 0 else lo)
        return lag
    finally:
        c.close()


@dataclass
class PipelineProcesses:
    """Child processes of one pipeline run, their logs under ``run_dir``, stopped together.

    :param run_dir: logs go here. :param env: environment of every child (PRESERVE_* settings).
    """

    run_dir: Path
    env: dict[str, str]
    procs: dict[str, tuple[subprocess.Popen[bytes], Path]] = field(default_factory=dict)
    stopped: set[str] = field(default_factory=set)  # stopped on purpose: their exit is not a failure

    def start(self, name: str, args: list[str]) -> subprocess.Popen[bytes]:
        """``preserve ARGS...`` as a child named ``name`` (log: ``run_dir/name.log``)."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        log = self.run_dir / f"{name}.log"
        env = {**os.environ, **self.env}
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(project_root()), env.get("PYTHONPATH", "")]))
        with log.open("wb") as fh:
            proc = subprocess.Popen([sys.executable, "-m", "preserve_cli.main", *args], stdout=fh,
                                    stderr=subprocess.STDOUT, env=env, cwd=project_root(), start_new_session=True)
        self.procs[name] = (proc, log)
        return proc

    def tail(self, name: str, lines: int = 30) -> str:
        log = self.procs[name][1]
        text = log.read_text(errors="replace") if log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def check_alive(self) -> None:
        for name, (proc, _) in self.procs.items():
            if name not in self.stopped and proc.poll() is not None:
                raise ProcessFailed(f"{name} exited with code {proc.returncode}; its log ends with:\n{self.tail(name)}")

    def wait_for_log(self, name: str, marker: str, timeout_s: float) -> None:
        """Wait until ``marker`` appears in the child's log (e.g. Faust's "Worker ready")."""
        proc, log = self.procs[name]
        deadline = time.time() + timeout_s
        while time.time() < deadline:
            if log.exists() and marker in log.read_text(errors="replace"):
                return
            if proc.poll() is not None:
                break
            time.sleep(0.25)
        self.check_alive()
        raise ProcessFailed(f"{name} not ready after {timeout_s:.0f} s; its log ends with:\n{self.tail(name)}")

    def stop(self, name: str, timeout_s: float = 20.0) -> int | None:
        """SIGTERM (graceful: Faust commits and flushes), then SIGKILL after ``timeout_s``."""
        proc, _ = self.procs[name]
        self.stopped.add(name)
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        return proc.returncode

    def stop_all(self) -> None:
        for name in reversed(list(self.procs)):
            self.stop(name)


def read_topic(kafka: KafkaSettings, name: str, timeout_s: float = 30.0) -> list[bytes]:
    """Every message value currently in topic ``name`` (reads partitions up to their high watermark)."""
    c = _consumer(kafka, f"preserve-read-{os.getpid()}-{time.time_ns()}")
    topic = kafka.topic(name)
    out: list[bytes] = []
    try:
        md = c.list_topics(topic, timeout=10)
        parts = list(md.topics[topic].partitions) if topic in md.topics else []
        ends = {}
        assign = []
        for p in parts:
            lo, hi = c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            if hi > lo:
                ends[p] = hi
                assign.append(TopicPartition(topic, p, lo))
        if not assign:
            return out
        c.assign(assign)
        deadline = time.time() + timeout_s
        while ends and time.time() < deadline:
            for m in c.consume(1000, timeout=0.5):
                value, offset = m.value(), m.offset()
                if m.error() or offset is None:
                    continue
                if value is not None:
                    out.append(value)
                if offset + 1 >= ends.get(m.partition(), 0):
                    ends.pop(m.partition(), None)
        return out
    finally:
        c.close()
