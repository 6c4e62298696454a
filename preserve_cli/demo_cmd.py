"""``preserve demo``: a real trace through the live pipeline, checked against the offline simulation."""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import click

from preserve_cli.worker_cmd import pipeline_options

AZURE_CONV = ("traces", "azure2023", "AzureLLMInferenceTrace_conv.csv")
GET_TRACE = ("The default trace is the Azure LLM inference trace 2023 (conversation), expected at {path}.\n"
             "Get it from https://github.com/Azure/AzurePublicDataset (data/AzureLLMInferenceTrace_conv.csv), put it "
             "there or set PRESERVE_DATA to the folder holding traces/azure2023/, or pass --trace PATH.")


def _load(trace: Path | None, limit: int | None, prompts: bool, say: Any) -> tuple[Any, Path]:
    from replay import TraceFormatError, load_trace
    from streams.settings import data_path

    path = trace or data_path(*AZURE_CONV)
    if not path.is_file():
        raise click.ClickException(GET_TRACE.format(path=path))
    try:
        df = load_trace(path).df
    except TraceFormatError as e:
        raise click.ClickException(str(e)) from None
    if limit:
        df = df.iloc[:limit].reset_index(drop=True)
    corpus = data_path("prompts", "sharegpt_pairs.jsonl.gz")
    if prompts and "prompt" not in df.columns and corpus.is_file():
        from replay import attach_prompts, load_prompt_corpus

        df = attach_prompts(df, load_prompt_corpus(corpus), lengths="trace")
        say(f"demo: attached ShareGPT prompts to the trace ({corpus})")
    return df, path


def _kafka(settings: Any, say: Any) -> Any:
    from fleet.live.pipeline_procs import kafka_reachable

    k = settings.kafka
    if kafka_reachable(k):
        say(f"demo: using Kafka at {k.bootstrap_servers}")
        return k
    from infra.kafka_broker import KafkaBroker
    from infra.process_control import free_port, port_free

    broker = KafkaBroker.from_data_dir(settings.data_dir / "kafka")
    if not broker.is_running():
        if not (port_free(broker.cfg.host, broker.cfg.port) and port_free(broker.cfg.host, broker.cfg.controller_port)):
            port = free_port()
            broker = KafkaBroker(replace(broker.cfg, port=port, controller_port=free_port(avoid={port})))
        say(f"demo: starting a local Kafka broker (data in {broker.cfg.data_dir}; first start downloads the jars)")
        broker.start()
    say(f"demo: Kafka at {broker.bootstrap} (stop it with `preserve infra down`)")
    return k.model_copy(update={"bootstrap_servers": broker.bootstrap})


def _offline(df: Any, cfg: Any) -> dict[str, Any]:
    """The offline simulation of the same trace with the same control settings (the shared fields, verbatim)."""
    import dataclasses

    from fleet.harness import EvalConfig, run_eval
    from streams.policies.control_settings import ControlSettings

    shared = {f.name: getattr(cfg, f.name) for f in dataclasses.fields(ControlSettings)}
    return run_eval(df, [cfg.policy], EvalConfig(**shared)).doc["results"][0]


