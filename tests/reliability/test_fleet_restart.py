"""`preserve fleet` stopped mid-replay and restarted, gracefully (SIGTERM) and not (kill -9), on the real broker:
every request completes exactly once, or fails once with its reason (issue 21 item 2, issue 19's restart). The
restarted manager takes its services over from the log (``fleet/live/fleet_recovery.py``)."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import pytest

from streams.pipeline_config import PipelineConfig
from tests.reliability.live import FAST_FAILOVER, LiveRun, Replayer, live_run, records, trace, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(420)]

SERVICES = ["svc-a", "svc-b", "svc-c"]
SPEEDUP = 4.0


def _fleet_args(cfg: PipelineConfig) -> list[str]:
    return ["fleet", "--speedup", str(SPEEDUP), "--lag-s", "0.5", "--engine", cfg.engine, "--quiet",
            "--cold-start-s", str(cfg.cold_start_s)]


def _wait_sent(rep: Replayer, n: int) -> None:
    deadline = time.monotonic() + 60
    while rep.sent < n:
        assert rep.error is None and time.monotonic() < deadline, f"replay stalled at {rep.sent}: {rep.error}"
        time.sleep(0.05)


def _outcome(run: LiveRun) -> tuple[Counter[str], dict[str, str]]:
    done = Counter(r["request_id"] for r in records(run.kafka, "completions"))
    failed = {r["key"]: r["reason"] for r in records(run.kafka, "dead-letter")
              if r["source_topic"] == "routes" and r.get("offset") is None}
    return done, failed


def test_sigterm_and_kill9_of_the_fleet_mid_replay_then_restart_every_request_completes_or_fails_once(
        kafka_broker: str, tmp_path: Path) -> None:
    cfg = PipelineConfig(policy="preserve:preserve", predictor="fallback", instances=2, density_window_s=20.0,
                         density_grace_s=5.0, cold_start_s=10.0)
    df = trace(480, SERVICES, gap_s=0.25)  # 120 trace s: 30 wall s at speedup 4
    ids = set(df["request_id"])
    with live_run(kafka_broker, tmp_path / "run", cfg, speedup=SPEEDUP, extra_env=FAST_FAILOVER) as run:
        rep = Replayer(run.kafka, df, SPEEDUP)
        rep.start()
        _wait_sent(rep, 120)
        assert run.procs.stop("fleet", 20.0) is not None  # SIGTERM mid-replay
        run.procs.procs.pop("fleet")
        run.procs.start("fleet-2", _fleet_args(cfg))
        _wait_sent(rep, 300)
        run.kill9("fleet-2")  # kill -9 mid-replay: no flush, no commit
        run.procs.procs.pop("fleet-2")
        run.procs.start("fleet-3", _fleet_args(cfg))
        rep.join(120)
        assert rep.error is None and rep.failed == 0 and rep.sent == len(df)

        def settled() -> bool:
            done, failed = _outcome(run)
            return ids <= set(done) | set(failed)

        wait_until(settled, 150.0, run, "every request completed or failed", every_s=2.0)
        time.sleep(3.0)  # duplicates, if any, arrive now
        done, failed = _outcome(run)
        log = (tmp_path / "run" / "fleet-3.log").read_text(errors="replace")
    doubled = {rid: n for rid, n in done.items() if n > 1}
    assert not doubled, f"completed twice: {sorted(doubled)[:10]}"
    assert set(done) | set(failed) >= ids and not set(done) & set(failed)
    assert all(reason for reason in failed.values())
    assert "took over partitions" in log  # the restarted manager recovered from the log
    print(f"\nfleet restarts: {len(done)} completed once, {len(failed)} failed once with a reason")


def test_a_second_fleet_joining_and_leaving_mid_replay_moves_services_without_losing_or_doubling(
        kafka_broker: str, tmp_path: Path) -> None:
    """A live rebalance between running managers: a second `preserve fleet` joins mid-replay (the group splits
    the partitions: each side hands over or takes over services from the log), then leaves (SIGTERM: its
    services move back). Every request completes exactly once."""
    cfg = PipelineConfig(policy="preserve:preserve", predictor="fallback", instances=2, density_window_s=20.0,
                         density_grace_s=5.0, cold_start_s=10.0)
    services = ["svc-a", "svc-b", "svc-c", "svc-d", "svc-e", "svc-f"]  # over the 4 partitions: both sides get some
    df = trace(480, services, gap_s=0.25)
    ids = set(df["request_id"])
    with live_run(kafka_broker, tmp_path / "run", cfg, speedup=SPEEDUP, extra_env=FAST_FAILOVER) as run:
        rep = Replayer(run.kafka, df, SPEEDUP)
        rep.start()
        _wait_sent(rep, 120)
        run.procs.start("fleet-2", _fleet_args(cfg))
        _wait_sent(rep, 330)
        assert run.procs.stop("fleet-2", 20.0) is not None
        run.procs.procs.pop("fleet-2")
        rep.join(120)
        assert rep.error is None and rep.failed == 0 and rep.sent == len(df)

        def settled() -> bool:
            done, failed = _outcome(run)
            return ids <= set(done) | set(failed)

        wait_until(settled, 150.0, run, "every request completed or failed", every_s=2.0)
        time.sleep(3.0)
        done, failed = _outcome(run)
        logs = {n: (tmp_path / "run" / f"{n}.log").read_text(errors="replace") for n in ("fleet", "fleet-2")}
    doubled = {rid: n for rid, n in done.items() if n > 1}
    assert not doubled, f"completed twice: {sorted(doubled)[:10]}"
    assert set(done) | set(failed) >= ids and not set(done) & set(failed)
    assert "moved to another manager" in logs["fleet"] and "took over partitions" in logs["fleet-2"]
    print(f"\nfleet rebalance: {len(done)} completed once, {len(failed)} failed once with a reason")
