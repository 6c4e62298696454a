"""Bounded soak of the live pipeline: a steady request rate through Kafka, the control workers, the archive
worker and the simulated fleet for ``--minutes``, sampled every ``--sample-s``: throughput, consumer lag per
group and resident memory (RSS) + CPU share per process. Ends with a drain and a count of lost requests.

    .venv/bin/python -m bench.soak.run_soak --minutes 10 --rate 100 --json soak.json

Starts a private Kafka broker unless ``--bootstrap`` is given; each run uses its own topic prefix.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bench.soak.proc_stats import sample_tree
from bench.soak.soak_report import Sample, format_table, summarize
from fleet.live.demo_run import CONTROL_AGENTS, READY_MARKER, pipeline_args
from fleet.live.pipeline_procs import PipelineProcesses, group_lag, read_topic, topic_counts
from streams.pipeline_config import AGENTS, PipelineConfig
from streams.records import RECORD_TYPES
from streams.runtime_watch import TRACEMALLOC_ENV
from streams.settings import KafkaSettings
from streams.topics import ensure_topics

__all__ = ["steady_trace", "main"]

WATCHED = ["requests", "predicted-requests", "routes", "completions", "token-density", "dead-letter"]


def steady_trace(minutes: float, rate: float, speedup: float, services: int, seed: int = 0) -> pd.DataFrame:
    """Constant wall rate ``rate``/s for ``minutes``: arrivals ``speedup / rate`` trace seconds apart,
    round-robin over services, conv-like log-normal lengths (means ~1,150 prompt / ~210 output tokens)."""
    n = max(1, int(minutes * 60 * rate))
    rng = np.random.default_rng(seed)
    prompt = np.clip(rng.lognormal(6.7, 0.8, n), 8, 3500).astype(np.int64)
    output = np.clip(rng.lognormal(5.0, 0.8, n), 1, 4000 - prompt).astype(np.int64)
    return pd.DataFrame({"request_id": [f"soak-{i}" for i in range(n)], "arrival_s": np.arange(n) * speedup / rate,
                         "service": [f"svc-{i % services}" for i in range(n)], "prompt_tokens": prompt,
                         "output_tokens": output})


def _groups() -> dict[str, list[str]]:
    control = "preserve-" + "-".join(a for a in AGENTS if a in CONTROL_AGENTS.split(","))
    return {control: ["requests", "predicted-requests", "instance-events", "completions", "token-density",
                      "forecasts"],
            "preserve-archive": list(RECORD_TYPES), "preserve-fleet": ["routes", "scale-commands"]}


def _start_broker(tmp: Path) -> Any:
    from infra.kafka_broker import KafkaBroker
    from infra.kafka_config import BrokerConfig
    from infra.process_control import free_port

    port = free_port()
    broker = KafkaBroker(BrokerConfig(data_dir=tmp / "kafka", port=port, controller_port=free_port(avoid={port})))
    broker.start()
    return broker


def _sample(kafka: KafkaSettings, procs: PipelineProcesses, t0: float, sent: int, draining: bool = False) -> Sample:
    rss, cpu = {}, {}
    for name, (proc, _) in procs.procs.items():
        s = sample_tree(proc.pid)
        rss[name], cpu[name] = s.rss_mb, s.cpu_s
    lag = {g: group_lag(kafka, g, topics) for g, topics in _groups().items() if g != "preserve-archive" or
           "archive" in procs.procs}
    return Sample(time.time() - t0, sent, topic_counts(kafka, WATCHED), lag, rss, cpu, draining)


def _replay(df: pd.DataFrame, speedup: float, kafka: KafkaSettings, bar: Any, out: dict[str, Any]) -> None:
    from replay.kafka_replay import send_trace

    class _Bar:  # send_trace's progress hook, forwarded to the shared tqdm bar
        def __init__(self, **_kw: Any) -> None:
            pass

        def update(self, n: int = 1) -> None:
            bar.update(n)

        def close(self) -> None:
            pass

    try:
        out["counts"] = send_trace(df, speedup, None, False, _Bar, kafka)
    except BaseException as e:  # noqa: BLE001 - reported by the main thread
        out["error"] = e


def run(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    from tqdm import tqdm

    broker = None if args.bootstrap else _start_broker(tmp)
    bootstrap = args.bootstrap or broker.bootstrap
    kafka = KafkaSettings(bootstrap_servers=bootstrap, topic_prefix=f"soak{time.time_ns() % 10**9}.")
    cfg = PipelineConfig(policy=args.policy, predictor=args.predictor)
    env = {"PRESERVE_KAFKA__BOOTSTRAP_SERVERS": bootstrap, "PRESERVE_KAFKA__TOPIC_PREFIX": kafka.topic_prefix,
           "PRESERVE_CLICKHOUSE__DSN": f"chdb://{tmp / 'clickhouse'}", "PRESERVE_DATA_DIR": str(tmp)}
    if args.tracemalloc_s > 0:
        env[TRACEMALLOC_ENV] = str(args.tracemalloc_s)
    procs = PipelineProcesses(tmp / "logs", env)
    df = steady_trace(args.minutes, args.rate, args.speedup, args.services)
    samples: list[Sample] = []
    try:
        ensure_topics(kafka)
        for i in range(args.workers):
            procs.start(f"worker-{i}", ["worker", "--agents", CONTROL_AGENTS, "--loglevel", "info",
                                        *pipeline_args(cfg)])
        if args.archive:
            procs.start("archive", ["worker", "--agents", "archive", "--loglevel", "info", *pipeline_args(cfg)])
        procs.start("fleet", ["fleet", "--speedup", str(args.speedup), "--engine", cfg.engine, "--quiet"])
        for name in procs.procs:
            if name != "fleet":
                procs.wait_for_log(name, READY_MARKER, 240.0)
        bar = tqdm(total=len(df), unit="req", desc="soak", mininterval=2.0)
        result: dict[str, Any] = {}
        t0 = time.time()
        th = threading.Thread(target=_replay, args=(df, args.speedup, kafka, bar, result), daemon=True)
        th.start()
        while th.is_alive():
            th.join(args.sample_s)
            procs.check_alive()
            samples.append(_sample(kafka, procs, t0, bar.n))
        bar.close()
        replay_end = time.time() - t0
        if "error" in result:
            raise RuntimeError(f"replay failed: {result['error']}")
        deadline = time.time() + args.drain_s
        while time.time() < deadline:
            last = _sample(kafka, procs, t0, len(df), draining=True)
            if last.counts["routes"] >= len(df) and last.counts["completions"] >= len(df):
                break
            time.sleep(2.0)
        samples.append(_sample(kafka, procs, t0, len(df), draining=True))
        routed = {json.loads(v)["request_id"] for v in read_topic(kafka, "routes", 120.0)}
        lag_lines = {n: procs.tail(n, 10**7).splitlines() for n in procs.procs if n != "fleet"}
        summary = summarize(samples, args.warmup_s, args.rate, len(df), len(routed & set(df["request_id"])),
                            lag_lines)
        summary.update({"minutes": args.minutes, "speedup": args.speedup, "services": args.services,
                        "workers": args.workers, "archive": args.archive, "policy": args.policy,
                        "predictor": args.predictor, "replay_end_s": replay_end,
                        "drain_s": samples[-1].t - replay_end})
        summary["samples"] = [vars(s) for s in samples]
        return summary
    finally:
        procs.stop_all()
        if broker is not None:
            broker.stop()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--minutes", type=float, default=10.0, help="length of the steady phase (wall minutes)")
    p.add_argument("--rate", type=float, default=100.0, help="requests per wall second")
    p.add_argument("--speedup", type=float, default=1.0, help="trace seconds per wall second (fleet clock)")
    p.add_argument("--services", type=int, default=8, help="services (Kafka keys) the requests spread over")
    p.add_argument("--workers", type=int, default=1, help="control workers (one consumer group)")
    p.add_argument("--no-archive", dest="archive", action="store_false", help="run without the archive worker")
    p.add_argument("--policy", default="preserve:preserve", help="router:scaler spec")
    p.add_argument("--predictor", default="fallback", help="request-load predictor spec")
    p.add_argument("--sample-s", type=float, default=10.0, help="seconds between samples")
    p.add_argument("--warmup-s", type=float, default=30.0, help="samples before this are left out of the slopes")
    p.add_argument("--drain-s", type=float, default=180.0, help="most seconds to wait for the pipeline to drain")
    p.add_argument("--bootstrap", default=None, help="use this broker instead of starting a private one")
    p.add_argument("--json", type=Path, default=None, help="write the summary (and every sample) here")
    p.add_argument("--keep", type=Path, default=None, help="keep logs and archive in this folder")
    p.add_argument("--tracemalloc-s", type=float, default=0.0,
                   help="workers log their top heap growth sites this often (0: off; slows them ~2x)")
    args = p.parse_args(argv)
    if args.minutes <= 0 or args.rate <= 0 or args.speedup <= 0:
        p.error("--minutes, --rate and --speedup must be positive")
    with tempfile.TemporaryDirectory(prefix="preserve-soak-") as tmpdir:
        tmp = args.keep or Path(tmpdir)
        tmp.mkdir(parents=True, exist_ok=True)
        summary = run(args, tmp)
    print(format_table(summary))
    if args.json:
        args.json.write_text(json.dumps(summary, indent=1, default=str))
        print(f"wrote {args.json}")
    return 0 if summary.get("lost", 0) == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
