"""The process edge of the actuator: spawns one serving engine per instance, probes its health, signals it.

Decisions (readiness and drain timeouts, when to SIGTERM or SIGKILL) are made by the pure
:class:`~fleet.live.process_lifecycle.EngineLifecycle`; this module only runs processes and HTTP probes.

- **Command template** per service: an argv string with ``{model}``, ``{port}``, ``{device}`` and ``{host}``
  placeholders (``vllm serve {model} --port {port}``, ``llama-server -m {model} --port {port} -t 1``).
- **Devices**: a pool (``CUDA_VISIBLE_DEVICES`` values or CPU slots), one per live process; with
  ``device_env`` set, the child gets that variable set to its device.
- **Ports and logs** per instance: a free port picked at spawn, stdout+stderr to ``<run_dir>/<instance>.log``.
- **No orphans**: children get ``PR_SET_PDEATHSIG=SIGKILL`` (they die with the manager, even on ``kill -9``),
  a record per live child in ``<run_dir>/pids/`` lets a restarted manager clean up what a previous one left
  (:func:`reap_stale`), and :meth:`ProcessActuator.shutdown` stops every child on a clean exit.

Why a restarted manager cleans up rather than adopts: the streams of the requests in flight died with the old
manager, and it held which request ran where; an adopted engine would serve nobody until re-routed, and its
cold start is seconds. The scale agent's next command starts fresh instances.
"""

from __future__ import annotations

import ctypes
import json
import logging
import os
import shlex
import signal
import subprocess
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from fleet.live.process_lifecycle import EngineLifecycle, LifecycleTimeouts, Phase, Signal
from infra.process_control import free_port, pid_alive

__all__ = ["ProcessEngineSpec", "EngineProcess", "ProcessActuator", "NoFreeDevice", "reap_stale", "kill_with_parent"]

log = logging.getLogger(__name__)
PLACEHOLDERS = ("model", "port", "device", "host")


class NoFreeDevice(RuntimeError):
    """Every device of the pool is held by a live process."""


@dataclass(frozen=True)
class ProcessEngineSpec:
    """How to run one service's engines.

    :param command: argv template (shell-style quoting, no shell): ``{model} {port} {device} {host}``.
    :param model: what ``{model}`` becomes (a path or a hub name).
    :param devices: the device pool; at most one live process per device.
    :param device_env: environment variable set to the device (e.g. ``CUDA_VISIBLE_DEVICES``); None: none.
    :param health_path: HTTP path that answers 200 once the engine serves (``/health`` for both vLLM and
        llama.cpp; llama.cpp answers 503 while it loads the model).
    :param run_dir: logs and pid records of the children.
    """

    command: str
    model: str
    run_dir: Path
    devices: tuple[str, ...] = ("0",)
    device_env: str | None = None
    host: str = "127.0.0.1"
    health_path: str = "/health"
    timeouts: LifecycleTimeouts = field(default_factory=LifecycleTimeouts)
    probe_every_s: float = 0.1
    health_every_s: float = 2.0  # liveness probes of a serving process (a hung one: see LifecycleTimeouts)
    env: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        if not self.devices:
            raise ValueError("the device pool is empty")
        try:
            self.argv("0", 1, "x")
        except (KeyError, IndexError, ValueError) as e:
            raise ValueError(f"bad command template {self.command!r}: placeholders are "
                             f"{', '.join('{' + p + '}' for p in PLACEHOLDERS)} ({e})") from None

    def argv(self, device: str, port: int, model: str | None = None) -> list[str]:
        values = {"model": model if model is not None else self.model, "port": port, "device": device,
                  "host": self.host}
        return [part.format(**values) for part in shlex.split(self.command)]


@dataclass
class EngineProcess:
    instance_id: str
    device: str
    port: int
    log_path: Path
    popen: subprocess.Popen[bytes]
    lifecycle: EngineLifecycle
    host: str = "127.0.0.1"
    next_probe: float = 0.0

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"


