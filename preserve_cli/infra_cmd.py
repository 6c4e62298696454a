"""`preserve infra up|down|status`: the local single-node Kafka broker (KRaft) from Maven Central jars."""

from __future__ import annotations

import json
from pathlib import Path

import click

__all__ = ["infra"]


def _default_data_dir() -> Path:
    from streams.settings import load_settings

    return load_settings().data_dir / "kafka"


def _settings_port() -> int:
    """Port of ``PRESERVE_KAFKA__BOOTSTRAP_SERVERS`` (first host), so `up` starts what the pipeline expects."""
    from streams.settings import load_settings

    first = load_settings().kafka.bootstrap_servers.split(",")[0]
    return int(first.rsplit(":", 1)[1]) if ":" in first else 9092


def _broker(data_dir: Path | None, **overrides: object):  # type: ignore[no-untyped-def]
    from infra.kafka_broker import KafkaBroker

    return KafkaBroker.from_data_dir((data_dir or _default_data_dir()).resolve(), **overrides)


data_dir_opt = click.option("--data-dir", type=click.Path(path_type=Path, file_okay=False), default=None,
                            help="broker home (logs, config, pid file) [default: <PRESERVE_DATA_DIR>/kafka]")


@click.group()
def infra() -> None:
    """Start, stop and inspect the local Apache Kafka broker (KRaft, broker+controller in one JVM).

    The jars come from Maven Central through `mvn` (once; cached in ~/.cache/preserve/kafka-VERSION or
    $PRESERVE_KAFKA_CACHE). Needs Java 17+. The data directory persists across restarts.
    """


@infra.command()
@click.option("--port", type=int, default=None, help="client port [default: from PRESERVE_KAFKA__BOOTSTRAP_SERVERS, "
              "else the last start's, else 9092]")
@click.option("--controller-port", type=int, default=None, help="KRaft controller port [default: port + 1]")
@click.option("--version", "version", default=None, help="Apache Kafka version from Maven Central [default: 4.1.1]")
@click.option("--heap-mb", type=int, default=None, help="JVM max heap in MiB [default: 512]")
@data_dir_opt
def up(port: int | None, controller_port: int | None, version: str | None, heap_mb: int | None,
       data_dir: Path | None) -> None:
    """Start the broker (no-op if it already runs) and wait until it answers metadata requests."""
    from infra.java_runtime import ToolMissing
    from infra.kafka_artifacts import ResolveError
    from infra.kafka_broker import BrokerError, PortInUse

    broker = _broker(data_dir)
    if port is None and not broker.cfg.state_file.is_file():
        port = _settings_port()
    if port is not None and controller_port is None:
        controller_port = port + 1
    broker = _broker(data_dir, port=port, controller_port=controller_port, version=version, heap_mb=heap_mb)
    if broker.status().state == "stopped":
        from infra.kafka_artifacts import jars_cached

        first = "" if jars_cached(broker.cfg.version, broker.cfg.cache_dir) else "; first resolving its jars with Maven"
        click.echo(f"starting kafka {broker.cfg.version} on {broker.bootstrap} (data {broker.cfg.data_dir}{first}) ...")
    try:
        st = broker.start()
    except (ToolMissing, ResolveError, PortInUse, BrokerError) as e:
        raise click.ClickException(str(e)) from e
    click.echo(st.describe())
    click.echo(f"log: {broker.cfg.log_file}")


@infra.command()
@data_dir_opt
def down(data_dir: Path | None) -> None:
    """Stop the broker cleanly (SIGTERM; SIGKILL if it does not exit within 30 s). Data is kept."""
    broker = _broker(data_dir)
    if broker.stop():
        click.echo(f"stopped kafka at {broker.bootstrap}")
    else:
        click.echo(f"no broker running for {broker.cfg.data_dir}")


@infra.command()
@data_dir_opt
@click.option("--json", "as_json", is_flag=True, help="print a JSON object instead of a line")
def status(data_dir: Path | None, as_json: bool) -> None:
    """Say whether the broker runs and answers; exit code 0 if running, 1 otherwise."""
    st = _broker(data_dir).status()
    if as_json:
        click.echo(json.dumps({"state": st.state, "pid": st.pid, "bootstrap": st.bootstrap, "version": st.version,
                               "data_dir": str(st.data_dir), "topics": st.topics}))
    else:
        click.echo(st.describe())
    raise SystemExit(0 if st.state == "running" else 1)
