"""kill -9 of the control worker while requests are *pending* (their service has no READY instance yet).

The route agent holds a pending request's input message un-acked until the request is routed
(streams/stages/control.py), so its offset is not committed and Kafka redelivers it to the restarted worker.
Here no instance manager runs at first, so every request is pending; the worker is killed after its commit
cycle has committed everything else it read; the fleet starts only after the restart, and then every request
must be routed and completed exactly once. Before the fix the requests' offsets were committed and all of them
were lost.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from fleet.live.demo_run import CONTROL_AGENTS
from fleet.live.pipeline_procs import group_lag, topic_counts
from replay.producer import request_payloads
from streams.pipeline_config import AGENTS, PipelineConfig
from tests.reliability.live import FAST_FAILOVER, live_run, produce, records, trace, wait_until
from tests.reliability.recovery import first_routes, recovery

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

SERVICES = ["svc-a", "svc-b", "svc-c", "svc-d"]
N = 40
SPEEDUP = 20.0
CONTROL_GROUP = "preserve-" + "-".join(a for a in AGENTS if a in CONTROL_AGENTS.split(","))
COMMIT_INTERVAL_S = 2.8  # Faust's default broker_commit_interval


def test_kill9_while_requests_are_pending_loses_none(kafka_broker: str, tmp_path: Path) -> None:
    cfg = PipelineConfig(policy="preserve:preserve", predictor="fallback", instances=2, cold_start_s=10.0)
    df = trace(N, SERVICES, gap_s=0.1)
    ids = list(df["request_id"])
    with live_run(kafka_broker, tmp_path / "run", cfg, fleet=False, speedup=SPEEDUP, extra_env=FAST_FAILOVER) as run:
        produce(run.kafka, "requests", [(svc.encode(), v) for _, svc, v in request_payloads(df, time.time())])
        # predict has read, published and committed every request: the commit cycle has run past them
        wait_until(lambda: topic_counts(run.kafka, ["predicted-requests"])["predicted-requests"] == N
                   and group_lag(run.kafka, CONTROL_GROUP, ["requests"]) == 0, 60.0, run, "requests predicted")
        time.sleep(COMMIT_INTERVAL_S + 1.0)  # one more commit cycle, in which route's acks would be committed
        held = group_lag(run.kafka, CONTROL_GROUP, ["predicted-requests"])
        print(f"\npending kill -9: {held} of {N} predicted requests uncommitted at the kill")
        assert held == N  # every pending request's offset is held back (before the fix: 0)
        assert first_routes(run.kafka)[1] == 0  # no instance: nothing routed yet
        run.kill9("worker-0")
        run.procs.procs.pop("worker-0")
        run.start_worker("worker-0-restarted")
        run.procs.start("fleet", ["fleet", "--speedup", str(SPEEDUP), "--lag-s", "0.5", "--engine", cfg.engine,
                                  "--quiet", "--cold-start-s", str(cfg.cold_start_s)])

        def done() -> bool:
            routed = set(first_routes(run.kafka)[0])
            return set(ids) <= routed and set(ids) <= {r["request_id"] for r in records(run.kafka, "completions")}

        wait_until(done, 180.0, run, "every pending request routed and completed", every_s=2.0)
        time.sleep(2.0)  # late duplicates, if any, arrive now
        rec = recovery(run.kafka, ids, window_s=60.0, grace_s=30.0)
        dead = records(run.kafka, "dead-letter")
    print(f"recovery: {rec.line()}")
    assert rec.lost == 0 and rec.duplicates_acted_on == 0 and rec.wrong_instance == 0
    assert rec.route_messages == N  # routed once each: only the restarted worker routed them
    assert dead == []
