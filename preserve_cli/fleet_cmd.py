"""``preserve fleet``: run the simulated instance managers of the live pipeline."""

from __future__ import annotations

import signal
import sys
import time

import click


@click.command(context_settings={"show_default": True})
@click.option("--speedup", type=float, default=1.0, help="the replay's speedup: event seconds per wall second")
@click.option("--lag-s", type=float, default=0.5,
              help="wall seconds the fleet runs behind the replay clock, so decisions are applied at their own "
                   "event time")
@click.option("--engine", default="llama2-7b-h100", help="engine preset of the simulated instances")
@click.option("--cold-start-s", type=float, default=None, help="override of the preset's cold start (event s)")
@click.option("--status-every-s", type=float, default=1.0, help="event seconds between instance statuses")
@click.option("--group-id", default="preserve-fleet", help="consumer group of the instance managers")
@click.option("--vllm", "endpoints", multiple=True,
              help="base URL of a real OpenAI-compatible server (vLLM); repeat for several. Instances map onto "
                   "them instead of simulated engines; run replays at --speedup 1")
@click.option("--vllm-model", default=None, help="served model name sent to the --vllm servers")
@click.option("--vllm-kv-tokens", type=int, default=0, help="KV capacity of one server, for load reports")
@click.option("--quiet", is_flag=True, help="no periodic counters on stderr")
def fleet(speedup: float, lag_s: float, engine: str, cold_start_s: float | None, status_every_s: float,
          group_id: str, endpoints: tuple[str, ...], vllm_model: str | None, vllm_kv_tokens: int, quiet: bool) -> None:
    """Consume routes and scale commands, run simulated vLLM-style instances in event time, and publish a
    Completion per request and InstanceEvents (start_requested / ready / drain / stopped / status).

    Run it with the same --speedup as `preserve replay`. With --vllm, requests go to real OpenAI-compatible
    servers (API key from PRESERVE_VLLM_API_KEY); see fleet/live/README.md. Stops on Ctrl-C / SIGTERM.
    """
    from fleet.live.base_engine_adapter import EngineFactory
    from fleet.live.event_clock import ReplayClock
    from fleet.live.fleet_runner import FleetRunner, RunnerStats
    from fleet.live.instance_manager import FleetManager
    from fleet.live.simulated_engine import SimulatedEngineFactory
    from streams.settings import load_settings

    factory: EngineFactory
    if endpoints:
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
    manager = FleetManager(factory, status_every_s=status_every_s)
    runner = FleetRunner(manager, load_settings().kafka, ReplayClock(speedup, lag_s), group_id)
    stop = {"flag": False}

    def _stop(*_: object) -> None:
        stop["flag"] = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    last = [time.monotonic()]

    def tick(stats: RunnerStats) -> None:
        if quiet or time.monotonic() - last[0] < 5:
            return
        last[0] = time.monotonic()
        c = manager.counters
        print(f"fleet: routes {c.routes} completions {c.completions} in flight {manager.in_flight()} "
              f"late {c.late_inputs} rerouted {c.rerouted} dead letters {stats.dead_letters}", file=sys.stderr)

    runner.run(lambda: stop["flag"], tick)
