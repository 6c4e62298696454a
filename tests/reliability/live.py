"""A live pipeline under test: real workers and fleet as processes on a real broker, plus the tools the
reliability tests need around it (produce with offsets, kill -9, read topics, wait with a deadline).

Each run gets its own topic prefix, so counts are exact and runs never mix, and every wait has a deadline
(a hung pipeline fails the test with the processes' log tails instead of hanging CI).
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from confluent_kafka import Producer

from fleet.live.demo_run import CONTROL_AGENTS, READY_MARKER, pipeline_args
from fleet.live.pipeline_procs import PipelineProcesses, read_topic
from streams.pipeline_config import PipelineConfig
from streams.settings import KafkaSettings
from streams.topics import ensure_topics

__all__ = ["LiveRun", "live_run", "produce", "wait_until", "records", "Replayer", "trace", "FAST_FAILOVER"]

# Faust reads these from the environment. A member killed with -9 leaves the group only when its session
# expires (Faust's default: 60 s), and a restarted member waits for that. Tests shorten it to 10 s (the
# broker's minimum is 6 s), as a deployment that wants fast failover would.
FAST_FAILOVER = {"BROKER_SESSION_TIMEOUT": "10", "BROKER_HEARTBEAT_INTERVAL": "1"}


@dataclass
class LiveRun:
    kafka: KafkaSettings
    env: dict[str, str]
    run_dir: Path
    cfg: PipelineConfig
    procs: PipelineProcesses
    restarts: dict[str, int] = field(default_factory=dict)

    def start_worker(self, name: str, agents: str = CONTROL_AGENTS, wait_s: float = 180.0) -> None:
        self.procs.start(name, ["worker", "--agents", agents, "--loglevel", "info", *pipeline_args(self.cfg)])
        self.procs.wait_for_log(name, READY_MARKER, wait_s)

    def kill9(self, name: str) -> None:
        """SIGKILL the whole process group: no graceful commit, no flush (a crashed host)."""
        proc, _ = self.procs.procs[name]
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)

    def logs(self) -> str:
        return "\n".join(f"--- {n} ---\n{self.procs.tail(n, 15)}" for n in self.procs.procs)


@contextmanager
def live_run(bootstrap: str, run_dir: Path, cfg: PipelineConfig, workers: int = 1, fleet: bool = True,
             archive: bool = False, speedup: float = 20.0, extra_env: dict[str, str] | None = None,
             partitions: int = 4) -> Iterator[LiveRun]:
    """Topics, ``workers`` control workers (+ archive worker) (+ fleet), all ready; stopped on exit."""
    prefix = f"rel{time.time_ns() % 10**10}."
    kafka = KafkaSettings(bootstrap_servers=bootstrap, topic_prefix=prefix, partitions=partitions)
    env = {"PRESERVE_KAFKA__BOOTSTRAP_SERVERS": bootstrap, "PRESERVE_KAFKA__TOPIC_PREFIX": prefix,
           "PRESERVE_KAFKA__PARTITIONS": str(partitions),
           "PRESERVE_CLICKHOUSE__DSN": f"chdb://{run_dir / 'clickhouse'}", "PRESERVE_DATA_DIR": str(run_dir),
           **(extra_env or {})}
    ensure_topics(kafka)
    run = LiveRun(kafka, env, run_dir, cfg, PipelineProcesses(run_dir, env))
    try:
        for i in range(workers):
            run.procs.start(f"worker-{i}", ["worker", "--agents", CONTROL_AGENTS, "--loglevel", "info",
                                            *pipeline_args(cfg)])
        if archive:
            run.procs.start("archive", ["worker", "--agents", "archive", "--loglevel", "info", *pipeline_args(cfg)])
        if fleet:
            args = ["fleet", "--speedup", str(speedup), "--lag-s", "0.5", "--engine", cfg.engine, "--quiet"]
            if cfg.cold_start_s is not None:
                args += ["--cold-start-s", str(cfg.cold_start_s)]
            run.procs.start("fleet", args)
        for name in list(run.procs.procs):
            if name != "fleet":
                run.procs.wait_for_log(name, READY_MARKER, 180.0)
        run.procs.check_alive()
        yield run
    finally:
        run.procs.stop_all()


def produce(kafka: KafkaSettings, topic: str, items: list[tuple[bytes | None, bytes | None]],
            timeout_s: float = 60.0) -> list[tuple[int, int]]:
    """Send ``(key, value)`` pairs to logical ``topic`` in order; return each one's (partition, offset)."""
    producer = Producer({**kafka.confluent_config(), "linger.ms": 5, "enable.idempotence": True,
                         "message.max.bytes": 2_000_000})
    where: list[tuple[int, int] | None] = [None] * len(items)
    errors: list[str] = []

    def done(i: int) -> Callable[[object, object], None]:
        def cb(err: object, msg: object) -> None:
            if err is not None:
                errors.append(str(err))
            else:
                where[i] = (msg.partition(), msg.offset())  # type: ignore[attr-defined]
        return cb

    for i, (key, value) in enumerate(items):
        producer.produce(kafka.topic(topic), key=key, value=value, on_delivery=done(i))
        producer.poll(0)
    left = producer.flush(timeout_s)
    if errors or left or any(w is None for w in where):
        raise RuntimeError(f"produce to {topic} failed: {left} undelivered, errors {errors[:3]}")
    return [w for w in where if w is not None]


