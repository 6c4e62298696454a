"""The process actuator against REAL llama.cpp server processes (the project's tiny random-weight Llama).

Skipped, with the reason, when the server is not built (``bash scripts/setup_engine.sh``). Each test starts a
few engines of ~0.2 s cold start on one thread each; the whole file takes well under a minute on 2 cores.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from fleet.live.instance_manager import FleetManager
from fleet.live.openai_engine import OpenAIEngineConfig
from fleet.live.process_actuator import ProcessActuator, ProcessEngineSpec
from fleet.live.process_engine import ProcessEngineFactory
from fleet.live.process_lifecycle import LifecycleTimeouts, Phase
from infra.process_control import free_port, pid_alive
from streams.records import (
    Completion,
    EventRecord,
    InstanceEvent,
    InstanceEventKind,
    RouteDecision,
    ScaleCommand,
)

pytestmark = [pytest.mark.engine, pytest.mark.slow, pytest.mark.timeout(180)]
SVC = "svc"


@pytest.fixture(scope="module")
def llama() -> tuple[str, str]:
    from fleet.live.llama_cpp.locate import EngineNotBuilt, llama_server_command, tiny_model

    try:
        return llama_server_command(parallel=2), str(tiny_model())
    except EngineNotBuilt as e:
        pytest.skip(f"no llama.cpp server here: {e}")


def make_factory(cmd: str, model: str, run_dir: Path, devices: tuple[str, ...] = ("a", "b", "c"),
                 timeouts: LifecycleTimeouts | None = None) -> ProcessEngineFactory:
    spec = ProcessEngineSpec(cmd, model, run_dir, devices, timeouts=timeouts or LifecycleTimeouts(30.0, 30.0, 3.0))
    return ProcessEngineFactory({"*": spec}, OpenAIEngineConfig("http://unused", model, flavor="llama-cpp"))


@pytest.fixture
def manager_factory(llama: tuple[str, str], tmp_path: Path) -> Iterator[tuple[FleetManager, ProcessEngineFactory]]:
    factory = make_factory(*llama, tmp_path)
    mgr = FleetManager(factory, prewarm_first=False)
    yield mgr, factory
    mgr.shutdown()
    assert not any(pid_alive(p) for p in _pids(factory)), "an engine outlived the manager"


def _pids(factory: ProcessEngineFactory) -> list[int]:
    return [p.popen.pid for a in factory.actuators.values() for p in a.procs.values()]


def scale(target: int) -> ScaleCommand:
    return ScaleCommand(ts=time.time(), service=SVC, target_instances=target, current_instances=0, policy="p",
                        reason="test")


def route(rid: str, inst: str, out: int) -> RouteDecision:
    now = time.time()
    return RouteDecision(ts=now, request_id=rid, service=SVC, instance_id=inst, prompt_tokens=8,
                         predicted_tokens=out, output_tokens=out, arrival_ts=now, policy="p")


def run_until(mgr: FleetManager, done: object, timeout_s: float = 60.0) -> list[EventRecord]:
    """Advance in wall time until ``done(records so far)`` holds."""
    recs: list[EventRecord] = []
    deadline = time.time() + timeout_s
    while not done(recs):  # type: ignore[operator]
        assert time.time() < deadline, f"timed out; records: {[type(r).__name__ for r in recs]}"
        recs += mgr.advance(time.time())
        time.sleep(0.02)
    return recs


def events(recs: list[EventRecord], kind: InstanceEventKind) -> list[InstanceEvent]:
    return [r for r in recs if isinstance(r, InstanceEvent) and r.kind is kind]


def completions(recs: list[EventRecord]) -> list[Completion]:
    return [r for r in recs if isinstance(r, Completion)]


def test_start_ready_serve_drain_stop(manager_factory: tuple[FleetManager, ProcessEngineFactory]) -> None:
    mgr, factory = manager_factory
    mgr.offer(scale(1))
    recs = run_until(mgr, lambda r: events(r, InstanceEventKind.READY))
    inst = events(recs, InstanceEventKind.READY)[0].instance_id
    (proc,) = factory.actuators[SVC].procs.values()
    assert proc.lifecycle.cold_start_s is not None and 0 < proc.lifecycle.cold_start_s < 30
    for i in range(3):
        mgr.offer(route(f"r{i}", inst, 24))
    recs = run_until(mgr, lambda r: len(completions(r)) == 3)
    for c in completions(recs):  # exact forced lengths, real timings
        assert c.output_tokens == 24 and c.instance_id == inst and 0 < c.ttft_s <= c.e2e_s
    mgr.offer(scale(0))
    recs = run_until(mgr, lambda r: events(r, InstanceEventKind.STOPPED))
    assert events(recs, InstanceEventKind.DRAIN)
    run_until(mgr, lambda r: not factory.actuators[SVC].procs, 15.0)  # SIGTERM after the drain: it exits
    assert not pid_alive(proc.popen.pid)
    rep = factory.report()
    assert rep["engine_processes_started"] == rep["engine_processes_stopped"] == 1
    assert rep["engine_stop_reasons"] == [f"{inst}: drained"] and rep["engine_instance_hours"] > 0
    assert (proc.log_path.read_text().count("\n") > 5) and not (factory.actuators[SVC].spec.run_dir / "pids" /
                                                                f"{inst}.json").exists()


def test_kill_9_mid_request_reroutes_and_replaces(manager_factory: tuple[FleetManager, ProcessEngineFactory]) -> None:
    mgr, factory = manager_factory
    mgr.offer(scale(2))
    recs = run_until(mgr, lambda r: len(events(r, InstanceEventKind.READY)) == 2)
    a, b = (e.instance_id for e in events(recs, InstanceEventKind.READY))
    mgr.offer(route("long", a, 600))
    recs = run_until(mgr, lambda r: factory.engines[a].in_flight() == 1, 10.0)
    time.sleep(0.3)  # it is decoding now
    os.kill(factory.actuators[SVC].procs[a].popen.pid, signal.SIGKILL)
    recs = run_until(mgr, lambda r: completions(r), 120.0)
    (c,) = completions(recs)
    assert c.request_id == "long" and c.instance_id == b and c.output_tokens == 600  # re-run whole elsewhere
    assert [e.instance_id for e in events(recs, InstanceEventKind.STOPPED)] == [a]
    assert mgr.counters.engine_failures == 1 and mgr.counters.rerouted == 1 and mgr.counters.failed == 0
    assert mgr.counters.replacements == 1 and len(events(recs, InstanceEventKind.START_REQUESTED)) == 1
    assert any("died (exit code -9)" in r for r in factory.report()["engine_stop_reasons"])


def test_a_hung_engine_is_detected_and_treated_as_dead(llama: tuple[str, str], tmp_path: Path) -> None:
    """Alive but silent (SIGSTOP: the process exists, answers nothing): its health endpoint stays silent past
    the hang timeout, so it is stopped (SIGTERM, then SIGKILL), its request re-run elsewhere, a replacement
    started -- as for an engine that died (issue 19)."""
    factory = make_factory(*llama, tmp_path, timeouts=LifecycleTimeouts(30.0, 30.0, 1.0, hang_timeout_s=2.0))
    factory.specs["*"] = replace(factory.specs["*"], health_every_s=0.3)
    mgr = FleetManager(factory, prewarm_first=False)
    try:
        mgr.offer(scale(2))
        recs = run_until(mgr, lambda r: len(events(r, InstanceEventKind.READY)) == 2)
        a, b = (e.instance_id for e in events(recs, InstanceEventKind.READY))
        mgr.offer(route("stuck", a, 600))
        run_until(mgr, lambda r: factory.engines[a].in_flight() == 1, 10.0)
        pid = factory.actuators[SVC].procs[a].popen.pid
        os.kill(pid, signal.SIGSTOP)
        t0 = time.time()
        recs = run_until(mgr, lambda r: completions(r), 120.0)
        (c,) = completions(recs)
        assert c.request_id == "stuck" and c.instance_id == b and c.rerouted_from == a
        assert [e.instance_id for e in events(recs, InstanceEventKind.STOPPED)][:1] == [a]
        assert mgr.counters.engine_failures == 1 and mgr.counters.replacements == 1
        run_until(mgr, lambda r: not pid_alive(pid), 15.0)  # SIGKILL after the grace: a stopped process dies
        rep = factory.report()
        assert rep["engine_processes_hung"] == 1 and any("hung" in r for r in rep["engine_stop_reasons"])
        assert time.time() - t0 < 60
    finally:
        mgr.shutdown()
    assert not any(pid_alive(p) for p in _pids(factory))


def test_engine_that_never_becomes_ready(llama: tuple[str, str], tmp_path: Path) -> None:
    fifo = tmp_path / "never.gguf"
    os.mkfifo(fifo)  # llama-server serves /health (503 "loading") while it blocks reading the model forever
    factory = make_factory(llama[0], str(fifo), tmp_path / "run", timeouts=LifecycleTimeouts(3.0, 30.0, 2.0))
    mgr = FleetManager(factory, prewarm_first=False)
    mgr.fleet(SVC).replace_backoff_s = 3600.0
    try:
        mgr.offer(scale(1))
        recs = run_until(mgr, lambda r: events(r, InstanceEventKind.START_REQUESTED))
        inst = events(recs, InstanceEventKind.START_REQUESTED)[0].instance_id
        mgr.offer(route("r0", inst, 8))
        recs = run_until(mgr, lambda r: events(r, InstanceEventKind.STOPPED), 30.0)
        assert not events(recs, InstanceEventKind.READY) and not completions(recs)
        lc = factory.actuators[SVC].lifecycle(inst)
        assert lc is not None and lc.reason == "not ready after 3 s" and lc.ready_at is None
        run_until(mgr, lambda r: lc.phase is Phase.EXITED, 15.0)
        assert inst not in factory.engines  # nothing was ever sent to it
        assert mgr.counters.engine_failures == 1 and list(mgr.fleet(SVC).orphans)[0].request_id == "r0"
    finally:
        mgr.shutdown()
    assert factory.report()["engine_processes_running"] == 0


_MANAGER = """
import sys, time
from pathlib import Path
from fleet.live.process_actuator import ProcessActuator, ProcessEngineSpec
act = ProcessActuator(ProcessEngineSpec(sys.argv[1], sys.argv[2], Path(sys.argv[3]), ("a", "b")))
procs = [act.start("svc-0"), act.start("svc-1")]
while any(p.lifecycle.ready_at is None for p in procs):
    act.poll(lambda _i: 0)
    time.sleep(0.05)
