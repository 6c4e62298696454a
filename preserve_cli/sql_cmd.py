"""`preserve sql "SELECT ..."`: query the ClickHouse archive (embedded Parquet archive or a server)."""

from __future__ import annotations

import sys

import click

__all__ = ["sql"]


def resolve_dsn(dsn: str | None) -> str:
    from streams.settings import load_settings

    return dsn or load_settings().clickhouse_dsn()


def render(df, fmt: str) -> str:  # type: ignore[no-untyped-def]
    """A DataFrame as an aligned table, CSV, or JSON lines (one object per row)."""
    if fmt == "csv":
        return str(df.to_csv(index=False)).rstrip("\n")
    if fmt == "json":
        return str(df.to_json(orient="records", lines=True, date_format="iso")).rstrip("\n")
    if df.empty:
        return "(0 rows) " + ", ".join(map(str, df.columns))
    with __import__("pandas").option_context("display.max_rows", 500, "display.max_columns", 50,
                                              "display.width", 200, "display.max_colwidth", 80):
        return f"{df.to_string(index=False)}\n({len(df)} rows)"


@click.command()
@click.argument("query", required=False)
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table", show_default=True)
@click.option("--dsn", default=None, help="chdb:///path or http(s)://user:pw@host:8123/db "
              "[default: PRESERVE_CLICKHOUSE__DSN or the embedded archive under the data dir]")
@click.option("--list", "list_saved", is_flag=True, help="list tables and saved queries, then exit")
def sql(query: str | None, fmt: str, dsn: str | None, list_saved: bool) -> None:
    """Run QUERY against the archive. QUERY may be a saved query's name (see --list) or '-' to read stdin.

    Tables (one per topic): requests, predicted_requests, routes, routing_table, instance_events, completions,
    token_density, forecasts, scale_commands, dead_letter; each row has kafka_partition/kafka_offset and is
    stored once even when Kafka redelivers. Works while the pipeline writes.

    Example: preserve sql "SELECT service, count() FROM completions GROUP BY service"
    """
    from sinks.analytics import SAVED_HELP, SAVED_QUERIES, query_df
    from sinks.exceptions import SinkError
    from sinks.schema import all_schemas

    if list_saved:
        click.echo("tables: " + ", ".join(s.table for s in all_schemas().values()))
        for name, text in SAVED_HELP.items():
            click.echo(f"  {name:<22} {text}")
        return
    if query is None:
        raise click.UsageError("give a query (or a saved query's name, see --list)")
    if query == "-":
        query = sys.stdin.read()
    word = query.strip()
    if word.replace("_", "").replace("-", "").isalnum() and word not in SAVED_QUERIES:
        raise click.UsageError(f"no saved query {word!r}; saved queries: {', '.join(sorted(SAVED_QUERIES))} "
                               "(or give a SQL statement)")
    target = resolve_dsn(dsn)
    try:
        df = query_df(target, query)
    except SinkError as e:
        raise click.ClickException(str(e)) from e
    except Exception as e:  # clickhouse errors: show the server's message, not a traceback
        from sinks.client import mask_dsn

        raise click.ClickException(str(e).replace(target, mask_dsn(target)).strip()[:2000]) from e
    click.echo(render(df, fmt))
