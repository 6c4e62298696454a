"""`preserve infra up|down|status`: the local Kafka (KRaft) from Maven Central jars: one broker, or a cluster of
``--brokers N`` nodes (infra/kafka_cluster.py) whose home holds ``cluster.json``; `down` and `status` tell the two
apart by that file, so they need no flags."""

from __future__ import annotations

import json
from dataclasses import replace
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
                            help="broker or cluster home (logs, config, pid files) [default: <PRESERVE_DATA_DIR>/kafka, "
                                 "or <PRESERVE_DATA_DIR>/kafka-cluster for --brokers > 1]")


@click.group()
def infra() -> None:
    """Start, stop and inspect the local Apache Kafka broker (KRaft, broker+controller in one JVM).

    The jars come from Maven Central through `mvn` (once; cached in ~/.cache/preserve/kafka-VERSION or
    $PRESERVE_KAFKA_CACHE). Needs Java 17+. The data directory persists across restarts.
    """


def _cluster_home() -> Path:
    from streams.settings import load_settings

    return load_settings().data_dir / "kafka-cluster"


def _home(data_dir: Path | None) -> Path:
    """The home `down`/`status` act on: ``--data-dir``, else the default cluster's home while any node of it
    runs (or no single broker was ever started), else the single broker's."""
    if data_dir is not None:
        return data_dir.expanduser().resolve()
    from infra.kafka_cluster import KafkaCluster, is_cluster_home

    cluster, single = _cluster_home().resolve(), _default_data_dir().resolve()
    if is_cluster_home(cluster) and (not (single / "broker.json").is_file() or any(
            b._our_pid() is not None for b in KafkaCluster.from_home(cluster).nodes.values())):  # noqa: SLF001
        return cluster
    return single


def _up_cluster(home: Path, brokers: int, port: int | None, version: str | None, heap_mb: int | None) -> None:
    from infra.java_runtime import ToolMissing
    from infra.kafka_artifacts import ResolveError
    from infra.kafka_broker import BrokerError, PortInUse
    from infra.kafka_cluster import ClusterConfig, KafkaCluster, is_cluster_home

    if (home / "broker.json").is_file() or (home / "kraft-logs").is_dir():
        raise click.ClickException(f"{home} holds a single broker; give the cluster another --data-dir "
                                   f"(or `preserve infra down` and remove it)")
    if is_cluster_home(home):
        saved = ClusterConfig.load(home)
        if saved.size != brokers:
            raise click.ClickException(f"{home} holds a {saved.size}-node cluster, not {brokers}: use another "
                                       f"--data-dir or remove it")
        given = {k: v for k, v in (("base_port", port), ("version", version), ("heap_mb", heap_mb)) if v is not None}
        cfg = replace(saved, **given)  # type: ignore[arg-type]
    else:
        extra = {k: v for k, v in (("version", version), ("heap_mb", heap_mb)) if v is not None}
        cfg = ClusterConfig(home=home, size=brokers, base_port=port or _settings_port(), **extra)  # type: ignore[arg-type]
    cluster = KafkaCluster(cfg)
    click.echo(f"starting a {brokers}-node kafka cluster on {cluster.bootstrap} (data {cluster.cfg.home}) ...")
    try:
        st = cluster.start()
    except (ToolMissing, ResolveError, PortInUse, BrokerError) as e:
        raise click.ClickException(str(e)) from e
    click.echo(st.describe())
    click.echo(f"topics get replication factor {cfg.replication} and min.insync.replicas {cfg.min_insync} "
               f"(`preserve topics create`); logs: {cluster.cfg.home}/node-*/kafka.log")


@infra.command()
@click.option("--brokers", type=click.IntRange(1, 9), default=1, show_default=True,
              help="nodes (each broker + controller); from 3 on, topics are replicated 3 times with "
                   "min.insync.replicas 2. Node i listens on port + 2(i-1), its controller on the port after it")
@click.option("--port", type=int, default=None, help="client port [default: from PRESERVE_KAFKA__BOOTSTRAP_SERVERS, "
              "else the last start's, else 9092]")
@click.option("--controller-port", type=int, default=None, help="KRaft controller port [default: port + 1]")
@click.option("--version", "version", default=None, help="Apache Kafka version from Maven Central [default: 4.1.1]")
@click.option("--heap-mb", type=int, default=None, help="JVM max heap in MiB [default: 512]")
@data_dir_opt
def up(brokers: int, port: int | None, controller_port: int | None, version: str | None, heap_mb: int | None,
       data_dir: Path | None) -> None:
    """Start the broker or cluster (no-op if it already runs) and wait until it answers metadata requests."""
    from infra.kafka_cluster import is_cluster_home

    home = (data_dir.expanduser().resolve() if data_dir is not None
            else _cluster_home().resolve() if brokers > 1 else _default_data_dir().resolve())
    if brokers > 1 or is_cluster_home(home):
        if controller_port is not None:
            raise click.BadParameter("a cluster's controller ports follow from --port", param_hint="--controller-port")
        _up_cluster(home, brokers if brokers > 1 else _saved_size(home), port, version, heap_mb)
        return
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


def _saved_size(home: Path) -> int:
    from infra.kafka_cluster import ClusterConfig

    return ClusterConfig.load(home).size


@infra.command()
@data_dir_opt
def down(data_dir: Path | None) -> None:
    """Stop the broker or cluster cleanly (SIGTERM; SIGKILL if it does not exit within 30 s). Data is kept."""
    from infra.kafka_cluster import KafkaCluster, is_cluster_home

    home = _home(data_dir)
    if is_cluster_home(home):
        cluster = KafkaCluster.from_home(home)
        stopped = cluster.stop()
        click.echo(f"stopped nodes {stopped} of the cluster at {cluster.bootstrap}" if stopped
                   else f"no node running for {home}")
        return
    broker = _broker(data_dir)
    if broker.stop():
        click.echo(f"stopped kafka at {broker.bootstrap}")
    else:
        click.echo(f"no broker running for {broker.cfg.data_dir}")


@infra.command()
@data_dir_opt
@click.option("--json", "as_json", is_flag=True, help="print a JSON object instead of a line")
def status(data_dir: Path | None, as_json: bool) -> None:
    """Say whether the broker runs and answers; exit code 0 if running, 1 otherwise.

    For a cluster: each node, the active controller of the KRaft quorum, and the under-replicated partitions;
    exit code 0 if every node runs, 2 if a majority does (degraded: the quorum holds), 1 otherwise."""
    from infra.kafka_cluster import KafkaCluster, is_cluster_home

    home = _home(data_dir)
    if is_cluster_home(home):
        cst = KafkaCluster.from_home(home).status()
        click.echo(json.dumps(cst.to_dict()) if as_json else cst.describe())
        raise SystemExit({"running": 0, "degraded": 2}.get(cst.state, 1))
    st = _broker(data_dir).status()
    if as_json:
        click.echo(json.dumps({"state": st.state, "pid": st.pid, "bootstrap": st.bootstrap, "version": st.version,
                               "data_dir": str(st.data_dir), "topics": st.topics}))
    else:
        click.echo(st.describe())
    raise SystemExit(0 if st.state == "running" else 1)