def records(kafka: KafkaSettings, topic: str) -> list[dict]:
    """Every message of ``topic`` decoded as JSON (pipeline outputs are always valid JSON)."""
    return [json.loads(v) for v in read_topic(kafka, topic)]


def wait_until(check: Callable[[], bool], timeout_s: float, run: LiveRun | None = None, what: str = "",
               every_s: float = 1.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if run is not None:
            run.procs.check_alive()
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not reached within {timeout_s:.0f} s\n" + (run.logs() if run else ""))
        time.sleep(every_s)


def trace(n: int, services: list[str], gap_s: float = 0.1, seed: int = 0) -> pd.DataFrame:
    """A small synthetic trace: ``n`` requests ``gap_s`` apart (trace seconds), round-robin over services."""
    import numpy as np

    rng = np.random.default_rng(seed)
    return pd.DataFrame({"request_id": [f"req-{i}" for i in range(n)], "arrival_s": np.arange(n) * gap_s,
                         "service": [services[i % len(services)] for i in range(n)],
                         "prompt_tokens": rng.integers(20, 1500, n), "output_tokens": rng.integers(1, 300, n),
                         "prompt": [f"prompt number {i}" for i in range(n)]})


class Replayer(threading.Thread):
    """``preserve replay``'s pacing (replay.producer.replay_trace) in a background thread; ``sent`` counts."""

    def __init__(self, kafka: KafkaSettings, df: pd.DataFrame, speedup: float) -> None:
        super().__init__(daemon=True)
        self.kafka, self.df, self.speedup = kafka, df, speedup
        self.sent = 0
        self.failed = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        from replay.producer import replay_trace

        producer = Producer({**self.kafka.confluent_config(), "linger.ms": 5, "enable.idempotence": True,
                             "message.timeout.ms": 300_000, "log_level": 2})  # outages are expected: failures still counted
        topic = self.kafka.topic("requests")

        def cb(err: object, _msg: object) -> None:
            self.failed += err is not None

        def send(key: str, value: bytes) -> None:
            producer.produce(topic, key=key.encode(), value=value, on_delivery=cb)
            self.sent += 1

        try:
            replay_trace(self.df, send, self.speedup, poll=lambda: producer.poll(0))
            self.failed += producer.flush(300)
        except BaseException as e:  # noqa: BLE001 - surfaced by the test through .error
            self.error = e
