"""``preserve worker``: run Faust agents of the live pipeline (one consumer-group member)."""

from __future__ import annotations

import os

import click

from preserve_cli.settings_options import dataclass_options
from streams.pipeline_config import AGENTS, ENV_VAR, PipelineConfig

pipeline_options = dataclass_options(PipelineConfig)  # shared by ``worker`` and ``demo``


def _resolve_replication() -> None:
    """Faust creates the changelog topics with a fixed replication factor: turn "auto" (0) into the cluster's
    (min(3, brokers)) before the app is built, so a worker on a 3-node cluster replicates its tables' state."""
    from streams.settings import load_settings
    from streams.topics import cluster_replication

    if load_settings().kafka.replication_factor == 0:
        os.environ["PRESERVE_KAFKA__REPLICATION_FACTOR"] = str(cluster_replication(load_settings().kafka))
        load_settings.cache_clear()


@click.command(context_settings={"show_default": True})
@click.option("--agents", default=",".join(AGENTS),
              help=f"comma-separated agents to run ({', '.join(AGENTS)}); workers with the same set share the "
                   "load through one consumer group")
@click.option("--web-port", type=int, default=None, help="Faust web port (default: web server off)")
@click.option("--metrics-port", type=int, default=None,
              help="serve Prometheus /metrics and the /livez and /readyz probes on this port (default: off)")
@click.option("--metrics-host", default="127.0.0.1", help="interface of --metrics-port (0.0.0.0 in a pod)")
@click.option("--loglevel", default="warning", type=click.Choice(["debug", "info", "warning", "error"]))
@click.option("--wait-for-kafka-s", type=float, default=300.0,
              help="wait this long for a broker at start-up (retrying with backoff, a line per try); 0: try once")
@pipeline_options
def worker(agents: str, web_port: int | None, metrics_port: int | None, metrics_host: str, loglevel: str,
           wait_for_kafka_s: float, **pipeline: object) -> None:
    """Run Faust agents of the live pipeline until interrupted.

    Reads Kafka/ClickHouse settings from PRESERVE_* (see streams/settings.py). Example:

        preserve worker --agents predict,route,scale --policy preserve:preserve --predictor fallback
    """
    cfg = PipelineConfig(**pipeline)  # type: ignore[arg-type]
    names = [a.strip() for a in agents.split(",") if a.strip()]
    unknown = sorted(set(names) - set(AGENTS))
    if unknown or not names:
        raise click.BadParameter(f"unknown agents {unknown}; choose from {', '.join(AGENTS)}", param_hint="--agents")
    os.environ[ENV_VAR] = cfg.to_json()
    os.environ["PRESERVE_AGENTS"] = ",".join(names)
    if web_port is not None:
        os.environ["PRESERVE_WEB_PORT"] = str(web_port)
    if metrics_port is not None:  # up before Kafka is: /livez answers and /readyz says what it waits for
        from streams.transport.metrics_server import start_metrics_server

        try:
            server = start_metrics_server(metrics_port, metrics_host)
        except OSError as e:
            raise click.ClickException(str(e)) from None
        os.environ["PRESERVE_METRICS_PORT"] = str(server.port)
    from streams.settings import load_settings
    from streams.transport.kafka_wait import KafkaUnreachable, wait_for_kafka

    try:
        wait_for_kafka(load_settings().kafka, wait_for_kafka_s, lambda m: click.echo(f"preserve worker: {m}", err=True))
    except KafkaUnreachable as e:
        raise click.ClickException(str(e)) from None
    _resolve_replication()
    from faust import Worker

    from streams.app import app

    Worker(app, loglevel=loglevel).execute_from_commandline()
