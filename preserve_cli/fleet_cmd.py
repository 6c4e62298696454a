"""``preserve fleet``: run the instance managers of the live pipeline (simulated engines, given servers, or real
engine processes started and stopped by the process actuator)."""

from __future__ import annotations

import json
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click


@click.command(context_settings={"show_default": True})
@click.option("--speedup", type=float, default=1.0, help="the replay's speedup: event seconds per wall second")
@click.option("--lag-s", type=float, default=0.5,
              help="wall seconds the fleet runs behind the replay clock, so decisions are applied at their own "
                   "event time")
@click.option("--engine", default="llama2-7b-h100",
              help="engine preset of the simulated instances, or `process`: one real serving process per "
                   "instance, started and stopped by the scaler's commands (see --engine-cmd)")
@click.option("--cold-start-s", type=float, default=None, help="override of the preset's cold start (event s)")
@click.option("--status-every-s", type=float, default=1.0, help="event seconds between instance statuses")
@click.option("--group-id", default="preserve-fleet", help="consumer group of the instance managers")
@click.option("--vllm", "endpoints", multiple=True,
              help="base URL of a real OpenAI-compatible server (vLLM); repeat for several. Instances map onto "
                   "them instead of simulated engines; run replays at --speedup 1")
@click.option("--vllm-model", default=None, help="served model name sent to the --vllm servers")
@click.option("--vllm-kv-tokens", type=int, default=0, help="KV capacity of one server, for load reports")
@click.option("--engine-cmd", "engine_cmds", multiple=True, metavar="[SERVICE=]TEMPLATE",
              help="with --engine process: the command that starts one engine, with {model} {port} {device} "
                   "{host} placeholders, e.g. 'vllm serve {model} --port {port}'; prefix SERVICE= for one "
                   "service (repeat). Default: llama.cpp's llama-server (scripts/setup_engine.sh builds it)")
@click.option("--engine-model", default=None,
              help="what {model} becomes (default: the project's tiny random-weight Llama GGUF)")
@click.option("--engine-flavor", type=click.Choice(["llama-cpp", "vllm"]), default="llama-cpp",
              help="the engine's API dialect: how output lengths are forced, which /metrics names are read")
@click.option("--engine-devices", default="cpu0,cpu1",
              help="device pool, comma-separated, one live engine per device (GPU ids or CPU slot names)")
@click.option("--engine-device-env", default=None,
              help="environment variable set to the engine's device, e.g. CUDA_VISIBLE_DEVICES")
@click.option("--engine-dir", type=click.Path(file_okay=False), default=None,
              help="logs and pid records of the engines (default: <data dir>/engines/<group id>)")
@click.option("--ready-timeout-s", type=float, default=60.0, help="an engine not healthy by then is stopped")
@click.option("--engine-hang-timeout-s", type=float, default=15.0,
              help="a serving engine whose health endpoint is silent this long is hung: stopped, its requests "
                   "re-routed and a replacement started, as for one that died (0 = never)")
@click.option("--engine-drain-timeout-s", type=float, default=120.0,
              help="a draining engine still busy after this is stopped (its requests are re-routed)")
@click.option("--engine-report", type=click.Path(dir_okay=False), default=None,
              help="with --engine process: write the engine processes' counts, cold starts and instance-hours "
                   "here (JSON) when the fleet stops")
@click.option("--session-timeout-s", type=float, default=10.0,
              help="consumer-group session: a crashed manager's partitions (services) move to a live or restarted "
                   "one this long after (a restarted manager takes them over from the log)")
@click.option("--quiet", is_flag=True, help="no periodic counters on stderr")
@click.option("--metrics-port", type=int, default=None,
              help="serve Prometheus /metrics and the /livez and /readyz probes on this port (default: off)")