print(" ".join(str(p.popen.pid) for p in procs), flush=True)
time.sleep(600)
"""


def test_manager_killed_leaves_no_orphans_and_a_restart_cleans_up(llama: tuple[str, str], tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[3])}
    mgr = subprocess.Popen([sys.executable, "-c", _MANAGER, llama[0], llama[1], str(tmp_path)], env=env,
                           stdout=subprocess.PIPE, text=True)
    assert mgr.stdout is not None
    pids = [int(p) for p in mgr.stdout.readline().split()]
    assert len(pids) == 2 and all(pid_alive(p) for p in pids)
    mgr.send_signal(signal.SIGKILL)
    mgr.wait(10)
    deadline = time.time() + 10
    while any(pid_alive(p) for p in pids) and time.time() < deadline:
        time.sleep(0.05)
    assert not any(pid_alive(p) for p in pids), "engines outlived a kill -9 of their manager"

    # An engine whose manager could not take it along (started outside PR_SET_PDEATHSIG): the restarted
    # manager finds its record and stops it before starting anything.
    stray = subprocess.Popen(ProcessEngineSpec(llama[0], llama[1], tmp_path).argv("a", free_port()), start_new_session=True,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    from fleet.live.process_actuator import _start_ticks  # the record a manager writes

    time.sleep(0.2)
    (tmp_path / "pids" / "svc-9.json").write_text(json.dumps(
        {"instance_id": "svc-9", "pid": stray.pid, "start_ticks": _start_ticks(stray.pid)}))
    act = ProcessActuator(ProcessEngineSpec(llama[0], llama[1], tmp_path))
    assert act.reaped == [stray.pid]
    stray.wait(5)
    assert not list((tmp_path / "pids").glob("*.json"))
