"""Consumer-group scale-out under load: 4 control workers share 12 partitions (12 services); mid-replay a fifth
worker joins, and later one of the first four is killed with -9. Every request is routed and completed exactly
once (0 lost, 0 duplicate decisions acted on), and the routing pause of each rebalance is measured.

The pause is measured in wall time from Kafka's own timestamps: a request's CreateTime (the gateway's send) to
its first RouteDecision's CreateTime (the route agent's publish). Around each event the test reports the p99 and
the maximum of that latency over the requests sent in the window, beside the p99 before any event.

What each agent restores, and from where, when its partitions move: the route, density, forecast and scale agents
rebuild their per-service state from redelivery (Kafka re-sends every message after the partition's committed
offset; the route agent's pending requests were never acked, so they are redelivered too) and the instance events
of the fleet they read; the tables of the workers (Faust changelog topics) are recovered from their changelogs.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from confluent_kafka import Consumer, TopicPartition

from streams.pipeline_config import PipelineConfig
from streams.settings import KafkaSettings
from tests.reliability.live import FAST_FAILOVER, Replayer, live_run, records, trace, wait_until
from tests.reliability.recovery import first_routes, recovery

pytestmark = [pytest.mark.integration, pytest.mark.cluster, pytest.mark.timeout(600)]

SERVICES = [f"svc-{i:02d}" for i in range(12)]
PARTITIONS = 12
WORKERS = 4
SPEEDUP = 1.0
WINDOW_S = 15.0  # seconds after an event whose requests count toward its pause (a -9 waits out the session: 10 s)


def _timed(kafka: KafkaSettings, name: str) -> list[tuple[dict, float]]:
    """(record, CreateTime in s) of every message of ``name``."""
    c = Consumer({**kafka.confluent_config(), "group.id": f"timed-{time.time_ns()}", "enable.auto.commit": False})
    topic = kafka.topic(name)
    out: list[tuple[dict, float]] = []
    try:
        parts = list(c.list_topics(topic, timeout=10).topics[topic].partitions)
        ends, assign = {}, []
        for p in parts:
            lo, hi = c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            if hi > lo:
                ends[p] = hi
                assign.append(TopicPartition(topic, p, lo))
        c.assign(assign)
        deadline = time.time() + 60
        while ends and time.time() < deadline:
            for m in c.consume(1000, timeout=0.5):
                if m.error() or m.offset() is None:
                    continue
                if m.value() is not None:
                    out.append((json.loads(m.value()), m.timestamp()[1] / 1000.0))
                if m.offset() + 1 >= ends.get(m.partition(), 0):
                    ends.pop(m.partition(), None)
    finally:
        c.close()
    return out


def _holds_partitions(log: str) -> bool:
    """The worker's last assignment (Faust's "Setting newly assigned partitions" line) is not empty."""
    marker = "Setting newly assigned partitions"
    last = log.rfind(marker)
    return last >= 0 and not log[last + len(marker):].lstrip().startswith("set()")


@dataclass(frozen=True)
class Pause:
    event: str
    start: float  # s after the replay's first request
    end: float
    requests: int
    p99_ms: float
    max_ms: float

    def line(self) -> str:
        return (f"{self.event} [{self.start:.1f} s, {self.end:.1f} s]: {self.requests} requests sent, decision "
                f"latency p99 {self.p99_ms:.0f} ms, max {self.max_ms:.0f} ms")


def _pauses(kafka: KafkaSettings, windows: list[tuple[str, float, float]]) -> tuple[float, list[Pause]]:
    """p99 before the first window, and p99/max of the requests sent inside each (wall-clock) window."""
    sent = {r["request_id"]: t for r, t in _timed(kafka, "requests")}
    routed: dict[str, float] = {}
    for r, t in _timed(kafka, "routes"):
        routed.setdefault(r["request_id"], t)  # the first decision is the one acted on
    lat = sorted((sent[i], routed[i] - sent[i]) for i in sent if i in routed)
    t0 = lat[0][0]
    first = min(a for _, a, _ in windows)
    before = [d for t, d in lat if t < first]
    base = float(np.percentile(before, 99)) * 1000 if before else float("nan")
    out = []
    for name, a, b in windows:
        win = [d for t, d in lat if a <= t <= b]
        out.append(Pause(name, a - t0, b - t0, len(win), float(np.percentile(win, 99)) * 1000 if win else
                         float("nan"), max(win, default=float("nan")) * 1000))
    return base, out


@pytest.mark.xfail(strict=False, reason="open bug (issue 20): a request sent while a killed worker's partitions move "
                   "to a worker whose first assignment was empty is acknowledged by the new owner's predict "
                   "stream without being handled (3 of 9 runs); the failure message names each lost request")
def test_a_worker_joins_and_another_is_killed_mid_replay(kafka_broker: str, tmp_path: Path) -> None:
    df = trace(2000, SERVICES, gap_s=0.04)  # 25 requests/s for 80 s
    ids = list(df["request_id"])
    cfg = PipelineConfig(policy="least-requests:fixed", predictor="fallback", instances=1, cold_start_s=5.0)
    windows: list[tuple[str, float, float]] = []
    with live_run(kafka_broker, tmp_path / "run", cfg, workers=WORKERS, speedup=SPEEDUP, extra_env=FAST_FAILOVER,
                  partitions=PARTITIONS) as run:
        rep = Replayer(run.kafka, df, SPEEDUP)
        rep.start()
        wait_until(lambda: rep.sent >= 150, 60.0, run, "replay under way", every_s=0.1)
        t_start = time.time()
        run.start_worker("worker-4")  # returns once it is ready: it joined, got partitions and recovered
        # Faust's assignor is sticky with at most ceil(12/5) = 3 partitions per member, and the four hold 3 each:
        # the fifth joins (a rebalance: every member revokes and gets its partitions back) and stays idle, a warm
        # standby that takes over the killed member's partitions below.
        idle_after_join = not _holds_partitions(run.procs.tail("worker-4", 400))
        t_ready = time.time()
        windows.append(("worker-4 added (process start to ready + 3 s)", t_start, t_ready + 3.0))
        time.sleep(8.0)  # back to steady state
        assert rep.is_alive(), "the replay ended before the kill: lengthen it"
        run.kill9("worker-1")
        t_kill = time.time()
        run.procs.procs.pop("worker-1")
        windows.append((f"worker-1 kill -9 (+{WINDOW_S:.0f} s)", t_kill, t_kill + WINDOW_S))
        rep.join(180)
        assert rep.error is None and rep.failed == 0 and rep.sent == len(df)
        want = set(ids)

        def done() -> bool:
            routed = set(first_routes(run.kafka)[0])
            completed = {r["request_id"] for r in records(run.kafka, "completions")}
            return want <= routed and want <= completed

        try:
            wait_until(done, 240.0, run, "every request routed and completed", every_s=2.0)
        except TimeoutError as e:
            routed = set(first_routes(run.kafka)[0])
            completed = {r["request_id"] for r in records(run.kafka, "completions")}
            svc = dict(zip(df["request_id"], df["service"], strict=True))
            unrouted = Counter(svc[i] for i in want - routed)
            uncompleted = Counter(svc[i] for i in want - completed)
            predicted = {r["request_id"] for r in records(run.kafka, "predicted-requests")}
            sent_at = {r["request_id"]: t for r, t in _timed(run.kafka, "requests")}
            t0 = min(sent_at.values())
            marks = ", ".join(f"{name.split(' ')[0]} {name.split(' ')[1]} at {a - t0:.1f} s" for name, a, _ in windows)
            lost = sorted(want - routed, key=lambda i: sent_at.get(i, 0.0))
            detail = [f"{i} ({svc[i]}, sent at {sent_at.get(i, t0) - t0:.1f} s, predicted: {i in predicted})"
                      for i in lost[:20]]
            raise AssertionError(f"unrouted by service {dict(unrouted)}; routed, not completed by service "
                                 f"{dict(uncompleted - unrouted)}; events: {marks}; unrouted: {detail}") from e
        time.sleep(3.0)
        rec = recovery(run.kafka, ids, 60.0, 5.0)
        took_over = _holds_partitions(run.procs.tail("worker-4", 400))
        base, pauses = _pauses(run.kafka, windows)
    print(f"\nrebalance under load ({WORKERS} workers, {PARTITIONS} partitions, {len(SERVICES)} services, "
          f"{len(df)} requests): before any event p99 {base:.0f} ms")
    for p in pauses:
        print("  " + p.line())
    print(f"recovery: {rec.line()}; worker-4 idle after joining: {idle_after_join}, "
          f"holds partitions after the kill: {took_over}")
    assert rec.lost == 0 and rec.duplicates_acted_on == 0 and rec.wrong_instance == 0
    assert all(p.requests > 0 for p in pauses)