@click.option("--metrics-host", default="127.0.0.1", help="interface of --metrics-port (0.0.0.0 in a pod)")
def fleet(speedup: float, lag_s: float, engine: str, cold_start_s: float | None, status_every_s: float,
          group_id: str, endpoints: tuple[str, ...], vllm_model: str | None, vllm_kv_tokens: int,
          engine_cmds: tuple[str, ...], engine_model: str | None, engine_flavor: str, engine_devices: str,
          engine_device_env: str | None, engine_dir: str | None, ready_timeout_s: float,
          engine_hang_timeout_s: float, engine_drain_timeout_s: float, engine_report: str | None,
          session_timeout_s: float, quiet: bool, metrics_port: int | None, metrics_host: str) -> None:
    """Consume routes and scale commands, run simulated vLLM-style instances in event time, and publish a
    Completion per request and InstanceEvents (start_requested / ready / drain / stopped / status).

    Run it with the same --speedup as `preserve replay`; behind a real gateway (events stamped with the wall
    clock) use --speedup 1 (the default): a speedup that does not match the event stream is reported loudly
    (SPEEDUP MISMATCH), since the fleet would run on a clock that is not the events' and invent latencies.
    Restarted (after SIGTERM or kill -9), it takes its services over from the log: instances, desired sizes,
    and the requests that had not completed, which run again once. With --vllm, requests go to real OpenAI-compatible
    servers (API key from PRESERVE_VLLM_API_KEY). With --engine process, each instance is a real engine process
    (started on a scale-up, ready when its health endpoint answers, drained and stopped on a scale-down, replaced
    when it dies); run replays at --speedup 1. See fleet/live/README.md. Stops on Ctrl-C / SIGTERM, stopping
    every engine it started.
    """
    from fleet.live.base_engine_adapter import EngineFactory
    from fleet.live.event_clock import ReplayClock
    from fleet.live.fleet_runner import FleetRunner, RunnerStats
    from fleet.live.instance_manager import FleetManager
    from fleet.live.simulated_engine import SimulatedEngineFactory
    from streams.settings import load_settings

    factory: EngineFactory
    settings = load_settings()
    if engine == "process":
        factory = _process_factory(engine_cmds, engine_model, engine_flavor, engine_devices, engine_device_env,
                                   Path(engine_dir) if engine_dir else settings.data_dir / "engines" / group_id,
                                   ready_timeout_s, engine_drain_timeout_s, vllm_kv_tokens, engine_hang_timeout_s)
        if speedup != 1.0:
            click.echo("fleet: real engines run in wall time; replay at --speedup 1 for true latencies", err=True)
    elif endpoints:
        if not vllm_model:
            raise click.BadParameter("--vllm needs --vllm-model", param_hint="--vllm-model")
        import os

        from fleet.live.openai_engine import OpenAIEngineConfig, OpenAIEngineFactory

        factory = OpenAIEngineFactory(list(endpoints), OpenAIEngineConfig(
            endpoints[0], vllm_model, api_key=os.environ.get("PRESERVE_VLLM_API_KEY"),
            kv_capacity_tokens=vllm_kv_tokens))
    else:
        try:
            factory = SimulatedEngineFactory(engine, cold_start_s)
        except KeyError as e:
            raise click.BadParameter(str(e), param_hint="--engine") from None
    manager = FleetManager(factory, status_every_s=status_every_s, prewarm_first=engine != "process")
    runner = FleetRunner(manager, settings.kafka, ReplayClock(speedup, lag_s), group_id,
                         session_timeout_s=session_timeout_s)
    stop = {"flag": False}

    def _stop(*_: object) -> None:
        stop["flag"] = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    last = [time.monotonic()]
    ready = [False]
    probes = _fleet_probes(runner, group_id, metrics_port, metrics_host)

    def tick(stats: RunnerStats) -> None:
        probes()
        if not ready[0] and runner.consumer.assignment():  # the "ready" line, once (printed even with --quiet)
            ready[0] = True
            print(f"preserve fleet ready: group {group_id}, {len(runner.consumer.assignment())} partitions "
                  "assigned", file=sys.stderr, flush=True)
        if quiet or time.monotonic() - last[0] < 5:
            return
        last[0] = time.monotonic()
        c = manager.counters
        print(f"fleet: routes {c.routes} completions {c.completions} in flight {manager.in_flight()} "
              f"late {c.late_inputs} rerouted {c.rerouted} engine failures {c.engine_failures} "
              f"dead letters {stats.dead_letters} recovered {c.recovered_routes} failed {c.failed}"
              + (f" SPEEDUP MISMATCH: {stats.speedup_mismatch}" if stats.speedup_mismatch else ""), file=sys.stderr)

    try:
        runner.run(lambda: stop["flag"], tick)
    finally:
        manager.shutdown()
        report = getattr(factory, "report", None)
        if report is not None:
            doc = {**report(), "engine_failures": manager.counters.engine_failures,
                   "replacements": manager.counters.replacements, "failed_requests": manager.counters.failed}
            print(f"fleet: engines {json.dumps(doc)}", file=sys.stderr)
            if engine_report:
                Path(engine_report).write_text(json.dumps(doc, indent=2) + "\n")


def _fleet_probes(runner: object, group: str, port: int | None, host: str) -> Callable[[], None]:
    """Serve /metrics, /livez, /readyz for this fleet process and return the per-tick update (no-op if off)."""
    if port is None:
        return lambda: None
    from fleet.live.fleet_probes import FleetProbes
    from streams.transport.metrics_server import start_metrics_server

    try:
        start_metrics_server(port, host)
    except OSError as e:
        raise click.ClickException(str(e)) from None
    return FleetProbes(runner, group).tick  # type: ignore[arg-type]


def _process_factory(cmds: tuple[str, ...], model: str | None, flavor: str, devices: str, device_env: str | None,
                     run_dir: Path, ready_timeout_s: float, drain_timeout_s: float, kv_tokens: int,
                     hang_timeout_s: float = 15.0) -> Any:
    from fleet.live.llama_cpp.locate import EngineNotBuilt
    from fleet.live.process_engine import build_process_factory
    from fleet.live.process_lifecycle import LifecycleTimeouts

    commands: dict[str, str] = {}
    for c in cmds:
        svc, sep, tmpl = c.partition("=")
        if sep and svc and " " not in svc and "{" not in svc:
            commands[svc] = tmpl
        else:
            commands["*"] = c
    pool = tuple(d.strip() for d in devices.split(",") if d.strip())
    try:
        return build_process_factory(commands, model, pool, device_env, flavor, run_dir,
                                     LifecycleTimeouts(ready_timeout_s, drain_timeout_s,
                                                       hang_timeout_s=hang_timeout_s), kv_tokens)
    except (EngineNotBuilt, ValueError) as e:
        raise click.ClickException(str(e)) from None
