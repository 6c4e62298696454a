"""One end-to-end run of the live pipeline on a trace: Kafka, topics, workers, fleet, replay, drain.

Used by ``preserve demo`` and the end-to-end integration test. Each run gets its own topic prefix (and, with the
embedded store, its own ClickHouse path), so counts are exact and runs never mix.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from fleet.live.pipeline_procs import PipelineProcesses, group_lag, read_topic, topic_counts
from streams.pipeline_config import PipelineConfig
from streams.records import RECORD_TYPES
from streams.settings import KafkaSettings
from streams.topics import ensure_topics

__all__ = ["DemoSettings", "DemoOutcome", "pipeline_args", "run_pipeline", "read_records"]

READY_MARKER = "[^Worker]: Ready"
CONTROL_AGENTS = "predict,route,density,forecast,scale"


@dataclass(frozen=True)
class DemoSettings:
    speedup: float = 10.0
    lag_s: float = 0.5
    start_timeout_s: float = 180.0
    drain_timeout_s: float = 300.0
    archive: bool = True
    workers: int = 1  # control workers sharing the services (consumer group)
    fleet_engine_args: tuple[str, ...] = ()  # replaces `--engine <preset>` of the fleet (real engine processes)


@dataclass
class DemoOutcome:
    sent: int
    counts: dict[str, int]
    replay_wall_s: float
    drain_wall_s: float
    run_dir: Path
    archive_lag: int | None = None
    notes: list[str] = field(default_factory=list)


def pipeline_args(cfg: PipelineConfig) -> list[str]:
    """``preserve worker`` options that reproduce ``cfg``."""
    args: list[str] = []
    for f in dataclasses.fields(cfg):
        val = getattr(cfg, f.name)
        if val is not None:
            args += [f"--{f.name.replace('_', '-')}", str(val)]
    return args


def _wait_drained(kafka: KafkaSettings, n: int, procs: PipelineProcesses, timeout_s: float,
                  progress: Callable[[dict[str, int]], None] | None) -> dict[str, int]:
    deadline = time.time() + timeout_s
    names = ["requests", "predicted-requests", "routes", "completions"]
    while True:
        counts = topic_counts(kafka, names)
        if progress:
            progress(counts)
        if counts["routes"] >= n and counts["completions"] >= n:
            return counts
        procs.check_alive()
        if time.time() > deadline:
            raise TimeoutError(f"pipeline not drained after {timeout_s:.0f} s: {counts} of {n} requests; "
                               f"logs in {procs.run_dir}")
        time.sleep(0.5)


def _wait_archived(kafka: KafkaSettings, procs: PipelineProcesses, timeout_s: float) -> int:
    """Wait until the archive group has committed every message (then the archive is complete)."""
    deadline = time.time() + timeout_s
    names = list(RECORD_TYPES)
    while True:
        lag = group_lag(kafka, "preserve-archive", names)
        if lag == 0 or time.time() > deadline:
            return lag
        procs.check_alive()
        time.sleep(1.0)


def run_pipeline(df: pd.DataFrame, cfg: PipelineConfig, kafka: KafkaSettings, env: dict[str, str], run_dir: Path,
                 demo: DemoSettings, tqdm_cls: Any = None, say: Callable[[str], None] = print) -> DemoOutcome:
    """Start workers + fleet, replay ``df``, wait until every request is routed and completed (and archived).

    Children are stopped on return (or on error); their logs stay in ``run_dir``.
    """
    from replay.kafka_replay import send_trace

    ensure_topics(kafka)
    procs = PipelineProcesses(run_dir, env)
    wargs = pipeline_args(cfg.for_replay(demo.speedup))  # a replay declares its clock: the stream's, at its speed
    try:
        for i in range(demo.workers):
            procs.start(f"worker-{i}", ["worker", "--agents", CONTROL_AGENTS, "--loglevel", "info", *wargs])
        if demo.archive:
            procs.start("archive", ["worker", "--agents", "archive", "--loglevel", "info", *wargs])
        fleet_args = ["fleet", "--speedup", str(demo.speedup), "--lag-s", str(demo.lag_s),
                      *(demo.fleet_engine_args or ("--engine", cfg.engine))]
        if cfg.cold_start_s is not None and not demo.fleet_engine_args:
            fleet_args += ["--cold-start-s", str(cfg.cold_start_s)]
        procs.start("fleet", fleet_args)
        say(f"demo: starting {demo.workers} control worker(s){' + archive worker' if demo.archive else ''} + fleet "
            f"(logs in {run_dir})")
        for name in procs.procs:
            if name != "fleet":
                procs.wait_for_log(name, READY_MARKER, demo.start_timeout_s)
        procs.check_alive()
        t0 = time.time()
        # Real engines stamp their timings with the wall clock: the trace's t=0 is then exactly now (the default
        # epoch is a whole second, which would add up to 1 s to every measured latency).
        epoch = time.time() if demo.fleet_engine_args else None
        counts = send_trace(df, demo.speedup, epoch, True, tqdm_cls, kafka)
        replay_wall = time.time() - t0
        if counts.failed:
            raise RuntimeError(f"{counts.failed} requests could not be produced")
        bar = tqdm_cls(total=len(df), unit="req", desc="completions") if tqdm_cls else None

        def progress(c: dict[str, int]) -> None:
            if bar is not None:
                bar.update(min(c["completions"], len(df)) - bar.n)

        t1 = time.time()
        try:
            final = _wait_drained(kafka, len(df), procs, demo.drain_timeout_s, progress)
        finally:
            if bar is not None:
                bar.close()
        out = DemoOutcome(counts.sent, final, replay_wall, time.time() - t1, run_dir)
        time.sleep(2.0)  # statuses, density windows and forecasts that follow the last completion
        for name in [n for n in procs.procs if n != "archive"]:  # nothing more is produced after this
            procs.stop(name)
        out.counts = topic_counts(kafka, list(RECORD_TYPES))
        if demo.archive:
            out.archive_lag = _wait_archived(kafka, procs, 120.0)
            procs.stop("archive", 60.0)  # the embedded store has one owner: release it for the report
        return out
    finally:
        procs.stop_all()


def read_records(kafka: KafkaSettings, name: str) -> pd.DataFrame:
    """A topic's records as a DataFrame (for the comparison when no archive is available, and for tests)."""
    rows = [json.loads(v) for v in read_topic(kafka, name)]
    return pd.DataFrame(rows)
