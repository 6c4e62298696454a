"""`preserve topics create|list`: the pipeline's Kafka topics (partitions, key, retention set explicitly)."""

from __future__ import annotations

import click

__all__ = ["topics"]


def _kafka(bootstrap: str | None, partitions: int | None):  # type: ignore[no-untyped-def]
    from streams.settings import load_settings

    kafka = load_settings().kafka
    update = {k: v for k, v in (("bootstrap_servers", bootstrap), ("partitions", partitions)) if v is not None}
    return kafka.model_copy(update=update) if update else kafka


bootstrap_opt = click.option("--bootstrap", default=None,
                             help="Kafka bootstrap servers [default: PRESERVE_KAFKA__BOOTSTRAP_SERVERS or 127.0.0.1:9092]")


@click.group()
def topics() -> None:
    """Create and list the pipeline's topics (prefix PRESERVE_KAFKA__TOPIC_PREFIX, default 'preserve.')."""


@topics.command()
@bootstrap_opt
@click.option("--partitions", type=int, default=None, help="partitions per topic [default: PRESERVE_KAFKA__PARTITIONS or 4]")
@click.option("--timeout", "timeout_s", type=float, default=30.0, show_default=True, help="admin request timeout (s)")
def create(bootstrap: str | None, partitions: int | None, timeout_s: float) -> None:
    """Create every record topic that does not exist yet (idempotent; existing topics are left alone)."""
    from streams.topics import TopicMismatch, ensure_topics, topic_specs

    kafka = _kafka(bootstrap, partitions)
    specs = topic_specs(kafka)
    try:
        result = ensure_topics(kafka, specs, timeout_s=timeout_s)
    except TopicMismatch as e:
        raise click.ClickException(str(e)) from e
    except Exception as e:  # KafkaException: broker unreachable, auth failure, ...
        raise click.ClickException(f"could not reach Kafka at {kafka.bootstrap_servers}: {e} "
                                   f"(is it running? `preserve infra up`)") from e
    from streams.topics import cluster_replication

    rf = cluster_replication(kafka)
    for s in specs:
        click.echo(f"{result[s.physical]:<8} {s.physical:<32} partitions={s.partitions} replication={rf} key={s.key} "
                   f"retention={s.retention_ms // 3_600_000}h cleanup={s.cleanup_policy}")


@topics.command(name="list")
@bootstrap_opt
@click.option("--all", "show_all", is_flag=True, help="also topics outside the prefix (not internal '__' ones)")
def list_topics(bootstrap: str | None, show_all: bool) -> None:
    """List topics with partitions, message counts, retention and cleanup policy."""
    from streams.topics import describe_topics

    kafka = _kafka(bootstrap, None)
    try:
        rows = describe_topics(kafka, prefix_only=not show_all)
    except Exception as e:  # KafkaException
        raise click.ClickException(f"could not reach Kafka at {kafka.bootstrap_servers}: {e}") from e
    if not rows:
        click.echo("no topics (create them with `preserve topics create`)")
        return
    click.echo(f"{'topic':<40}{'partitions':>11}{'messages':>11}{'retention_h':>13}{'replicas':>9}{'min_isr':>8}"
               f"{'under_repl':>11}  cleanup")
    for r in rows:
        ret = int(r["retention_ms"])  # type: ignore[call-overload]
        click.echo(f"{r['topic']!s:<40}{r['partitions']!s:>11}{r['messages']!s:>11}"
                   f"{(ret // 3_600_000 if ret >= 0 else -1):>13}{r['replication']!s:>9}{r['min_insync']!s:>8}"
                   f"{r['under_replicated']!s:>11}  {r['cleanup']}")