def _load_prctl() -> Callable[..., int] | None:
    try:
        return ctypes.CDLL("libc.so.6", use_errno=True).prctl  # type: ignore[no-any-return]
    except (OSError, AttributeError):
        return None


# Bound once in the parent: the child of a fork in a threaded manager must not import or dlopen anything.
_PRCTL = _load_prctl()


def kill_with_parent() -> None:
    """``preexec_fn``: Linux sends this child SIGKILL when the manager dies (no drain is possible then)."""
    if _PRCTL is not None:
        _PRCTL(1, signal.SIGKILL, 0, 0, 0)  # 1 = PR_SET_PDEATHSIG


def _start_ticks(pid: int) -> str:
    """The process's start time in clock ticks since boot (with the pid, it names one process: no pid reuse)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


def reap_stale(run_dir: Path, grace_s: float = 5.0) -> list[int]:
    """Stop the engines a previous manager left behind (per its pid records) and drop the records.

    :returns: the pids that were still running and got stopped."""
    pid_dir = run_dir / "pids"
    stopped: list[int] = []
    for rec_path in sorted(pid_dir.glob("*.json")) if pid_dir.is_dir() else []:
        try:
            rec = json.loads(rec_path.read_text())
            pid, ticks = int(rec["pid"]), str(rec["start_ticks"])
        except (OSError, ValueError, KeyError):
            rec_path.unlink(missing_ok=True)
            continue
        if pid_alive(pid) and _start_ticks(pid) == ticks:
            for sig, wait in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 5.0)):
                try:
                    os.killpg(pid, sig)  # each engine leads its own process group
                except ProcessLookupError:
                    break
                deadline = time.monotonic() + wait
                while time.monotonic() < deadline and pid_alive(pid):
                    time.sleep(0.05)
                if not pid_alive(pid):
                    break
            stopped.append(pid)
            log.warning("stopped engine %s (pid %d) left by a previous manager", rec.get("instance_id"), pid)
        rec_path.unlink(missing_ok=True)
    return stopped


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=0.5) as resp:  # noqa: S310  (a local engine's health URL)
            return int(resp.status) == 200
    except Exception:  # refused while starting, 503 while loading: not ready yet
        return False


class ProcessActuator:
    """The live engine processes of one service.

    :param spec: command template, device pool, timeouts, run directory.
    :param clock: wall clock (the lifecycle's times; cold starts are measured on it).
    :param reap: clean up engines a previous manager left in ``spec.run_dir`` first."""

    def __init__(self, spec: ProcessEngineSpec, clock: Callable[[], float] = time.time, reap: bool = True) -> None:
        self.spec = spec
        self.clock = clock
        self.procs: dict[str, EngineProcess] = {}
        self.finished: list[EngineLifecycle] = []  # exited processes, in exit order
        self.free_devices = list(spec.devices)
        self.started = 0
        (spec.run_dir / "pids").mkdir(parents=True, exist_ok=True)
        self.reaped = reap_stale(spec.run_dir) if reap else []

    def start(self, instance_id: str) -> EngineProcess:
        """Spawn the engine of ``instance_id`` on a free device and port."""
        if not self.free_devices:
            raise NoFreeDevice(f"all {len(self.spec.devices)} devices of the pool are in use")
        device = self.free_devices.pop(0)
        port = free_port(self.spec.host)
        log_path = self.spec.run_dir / f"{instance_id}.log"
        env = {**os.environ, **dict(self.spec.env)}
        if self.spec.device_env:
            env[self.spec.device_env] = device
        argv = self.spec.argv(device, port)
        with log_path.open("ab") as logf:
            logf.write(f"# {time.strftime('%H:%M:%S')} {shlex.join(argv)}\n".encode())
            logf.flush()
            popen = subprocess.Popen(argv, stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                     start_new_session=True, preexec_fn=kill_with_parent)  # noqa: PLW1509
        now = self.clock()
        proc = EngineProcess(instance_id, device, port, log_path, popen,
                             EngineLifecycle(instance_id, now, self.spec.timeouts), self.spec.host)
        (self.spec.run_dir / "pids" / f"{instance_id}.json").write_text(json.dumps(
            {"instance_id": instance_id, "pid": popen.pid, "start_ticks": _start_ticks(popen.pid), "port": port,
             "argv": argv}))
        self.procs[instance_id] = proc
        self.started += 1
        log.info("started %s: pid %d port %d device %s", instance_id, popen.pid, port, device)
        return proc

    def _signal(self, proc: EngineProcess, sig: Signal | None) -> None:
        if sig is None:
            return
        try:
            os.killpg(proc.popen.pid, signal.SIGTERM if sig is Signal.TERM else signal.SIGKILL)
        except ProcessLookupError:
            pass

    def drain(self, instance_id: str) -> None:
        if (proc := self.procs.get(instance_id)) is not None:
            self._signal(proc, proc.lifecycle.drain(self.clock()))

    def stop(self, instance_id: str, reason: str = "stopped") -> None:
        if (proc := self.procs.get(instance_id)) is not None:
            self._signal(proc, proc.lifecycle.stop(self.clock(), reason))

    def poll(self, in_flight: Callable[[str], int]) -> list[EngineLifecycle]:
        """Observe every live process once (exit, health while starting, drain progress) and send the signals
        its lifecycle asks for. :returns: the lifecycles that exited in this call."""
        exited: list[EngineLifecycle] = []
        for iid, proc in list(self.procs.items()):
            now = self.clock()
            code = proc.popen.poll()
            healthy = probed = False
            phase = proc.lifecycle.phase
            if code is None and phase in (Phase.STARTING, Phase.READY, Phase.DRAINING) and now >= proc.next_probe:
                # starting: probe often (the cold start is measured by it); serving: a liveness probe now and then
                every = self.spec.probe_every_s if phase is Phase.STARTING else self.spec.health_every_s
                proc.next_probe = now + every
                healthy, probed = _healthy(proc.base_url + self.spec.health_path), True
                now = self.clock()
            self._signal(proc, proc.lifecycle.observe(now, code, healthy, in_flight(iid), probed))
            if proc.lifecycle.phase is Phase.EXITED:
                del self.procs[iid]
                self.free_devices.append(proc.device)
                (self.spec.run_dir / "pids" / f"{iid}.json").unlink(missing_ok=True)
                self.finished.append(proc.lifecycle)
                exited.append(proc.lifecycle)
                log.info("%s exited (code %s): %s", iid, proc.lifecycle.exit_code, proc.lifecycle.reason)
        return exited

    def lifecycle(self, instance_id: str) -> EngineLifecycle | None:
        proc = self.procs.get(instance_id)
        if proc is not None:
            return proc.lifecycle
        return next((lc for lc in reversed(self.finished) if lc.instance_id == instance_id), None)

    def process_seconds(self) -> float:
        """Summed lifetimes of every process so far (running ones up to now): real instance-seconds."""
        now = self.clock()
        return sum(lc.lifetime_s(now) for lc in self.finished) + sum(
            p.lifecycle.lifetime_s(now) for p in self.procs.values())

    def shutdown(self, timeout_s: float = 10.0) -> None:
        """Stop every child: SIGTERM, then SIGKILL after the grace, and wait until all have exited."""
        for iid in list(self.procs):
            self.stop(iid, "manager stopping")
        deadline = time.monotonic() + timeout_s + self.spec.timeouts.term_grace_s
        while self.procs and time.monotonic() < deadline:
            self.poll(lambda _iid: 0)
            time.sleep(0.05)
        for proc in list(self.procs.values()):  # past every grace: SIGKILL whatever is left, and reap it
            self._signal(proc, Signal.KILL)
            proc.popen.wait(5.0)
        self.poll(lambda _iid: 0)
