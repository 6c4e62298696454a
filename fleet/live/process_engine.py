"""The process actuator behind the instance managers: one real serving process per instance.

:class:`ProcessEngineFactory` is an :class:`~fleet.live.base_engine_adapter.EngineFactory` whose instances are
real processes (:mod:`fleet.live.process_actuator`) served through the OpenAI-compatible adapter
(:mod:`fleet.live.openai_engine`). The instance manager drives it through the factory's lifecycle hooks:
``provision`` when the scaler adds an instance, ``readiness`` while it starts (ready when its health endpoint
answers: the measured cold start), ``drain`` / ``release`` on scale-down, ``liveness`` for an engine that died,
``poll`` once per manager step and ``shutdown`` at the end.

Engines run in wall time, so run the pipeline at ``--speedup 1``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from fleet.live.base_engine_adapter import EngineAdapter, EngineFactory, Provisioning, StartState
from fleet.live.openai_engine import OpenAIEngine, OpenAIEngineConfig
from fleet.live.process_actuator import NoFreeDevice, ProcessActuator, ProcessEngineSpec
from fleet.live.process_lifecycle import LifecycleTimeouts, Phase

__all__ = ["ProcessEngineFactory", "build_process_factory"]


class ProcessEngineFactory(EngineFactory):
    """:param specs: per service, how its engines run; ``"*"`` is the default for other services.
    :param template: adapter settings (``base_url`` is replaced by each process's own URL).
    :param clock: wall clock of the actuators."""

    def __init__(self, specs: dict[str, ProcessEngineSpec], template: OpenAIEngineConfig,
                 clock: Callable[[], float] = time.time) -> None:
        if not specs:
            raise ValueError("need at least one engine spec (service name or '*')")
        self.specs = specs
        self.template = replace(template, report_failures=True)
        self.clock = clock
        self.actuators: dict[str, ProcessActuator] = {}
        self.engines: dict[str, OpenAIEngine] = {}
        self.start_errors: dict[str, str] = {}  # instances that could not even be spawned

    def actuator(self, service: str) -> ProcessActuator:
        if service not in self.actuators:
            spec = self.specs.get(service, self.specs.get("*"))
            if spec is None:
                raise KeyError(f"no engine command for service {service!r} (and no '*' default)")
            self.actuators[service] = ProcessActuator(replace(spec, run_dir=spec.run_dir / service), self.clock)
        return self.actuators[service]

    @property
    def cold_start_s(self) -> float:
        return 0.0  # measured per process: readiness() says when each one is ready

    @property
    def kv_capacity_tokens(self) -> int:
        return self.template.kv_capacity_tokens

    @property
    def drain_refuses_routes(self) -> bool:
        return True

    def provision(self, service: str, instance_id: str, now: float) -> None:
        try:
            self.actuator(service).start(instance_id)
        except (NoFreeDevice, OSError) as e:
            self.start_errors[instance_id] = f"could not start: {e}"

    def readiness(self, service: str, instance_id: str, ready_at: float, now: float) -> Provisioning:
        if instance_id in self.start_errors:
            return Provisioning(StartState.FAILED, now, self.start_errors.pop(instance_id))
        lc = self.actuator(service).lifecycle(instance_id)
        if lc is None:
            return Provisioning(StartState.FAILED, now, "unknown instance")
        if lc.ready_at is not None and lc.phase is not Phase.EXITED:
            return Provisioning(StartState.READY, now)
        if lc.phase in (Phase.STARTING,):
            return Provisioning(StartState.PENDING, now)
        return Provisioning(StartState.FAILED, now, lc.reason or f"engine {lc.phase.value}")

    def create(self, service: str, instance_id: str, now: float) -> EngineAdapter:
        proc = self.actuator(service).procs[instance_id]
        engine = OpenAIEngine(replace(self.template, base_url=proc.base_url))
        self.engines[instance_id] = engine
        return engine

    def drain(self, service: str, instance_id: str, now: float) -> None:
        self.actuator(service).drain(instance_id)

    def release(self, service: str, instance_id: str, now: float) -> None:
        self.actuator(service).stop(instance_id, "drained" if instance_id in self.engines else "cancelled")
        self.engines.pop(instance_id, None)

    def liveness(self, service: str, instance_id: str, now: float) -> str | None:
        lc = self.actuator(service).lifecycle(instance_id)
        if lc is None:
            return "unknown instance"
        if lc.hung:  # alive but silent: lost now, while it is being stopped
            return lc.reason
        return (lc.reason or "exited") if lc.phase is Phase.EXITED else None

    def _in_flight(self, instance_id: str) -> int:
        engine = self.engines.get(instance_id)
        return engine.in_flight() if engine is not None else 0

    def poll(self, now: float) -> None:
        for act in self.actuators.values():
            act.poll(self._in_flight)

    def shutdown(self) -> None:
        for engine in self.engines.values():
            engine.close()
        for act in self.actuators.values():
            act.shutdown()

    def report(self) -> dict[str, Any]:
        """Counts and measurements of every engine process so far (the demo's JSON)."""
        lcs = [lc for a in self.actuators.values() for lc in a.finished] + [
            p.lifecycle for a in self.actuators.values() for p in a.procs.values()]
        colds = sorted(lc.cold_start_s for lc in lcs if lc.cold_start_s is not None)
        return {
            "engine_processes_started": sum(a.started for a in self.actuators.values()),
            "engine_processes_stopped": sum(len(a.finished) for a in self.actuators.values()),
            "engine_processes_running": sum(len(a.procs) for a in self.actuators.values()),
            "engine_processes_died": sum(lc.died for a in self.actuators.values() for lc in a.finished),
            "engine_processes_hung": sum(lc.hung for a in self.actuators.values() for lc in a.finished),
            "engine_cold_starts_s": [round(c, 3) for c in colds],
            "engine_instance_hours": sum(a.process_seconds() for a in self.actuators.values()) / 3600.0,
            "engine_stop_reasons": [f"{lc.instance_id}: {lc.reason}" for a in self.actuators.values()
                                    for lc in a.finished],
        }


def build_process_factory(commands: dict[str, str], model: str | None, devices: tuple[str, ...],
                          device_env: str | None, flavor: str, run_dir: Path, timeouts: LifecycleTimeouts,
                          kv_capacity_tokens: int = 0) -> ProcessEngineFactory:
    """The factory of ``preserve fleet --engine process``.

    :param commands: command template per service (``"*"``: every other service); empty: llama.cpp's server
        with the project's tiny model (needs ``scripts/setup_engine.sh``).
    :param model: what ``{model}`` becomes; None: the tiny random-weight Llama."""
    if not commands:
        from fleet.live.llama_cpp.locate import llama_server_command

        commands = {"*": llama_server_command()}
    if model is None:
        from fleet.live.llama_cpp.locate import tiny_model

        model = str(tiny_model())
    specs = {svc: ProcessEngineSpec(cmd, model, run_dir, devices, device_env, timeouts=timeouts)
             for svc, cmd in commands.items()}
    return ProcessEngineFactory(specs, OpenAIEngineConfig("http://unused", model, flavor=flavor,
                                                          kv_capacity_tokens=kv_capacity_tokens))
