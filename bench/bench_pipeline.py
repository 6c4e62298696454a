"""Pipeline benchmark: requests/s from replay to RouteDecision, and decision latency, next to raw Kafka.

    .venv/bin/python -m bench.bench_pipeline [--n 20000] [--rate 500] [--seconds 10] [--prompts FILE] [--json out.json]

Without ``--prompts`` the requests carry no text, so every predictor answers from its fallback table (the routing
path is what is measured); with it, each request carries a numbered real prompt and ``predictor_source`` counts
how many the model answered and how many fell back because it was too slow.

For each predictor (the fallback, and the encoder model on CPU) a fresh Faust worker runs the `predict` and
`route` agents on its own topics; the fleet is pre-provisioned by publishing READY instance events (the
instance managers are not part of the measured path). Then:

- latency (first): requests at ``--rate`` per second for ``--seconds``; latency = RouteDecision broker
  timestamp (CreateTime, set when the worker sent it) - the request's send time;
- throughput: ``--n`` requests produced as fast as possible; requests/s = n / (last RouteDecision's broker
  timestamp - first request's send time).
- ceiling: raw confluent-kafka produce and consume rates of RequestEvent-sized messages in the same run.

Targets (issue 8): >= 5,000 requests/s through routing with the fallback; p99 <= 20 ms at 500 requests/s.
Uses the broker at PRESERVE_KAFKA__BOOTSTRAP_SERVERS if reachable, else starts a temporary one with the deployment
JVM flags (G1, full JIT; not the quick-start flags of the test brokers). The raw consume rate is timed on an assigned (not
subscribed) consumer, so machines compare on Kafka alone, not on a consumer-group join.
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

import numpy as np
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

from fleet.live.pipeline_procs import PipelineProcesses, kafka_reachable, topic_counts
from infra.kafka_broker import KafkaBroker
from infra.kafka_config import BrokerConfig
from infra.process_control import free_port
from streams.pipeline_config import PipelineConfig
from streams.records import InstanceEvent, InstanceEventKind, InstanceState
from streams.settings import KafkaSettings, load_settings
from streams.topics import ensure_topics
from streams.transport.producer_helper import PRODUCER_DEFAULTS

SERVICES = ["svc-0", "svc-1", "svc-2", "svc-3"]


def _payload(i: int, ts: float, service: str, prompts: list[str] | None = None) -> bytes:
    ev: dict[str, Any] = {"v": 1, "ts": ts, "request_id": f"b{i}", "service": service,
                          "prompt_tokens": 200 + i % 700, "output_tokens": 100}
    if prompts:  # a numbered copy of a real prompt: unique text, so the predictor's cache never answers
        ev["prompt"] = f"{i} {prompts[i % len(prompts)]}"
        ev["prompt_tokens"] = max(1, len(ev["prompt"]) // 4)
    return json.dumps(ev, ensure_ascii=False).encode()


def load_prompts(path: Path, limit: int = 4096) -> list[str]:
    """Up to ``limit`` prompt texts of a JSON-lines file (plain or gzip) with a ``prompt`` field."""
    from models.request_load.data import read_pairs

    return [ex.prompt for ex in read_pairs(str(path))[0][:limit]]


def raw_ceiling(kafka: KafkaSettings, n: int) -> dict[str, float]:
    """Raw produce and consume rates (messages/s) of RequestEvent-sized messages on a fresh topic."""
    k = kafka.model_copy(update={"topic_prefix": kafka.topic_prefix + "raw."})
    ensure_topics(k)
    topic = k.topic("requests")
    p = Producer({**k.confluent_config(), **PRODUCER_DEFAULTS, "queue.buffering.max.messages": 2_000_000})
    now = time.time()
    msgs = [_payload(i, now, SERVICES[i % 4]) for i in range(n)]
    t0 = time.perf_counter()
    for i, m in enumerate(msgs):
        while True:
            try:
                p.produce(topic, key=SERVICES[i % 4].encode(), value=m)
                break
            except BufferError:
                p.poll(0.01)
    p.flush(60)
    produce_s = time.perf_counter() - t0
    # Assigned, not subscribed: a group join (and on a fresh broker the offsets topic's "coordinator load in
    # progress") is no part of a consume rate, and took up to seconds here.
    c = Consumer({**k.confluent_config(), "group.id": f"bench-raw-{time.time_ns()}", "enable.auto.commit": False})
    parts = c.list_topics(topic, timeout=10).topics[topic].partitions
    got, t0 = 0, time.perf_counter()
    c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in parts])
    while got < n and time.perf_counter() - t0 < 120:
        got += sum(1 for m in c.consume(10_000, timeout=0.5) if not m.error())
    consume_s = time.perf_counter() - t0
    c.close()
    return {"produce_msgs_per_s": n / produce_s, "consume_msgs_per_s": got / consume_s, "messages": n}


def _provision(producer: Producer, kafka: KafkaSettings, ts: float) -> None:
    for svc in SERVICES:
        for j in range(8):
            ev = InstanceEvent(ts=ts, service=svc, instance_id=f"{svc}-{j}", kind=InstanceEventKind.READY,
                               state=InstanceState.READY, kv_capacity_tokens=116_992)
            producer.produce(kafka.topic("instance-events"), key=svc.encode(), value=ev.to_json())
    producer.flush(30)


def _route_times(kafka: KafkaSettings, n: int, timeout_s: float) -> dict[str, float]:
    """request_id -> broker CreateTime (s) of its RouteDecision, reading the routes topic until ``n`` seen."""
    c = Consumer({**kafka.confluent_config(), "group.id": f"bench-routes-{time.time_ns()}",
                  "auto.offset.reset": "earliest"})
    c.subscribe([kafka.topic("routes")])
    out: dict[str, float] = {}
    deadline = time.time() + timeout_s
    while len(out) < n and time.time() < deadline:
        for m in c.consume(5000, timeout=0.5):
            if not m.error() and m.value() is not None:
                out[json.loads(m.value() or b"{}")["request_id"]] = m.timestamp()[1] / 1000.0
    c.close()
    return out


def _send(producer: Producer, kafka: KafkaSettings, start: int, n: int, rate: float | None,
          prompts: list[str] | None = None) -> dict[str, float]:
    sent: dict[str, float] = {}
    t0 = time.perf_counter()
    topic = kafka.topic("requests")
    for i in range(start, start + n):
        if rate is not None:
            due = t0 + (i - start) / rate
            while time.perf_counter() < due:
                time.sleep(max(0.0, min(0.001, due - time.perf_counter())))
        svc = SERVICES[i % len(SERVICES)]
        now = time.time()
        while True:
            try:
                producer.produce(topic, key=svc.encode(), value=_payload(i, now, svc, prompts))
                break
            except BufferError:
                producer.poll(0.01)
        sent[f"b{i}"] = now
        if rate is not None or i % 1000 == 0:
            producer.poll(0)
    producer.flush(60)
    return sent


def bench_predictor(kafka: KafkaSettings, predictor: str, policy: str, n: int, rate: float, seconds: float,
                    run_dir: Path, prompts: list[str] | None = None) -> dict[str, Any]:
    k = kafka.model_copy(update={"topic_prefix": f"{kafka.topic_prefix}bench{time.time_ns() % 10**8}."})
    ensure_topics(k)
    cfg = PipelineConfig(policy=policy, predictor=predictor)
    procs = PipelineProcesses(run_dir / f"{predictor}-{policy}".replace("(", "_").replace(")", "").replace("=", "-"),
                              {"PRESERVE_KAFKA__BOOTSTRAP_SERVERS": k.bootstrap_servers,
                               "PRESERVE_KAFKA__TOPIC_PREFIX": k.topic_prefix})
    producer = Producer({**k.confluent_config(), **PRODUCER_DEFAULTS, "queue.buffering.max.messages": 2_000_000})
    try:
        procs.start("worker", ["worker", "--agents", "predict,route", "--loglevel", "info", "--policy", cfg.policy,
                               "--predictor", predictor])
        procs.wait_for_log("worker", "[^Worker]: Ready", 240)
        _provision(producer, k, time.time() - 1)
        warm = _send(producer, k, 10**7, 200, None, prompts)  # warm-up (imports, first batches), not measured
        _route_times(k, len(warm), 120)
        # latency first, so that nothing of the burst below is still queued while it is measured
        m = int(rate * seconds)
        sent2 = _send(producer, k, n, m, rate, prompts)
        routed2 = _route_times(k, len(warm) + m, 300)
        lat = np.array([routed2[r] - t for r, t in sent2.items() if r in routed2]) * 1000.0
        sent = _send(producer, k, 0, n, None, prompts)
        routed = _route_times(k, len(warm) + m + n, 600)
        ok = [rid for rid in sent if rid in routed]
        first = min(sent.values())
        thr = {"requests": n, "routed": len(ok), "requests_per_s": len(ok) / (max(routed[r] for r in ok) - first)}
        sources = topic_counts(k, ["predicted-requests"])
        return {"predictor": predictor, "policy": policy, "throughput": thr,
                "latency_ms": {"rate_per_s": rate, "requests": m, "routed": int(lat.size),
                               "p50": float(np.percentile(lat, 50)), "p99": float(np.percentile(lat, 99)),
                               "max": float(lat.max())},
                "predicted_requests": sources["predicted-requests"], "prompts": bool(prompts),
                "predictor_source": _sources(k, sources["predicted-requests"])}
    finally:
        procs.stop_all()


def _sources(k: KafkaSettings, total: int) -> dict[str, int]:
    """How many predicted requests each predictor answered (the model falls back, flagged, when too slow)."""
    c = Consumer({**k.confluent_config(), "group.id": f"bench-src-{time.time_ns()}", "auto.offset.reset": "earliest"})
    c.subscribe([k.topic("predicted-requests")])
    counts: dict[str, int] = {}
    seen, idle = 0, 0
    try:
        while seen < total and idle < 10:
            msgs = c.consume(10_000, timeout=0.5)
            idle = 0 if msgs else idle + 1
            for m in msgs:
                if not m.error() and m.value() is not None:
                    src = str(json.loads(m.value() or b"{}").get("predictor", "unknown"))
                    counts[src] = counts.get(src, 0) + 1
                    seen += 1
        return counts
    finally:
        c.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=20_000, help="requests of the throughput phase")
    ap.add_argument("--rate", type=float, default=500.0, help="requests/s of the latency phase")
    ap.add_argument("--seconds", type=float, default=10.0, help="length of the latency phase")
    ap.add_argument("--predictors", default="fallback,model(device=cpu)", help="comma-separated predictor specs")
    ap.add_argument("--policies", default="least-requests:fixed(n=8),preserve:fixed(n=8)",
                    help="comma-separated router:scaler specs (the router is on the measured path)")
    ap.add_argument("--prompts", type=Path, default=None,
                    help="JSON lines with a `prompt` field (e.g. $PRESERVE_DATA/prompts/sharegpt_pairs.jsonl.gz): "
                         "requests carry real prompt texts, so the model predictor runs (without: it falls back)")
    ap.add_argument("--json", type=Path, default=None, help="write the results here")
    args = ap.parse_args()
    kafka = load_settings().kafka
    prompts = load_prompts(args.prompts) if args.prompts else None
    broker = None
    if not kafka_reachable(kafka):
        broker = _bench_broker(Path(tempfile.mkdtemp(prefix="bench-kafka-")))
        kafka = kafka.model_copy(update={"bootstrap_servers": broker.bootstrap})
    try:
        run_dir = Path(tempfile.mkdtemp(prefix="bench-pipeline-"))
        machine: dict[str, Any] = {"cpus": os.cpu_count(), "platform": platform.platform(),
                                   "load_avg_at_start": os.getloadavg()}
        pipeline: list[dict[str, Any]] = []
        results: dict[str, Any] = {"machine": machine, "raw_kafka": raw_ceiling(kafka, 200_000), "pipeline": pipeline}
        print(f"raw confluent-kafka: {results['raw_kafka']}", flush=True)
        for spec in _split(args.predictors):
            for policy in _split(args.policies):
                r = bench_predictor(kafka, spec, policy, args.n, args.rate, args.seconds, run_dir, prompts)
                pipeline.append(r)
                print(json.dumps(r), flush=True)
        machine["load_avg_at_end"] = os.getloadavg()
        if args.json:
            args.json.write_text(json.dumps(results, indent=2) + "\n")
    finally:
        if broker is not None:
            broker.stop()


def _bench_broker(home: Path) -> KafkaBroker:
    """The broker a new user's run starts when none is reachable: the deployment JVM flags (G1 with 20 ms pause
    target, full JIT, 512 MiB), not the test brokers' (C1-only JIT + serial GC, 384 MiB: quick to start, slower
    and with stop-the-world collections, which infra/README.md says never to benchmark on; this benchmark used them
    until now)."""
    port = free_port()
    broker = KafkaBroker(BrokerConfig(data_dir=home, port=port, controller_port=free_port(avoid={port}),
                                      heap_mb=512, quick_jit=False, die_with_parent=True))
    broker.start()
    return broker


def _split(text: str) -> list[str]:
    """Split specs on commas outside parentheses."""
    out, depth, cur = [], 0, ""
    for ch in text:
        depth += (ch == "(") - (ch == ")")
        if ch == "," and depth == 0:
            out.append(cur.strip())
            cur = ""
        else:
            cur += ch
    return [s for s in [*out, cur.strip()] if s]


if __name__ == "__main__":
    main()
