"""Process and broker faults mid-replay: kill -9 a control worker and restart it; stop and restart the Kafka
broker. After recovery no request is lost, none is served twice, each completes on the instance of its first
RouteDecision, and the density windows equal the offline function (see ``recovery.py`` for the guarantee).

The kill -9 run also serves the model-fault check end to end: its worker is given a predictor checkpoint that
does not exist, so every PredictedRequest must be flagged ``fallback`` and routing must go on.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from fleet.live.pipeline_procs import read_topic
from streams.pipeline_config import PipelineConfig
from streams.records import PredictedRequest
from tests.fixtures.kafka import start_test_broker
from tests.reliability.live import FAST_FAILOVER, LiveRun, Replayer, live_run, records, trace, wait_until
from tests.reliability.recovery import Recovery, first_routes, recovery

pytestmark = [pytest.mark.integration, pytest.mark.timeout(480)]

SERVICES = ["svc-a", "svc-b", "svc-c", "svc-d"]
SPEEDUP = 5.0
WINDOW_S, GRACE_S = 20.0, 5.0


def _cfg(predictor: str = "fallback") -> PipelineConfig:
    return PipelineConfig(policy="preserve:preserve", predictor=predictor, instances=2, density_window_s=WINDOW_S,
                          density_grace_s=GRACE_S, cold_start_s=10.0)


def _wait_sent(rep: Replayer, n: int, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while rep.sent < n:
        assert rep.error is None and time.monotonic() < deadline, f"replay stalled at {rep.sent}: {rep.error}"
        time.sleep(0.05)


def _drain(run: LiveRun, ids: list[str], timeout_s: float) -> None:
    want = set(ids)

    def done() -> bool:
        routed = set(first_routes(run.kafka)[0])
        completed = {r["request_id"] for r in records(run.kafka, "completions")}
        return want <= routed and want <= completed

    wait_until(done, timeout_s, run, "every request routed and completed", every_s=2.0)
    time.sleep(3.0)  # late duplicates, if any, arrive now


def _assert_nothing_lost_or_doubled(rec: Recovery) -> None:
    print(f"\nrecovery: {rec.line()}")  # the figures quoted in docs/reliability.md (pytest -s)
    assert rec.lost == 0
    assert rec.duplicates_acted_on == 0
    assert rec.wrong_instance == 0


@dataclass
class Kill9:
    rec: Recovery
    preds: list[PredictedRequest]
    dead: list[dict]
    killed_at: int


@pytest.fixture(scope="module")
def kill9(kafka_broker: str, tmp_path_factory: pytest.TempPathFactory) -> Kill9:
    tmp = tmp_path_factory.mktemp("kill9")
    df = trace(500, SERVICES, gap_s=0.1)
    ids = list(df["request_id"])
    cfg = _cfg(predictor=f"model(path={tmp / 'no-checkpoint-here'})")
    with live_run(kafka_broker, tmp / "run", cfg, speedup=SPEEDUP, extra_env=FAST_FAILOVER) as run:
        rep = Replayer(run.kafka, df, SPEEDUP)
        rep.start()
        _wait_sent(rep, 300)  # routes, windows and fleet state well under way
        run.kill9("worker-0")
        killed_at = rep.sent
        run.procs.procs.pop("worker-0")
        run.start_worker("worker-0-restarted")
        rep.join(120)
        assert rep.error is None and rep.failed == 0 and rep.sent == len(df)
        _drain(run, ids, 240.0)
        rec = recovery(run.kafka, ids, WINDOW_S, GRACE_S)
        preds = [PredictedRequest.model_validate_json(v) for v in read_topic(run.kafka, "predicted-requests")]
        dead = records(run.kafka, "dead-letter")
    print(f"\nkill -9 after {killed_at} of {len(df)} requests sent")
    return Kill9(rec, preds, dead, killed_at)


def test_kill9_worker_mid_replay_loses_and_doubles_nothing(kill9: Kill9) -> None:
    _assert_nothing_lost_or_doubled(kill9.rec)
    assert kill9.dead == []


def test_kill9_run_with_a_missing_checkpoint_flags_every_prediction_fallback(kill9: Kill9) -> None:
    assert kill9.preds and {p.predictor for p in kill9.preds} == {"fallback"}
    assert kill9.rec.routed == kill9.rec.requests  # routing went on


def test_kill9_density_windows_equal_the_offline_function(kill9: Kill9) -> None:
    assert kill9.rec.density_windows > 0
    assert kill9.rec.density_mismatches == []


@pytest.fixture
def own_broker(tmp_path: Path):  # type: ignore[no-untyped-def]
    """A broker of this test alone: stopping the session's broker would disturb other tests' state."""
    broker = start_test_broker(tmp_path / "kafka")
    try:
        yield broker
    finally:
        broker.stop()


def test_broker_stop_and_restart_mid_replay(own_broker, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    df = trace(400, SERVICES, gap_s=0.1)
    ids = list(df["request_id"])
    with live_run(own_broker.bootstrap, tmp_path / "run", _cfg(), speedup=SPEEDUP) as run:
        rep = Replayer(run.kafka, df, SPEEDUP)
        rep.start()
        _wait_sent(rep, 120)
        t0 = time.monotonic()
        own_broker.stop()
        time.sleep(5.0)  # the broker is down: producers buffer, consumers retry
        own_broker.start()
        outage = time.monotonic() - t0
        rep.join(180)
        assert rep.error is None and rep.failed == 0 and rep.sent == len(df)
        _drain(run, ids, 240.0)
        rec = recovery(run.kafka, ids, WINDOW_S, GRACE_S)
    print(f"\nbroker down for {outage:.1f} s mid-replay")
    _assert_nothing_lost_or_doubled(rec)
    assert rec.density_windows > 0 and rec.density_mismatches == []
