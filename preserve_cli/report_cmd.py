"""`preserve report`: the archive's analytics (saved queries) as tables, plus PNG plots."""

from __future__ import annotations

from pathlib import Path

import click

__all__ = ["report"]


@click.command()
@click.option("--dsn", default=None, help="chdb:///path or http(s)://user:pw@host:8123/db "
              "[default: PRESERVE_CLICKHOUSE__DSN or the embedded archive under the data dir]")
@click.option("--out", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="folder for the PNG plots [default: <data dir>/report]")
@click.option("--no-plots", is_flag=True, help="print the tables only")
@click.option("--max-rows", type=int, default=20, show_default=True, help="rows shown per table")
def report(dsn: str | None, out: Path | None, no_plots: bool, max_rows: int) -> None:
    """Per-minute P50/P99 TTFT and latency, instances over time, predictor error, scaler decisions.

    Reads the archive while the pipeline writes (embedded default) or from a ClickHouse server.
    """
    from sinks.client import mask_dsn
    from sinks.exceptions import SinkError
    from sinks.report import print_report, report_frames, write_plots
    from streams.settings import load_settings

    settings = load_settings()
    target = dsn or settings.clickhouse_dsn()
    try:
        frames = report_frames(target)
    except SinkError as e:
        raise click.ClickException(str(e)) from e
    except Exception as e:  # clickhouse errors: the message, not a traceback
        raise click.ClickException(str(e).replace(target, mask_dsn(target))[:2000]) from e
    click.echo(f"archive: {mask_dsn(target)}")
    print_report(target, frames, max_rows=max_rows)
    if not no_plots:
        paths = write_plots(frames, out or settings.data_dir / "report")
        click.echo("\nplots: " + (", ".join(str(p) for p in paths) if paths else "none (no data yet)"))