@click.command(context_settings={"show_default": True})
@click.option("--trace", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="trace file (default: Azure 2023 conv from PRESERVE_DATA)")
@click.option("--limit", type=int, default=2000, help="replay the first N requests (0: all)")
@click.option("--speedup", type=float, default=10.0, help="trace seconds per wall second")
@click.option("--json", "json_out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="write the result JSON here")
@click.option("--no-prompts", is_flag=True, help="do not attach ShareGPT prompts to a trace without prompts")
@click.option("--no-archive", is_flag=True, help="skip the ClickHouse archive (numbers from Kafka instead)")
@click.option("--drain-timeout-s", type=float, default=300.0, help="give up waiting for completions after this")
@pipeline_options
def demo(trace: Path | None, limit: int, speedup: float, json_out: Path | None, no_prompts: bool, no_archive: bool,
         drain_timeout_s: float, **pipeline: Any) -> None:
    """Replay a real trace through the live pipeline (Kafka, Faust workers, simulated fleet, ClickHouse),
    print the report and check it against an offline `preserve eval` of the same trace and policy.

    Starts a local Kafka broker if none is reachable. Exits non-zero if a request lacks its route or
    completion, or if live and offline disagree beyond the stated tolerances.

    With --engine llama-cpp the fleet runs real llama.cpp server processes (the project's tiny random-weight
    Llama; build it once with scripts/setup_engine.sh), started and stopped by the scaler, at speedup 1 with
    token counts capped and SLOs/density windows set for CPU engines (explicit options win); the checks are then the counts (routed/completed once, engine
    processes started >= 2 and all stopped), and the offline comparison is reported only.
    """
    from tqdm import tqdm

    from fleet.live import engine_demo
    from fleet.live.demo_report import collect, print_report
    from fleet.live.demo_run import DemoSettings, run_pipeline
    from streams.pipeline_config import PipelineConfig
    from streams.settings import load_settings

    say = lambda msg: click.echo(msg, err=True)  # noqa: E731
    real = pipeline.get("engine") in engine_demo.ENGINE_NAMES
    if real:
        _check_engine_built()
        pipeline["engine"] = PipelineConfig.engine  # the scaler's capacity model (no calibrated CPU preset)
        defaults = {f.name: f.default for f in dataclasses.fields(PipelineConfig)}
        pipeline = engine_demo.cpu_pipeline(pipeline, defaults)
        say(f"demo: real llama.cpp engine processes; CPU settings where not given: {engine_demo.CPU_PIPELINE}")
        pipeline["instances"] = min(int(pipeline["instances"]), 2)
        pipeline["max_instances"] = min(int(pipeline["max_instances"]), 3)
        if speedup != 1.0:
            say(f"demo: real engines run in wall time: speedup {speedup} -> 1")
        speedup, no_prompts = 1.0, True
    cfg = PipelineConfig(**pipeline)
    settings = load_settings()
    df, path = _load(trace, limit or None, not no_prompts, say)
    if real:
        df = engine_demo.cap_tokens(df)
        say(f"demo: token counts capped for CPU engines at {engine_demo.CPU_CAPS}")
    say(f"demo: {len(df)} requests from {path}, {df['arrival_s'].max():.0f} s of trace at {speedup}x, "
        f"policy {cfg.policy}, predictor {cfg.request_predictor()}")
    kafka = _kafka(settings, say)
    run_id = time.strftime("%Y%m%d-%H%M%S")
    run_dir = settings.data_dir / "demo" / run_id
    kafka = kafka.model_copy(update={"topic_prefix": f"{kafka.topic_prefix}demo-{run_id}."})
    dsn = settings.clickhouse.dsn.get_secret_value() if settings.clickhouse.dsn else f"chdb://{run_dir / 'clickhouse'}"
    env = {"PRESERVE_KAFKA__BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
           "PRESERVE_KAFKA__TOPIC_PREFIX": kafka.topic_prefix, "PRESERVE_CLICKHOUSE__DSN": dsn}
    eplan = engine_demo.plan(run_dir)
    outcome = run_pipeline(df, cfg, kafka, env, run_dir,
                           DemoSettings(speedup=speedup, drain_timeout_s=drain_timeout_s, archive=not no_archive,
                                        fleet_engine_args=eplan.fleet_args() if real else ()),
                           tqdm, say)
    say("demo: pipeline drained; running the offline simulation of the same trace and policy")
    offline = _offline(df, cfg)
    doc, ok = collect(outcome, kafka, None if no_archive else dsn, offline, cfg)
    doc["trace"] = str(path)
    doc["policy"], doc["predictor"], doc["speedup"] = cfg.policy, cfg.request_predictor(), speedup
    doc["requests"] = outcome.sent
    if real:
        doc["engine"] = "llama-cpp"
        doc["checks"].pop("live_matches_offline", None)  # a CPU engine vs the simulated preset: not comparable
        eng = engine_demo.engine_checks(doc, eplan)
        doc.update(eng["keys"])
        doc["checks"].update(eng["checks"])
        ok = all(doc["checks"].values())
    print_report(doc, None if no_archive else dsn)
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(doc, indent=2) + "\n")
        say(f"demo: wrote {json_out}")
    if real:
        click.echo(f"engine processes: started {doc['engine_processes_started']}, stopped "
                   f"{doc['engine_processes_stopped']}, left running {doc['engine_processes_left_running']}; "
                   f"cold starts (s) {doc['engine_cold_starts_s']}")
    if not ok:
        raise SystemExit(1)


def _check_engine_built() -> None:
    """Fail early with the set-up command when llama.cpp's server is not built (and write the model once)."""
    from fleet.live.llama_cpp.locate import EngineNotBuilt, llama_server_binary, tiny_model

    try:
        llama_server_binary()
        tiny_model()
    except EngineNotBuilt as e:
        raise click.ClickException(str(e)) from None
