"""``preserve trace ...`` (info, convert, attach-prompts) and ``preserve synth`` (ServeGen long traces)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from replay.servegen_synth import SynthConfig
    from replay.trace_schema import LoadedTrace

__all__ = ["trace", "synth"]

_FORMATS = ("azure", "mooncake", "burstgpt", "generic")
_SHOWN_BAD_ROWS = 10


def _load_options(fn: click.decorators.FC) -> click.decorators.FC:
    options = [
        click.option("--format", "fmt", type=click.Choice(_FORMATS), default=None,
                     help="Trace format (default: detected from the header / first line)."),
        click.option("--rate-scale", type=float, default=1.0, show_default=True,
                     help="Multiply the arrival rate: timestamps are divided by X, every request kept."),
        click.option("--start", "start_s", type=float, default=None,
                     help="Keep requests from this many seconds after the first one (recorded time, "
                          "applied before --rate-scale)."),
        click.option("--duration", "duration_s", type=float, default=None,
                     help="Keep this many seconds from --start (recorded time, before --rate-scale)."),
        click.option("--on-bad-row", type=click.Choice(["skip", "fail"]), default="skip", show_default=True,
                     help="Skip rows that fail to parse (listed with their line numbers) or stop at the first."),
        click.option("--bad-rows", "bad_rows_out", type=click.Path(dir_okay=False, path_type=Path), default=None,
                     help="Write every skipped or excluded row (line, kind, reason) to this CSV."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def _write_bad_rows(loaded: LoadedTrace, out: Path) -> None:
    import csv

    with open(out, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["line", "kind", "reason"])
        writer.writerows([r.line, "bad", r.reason] for r in loaded.bad_rows)
        writer.writerows([r.line, "excluded", r.reason] for r in loaded.excluded)


def _load(path: Path, fmt: str | None, rate_scale: float, start_s: float | None, duration_s: float | None,
          on_bad_row: str, bad_rows_out: Path | None) -> LoadedTrace:
    from replay.trace_loader import load_trace
    from replay.trace_schema import TraceFormatError

    try:
        loaded = load_trace(path, fmt=fmt, rate_scale=rate_scale, start_s=start_s, duration_s=duration_s,
                            on_bad_row=on_bad_row)  # type: ignore[arg-type]
    except (TraceFormatError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    for label, rows in (("bad rows skipped", loaded.bad_rows), ("rows excluded", loaded.excluded)):
        if rows:
            click.echo(f"{path}: {len(rows):,} {label}", err=True)
            for row in rows[:_SHOWN_BAD_ROWS]:
                click.echo(f"  {path}:{row.line}: {row.reason}", err=True)
            if len(rows) > _SHOWN_BAD_ROWS:
                click.echo(f"  ... and {len(rows) - _SHOWN_BAD_ROWS:,} more", err=True)
    if bad_rows_out is not None:
        _write_bad_rows(loaded, bad_rows_out)
    if loaded.outside_window:
        click.echo(f"{path}: {loaded.outside_window:,} requests outside --start/--duration", err=True)
    return loaded


@click.group()
def trace() -> None:
    """Inspect traces, attach prompts, convert formats.

    Formats (plain or gzip, detected automatically): Azure LLM inference 2023/2024 CSV, Mooncake JSONL,
    BurstGPT CSV, and the generic CSV of replay/README.md.
    """


@trace.command("info")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@_load_options
@click.option("--window", "window_s", type=float, default=50.0, show_default=True,
              help="Window (s) for the peak/mean rate.")
def info(path: Path, fmt: str | None, rate_scale: float, start_s: float | None, duration_s: float | None,
         on_bad_row: str, bad_rows_out: Path | None, window_s: float) -> None:
    """Rows, span, rate, token mean/p50/p99 and peak/mean rate of a trace."""
    from replay.trace_transform import trace_stats

    loaded = _load(path, fmt, rate_scale, start_s, duration_s, on_bad_row, bad_rows_out)
    if loaded.df.empty:
        raise click.ClickException(f"{path}: no requests")
    click.echo(f"format          {loaded.fmt}")
    for line in trace_stats(loaded.df, window_s).lines():
        click.echo(line)
    click.echo(f"bad rows        {len(loaded.bad_rows):,}  excluded {len(loaded.excluded):,}")


@trace.command("convert")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@_load_options
@click.option("--out", "out", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Output generic CSV (.csv or .csv.gz).")
def convert(path: Path, fmt: str | None, rate_scale: float, start_s: float | None, duration_s: float | None,
            on_bad_row: str, bad_rows_out: Path | None, out: Path) -> None:
    """Convert any supported trace to the generic CSV (window and rate scale applied)."""
    from replay.trace_writer import write_trace

    loaded = _load(path, fmt, rate_scale, start_s, duration_s, on_bad_row, bad_rows_out)
    write_trace(loaded.df, out)
    click.echo(f"wrote {len(loaded.df):,} requests to {out}")


@trace.command("attach-prompts")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@_load_options
@click.option("--prompts", "prompt_files", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              multiple=True, help="Prompts JSONL (repeatable; default: every prompts/*.jsonl.gz of the data).")
@click.option("--lengths", type=click.Choice(["trace", "corpus"]), default="trace", show_default=True,
              help="trace: keep the trace's output lengths; corpus: use the attached pair's response length.")
@click.option("--match", type=click.Choice(["rank", "nearest"]), default="rank", show_default=True,
              help="Match on prompt-length quantile (rank) or absolute prompt length (nearest).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Output generic CSV with prompt, response_tokens_corpus and model columns.")
def attach_prompts_cmd(path: Path, fmt: str | None, rate_scale: float, start_s: float | None,
                       duration_s: float | None, on_bad_row: str, bad_rows_out: Path | None, prompt_files: tuple[Path, ...], lengths: str,
                       match: str, seed: int, out: Path) -> None:
    """Give every request of a trace a real prompt/response pair matched on input length."""
    from replay.length_pool import load_prompt_corpus
    from replay.prompt_attach import attach_prompts
    from replay.trace_schema import TraceFormatError
    from replay.trace_writer import write_trace
    from streams.settings import data_path

    files = list(prompt_files) or sorted(data_path("prompts").glob("*.jsonl.gz"))
    if not files:
        raise click.ClickException(f"no prompt corpus: pass --prompts FILE (none under {data_path('prompts')})")
    loaded = _load(path, fmt, rate_scale, start_s, duration_s, on_bad_row, bad_rows_out)
    try:
        corpus = load_prompt_corpus(files)
    except TraceFormatError as exc:
        raise click.ClickException(str(exc)) from exc
    df = attach_prompts(loaded.df, corpus, lengths=lengths, seed=seed, match=match)  # type: ignore[arg-type]
    write_trace(df, out)
    click.echo(f"wrote {len(df):,} requests with prompts from {len(corpus):,} pairs "
               f"({df['prompt'].nunique():,} distinct) to {out}")


@click.command("synth", context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--servegen", "servegen", required=True, multiple=True,
              help="ServeGen model folder with chunk-N-trace.csv[.gz] files, or a model name under "
                   "$PRESERVE_DATA/traces/servegen (m-small, m-mid). Repeatable: the clients of every folder are "
                   "pooled (with --services).")
@click.option("--services", type=int, default=None,
              help="LMaaS day: split the clients deterministically into N services, service k being serving "
                   "model k of --prompts; every request carries a real prompt of its model with that model's real "
                   "output length (columns prompt and model). Without it: one service, lengths from --lengths.")
@click.option("--prompts", "prompt_files", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              multiple=True, help="Prompts JSONL for --services (repeatable; default: every prompts/*.jsonl.gz "
                                  "of the data).")
@click.option("--models", default=None,
              help="Comma-separated serving models of the services, one per service (default: the N models "
                   "with the most rows in --prompts).")
@click.option("--start-hour", type=float, default=0.0, show_default=True,
              help="First recorded hour to synthesise (hour 0 = the recording's first window). Day 1 and day 2 "
                   "of one workload: --start-hour 0 and --start-hour 24 with the same --seed.")
@click.option("--hours", type=float, default=24.0, show_default=True, help="Recorded hours to synthesise.")
@click.option("--rate-scale", type=float, default=1.0, show_default=True,
              help="Multiply every client's arrival rate by X (X times as many arrivals).")
@click.option("--time-scale", type=float, default=1.0, show_default=True,
              help="Play T times faster: each 600 s window lasts 600/T s at its own per-second rate. Default 1: "
                   "trace time (a compressed day also needs eval --time-scale T for the cold start and windows).")
@click.option("--lengths", "lengths_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              default=None, help="One service: token lengths from this trace or prompts JSONL (default: the Azure "
                                 "conv trace).")
@click.option("--service", default=None, help="One service: its name (default: the ServeGen folder name).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Output generic CSV (.csv or .csv.gz).")
def synth(servegen: tuple[str, ...], services: int | None, prompt_files: tuple[Path, ...], models: str | None,
          start_hour: float, hours: float, rate_scale: float, time_scale: float, lengths_file: Path | None,
          service: str | None, seed: int, out: Path) -> None:
    """Synthesise a long per-request trace from ServeGen per-client rates, burstiness and arrival laws.

    Writes the generic CSV of replay/README.md; the same seed gives the same trace.

    \b
    Examples:
      preserve synth --servegen m-small --hours 24 --rate-scale 0.02 --out day.csv.gz
      preserve synth --servegen m-small --servegen m-mid --services 4 --hours 24 --rate-scale 0.01 \\
        --start-hour 24 --seed 0 --out lmaas_day2.csv.gz
    """
    from replay.servegen_synth import SynthConfig
    from replay.trace_schema import TraceFormatError

    dirs = [_servegen_dir(s) for s in servegen]
    if services is None and (prompt_files or models):
        raise click.BadParameter("--prompts and --models describe the services of --services N", param_hint="--services")
    if services is not None and (lengths_file or service):
        raise click.BadParameter("with --services, lengths come from --prompts and names from the models",
                                 param_hint="--lengths/--service")
    if services is None and len(dirs) > 1:
        raise click.BadParameter("several --servegen folders need --services N", param_hint="--servegen")
    if services is not None and services < 1:
        raise click.BadParameter("must be >= 1", param_hint="--services")
    try:
        cfg = SynthConfig(start_hour=start_hour, hours=hours, rate_scale=rate_scale, time_scale=time_scale,
                          service=service or dirs[0].name)
        if services is None:
            n, span, took, recorded_h = _run_synth(dirs[0], cfg, lengths_file, seed, out)
        else:
            chosen = [m.strip() for m in models.split(",") if m.strip()] if models else None
            n, span, took, recorded_h = _run_lmaas(dirs, cfg, services, list(prompt_files), chosen, seed, out)
    except (TraceFormatError, ValueError, FileNotFoundError) as exc:
        raise click.ClickException(str(exc)) from exc
    if start_hour + hours > recorded_h:
        click.echo(f"warning: the recording covers {recorded_h:g} h; hours after that have no arrivals", err=True)
    click.echo(f"wrote {n:,} requests over {span:,.0f} s ({n / max(span, 1e-9):.2f} req/s, "
               f"synthesised in {took:.1f} s) to {out}")


def _servegen_dir(name: str) -> Path:
    from streams.settings import data_path

    path = Path(name)
    if not path.is_dir():
        path = data_path("traces", "servegen", name)
    if not path.is_dir():
        raise click.BadParameter(f"{name!r} is neither a folder nor a model under {path.parent}",
                                 param_hint="--servegen")
    return path


def _run_lmaas(dirs: list[Path], cfg: SynthConfig, services: int, prompt_files: list[Path],
               models: list[str] | None, seed: int, out: Path) -> tuple[int, float, float, float]:
    """The LMaaS day: pooled clients split into services, prompts per serving model (see replay/lmaas_synth)."""
    import pandas as pd

    from replay.length_pool import load_prompt_corpus
    from replay.lmaas_synth import synthesize_lmaas
    from replay.servegen_io import load_servegen
    from streams.settings import data_path

    files = prompt_files or sorted(data_path("prompts").glob("*.jsonl.gz"))
    if not files:
        raise FileNotFoundError(f"no prompt corpus: pass --prompts FILE (none under {data_path('prompts')})")
    df, result = _synthesise(
        lambda: pd.concat([load_servegen(d).assign(source=d.name) for d in dirs], ignore_index=True),
        "reading prompts", lambda: load_prompt_corpus(files),
        lambda clients, corpus: synthesize_lmaas(clients, cfg, corpus, services, models, seed), cfg, out)
    for name, part in df.groupby("service", sort=False):
        click.echo(f"  service {name}: {len(part):,} requests, mean output {part['output_tokens'].mean():.0f} tokens",
                   err=True)
    return result


def _run_synth(servegen_dir: Path, cfg: SynthConfig, lengths_file: Path | None, seed: int,
               out: Path) -> tuple[int, float, float, float]:
    """Read, synthesise, write; returns (requests, span s, synthesis s, recorded hours)."""
    from replay.length_pool import load_length_pool
    from replay.servegen_io import load_servegen
    from replay.servegen_synth import synthesize_trace

    return _synthesise(lambda: load_servegen(servegen_dir), "reading lengths", lambda: load_length_pool(lengths_file),
                       lambda clients, lengths: synthesize_trace(clients, cfg, lengths, seed), cfg, out)[1]


def _synthesise(read_clients: Callable[[], Any], pool_label: str, read_pool: Callable[[], Any],
                synthesize: Callable[[Any, Any], Any], cfg: SynthConfig,
                out: Path) -> tuple[Any, tuple[int, float, float, float]]:
    """The four steps with a progress bar; returns the trace and (requests, span s, synthesis s, recorded hours)."""
    from tqdm import tqdm

    from replay.trace_writer import write_trace

    with tqdm(total=4, desc="synth", unit="step") as bar:
        bar.set_postfix_str("reading clients")
        clients = read_clients()
        bar.update()
        bar.set_postfix_str(pool_label)
        pool = read_pool()
        bar.update()
        bar.set_postfix_str("synthesising")
        started = time.perf_counter()
        df = synthesize(clients, pool)
        took = time.perf_counter() - started
        bar.update()
        bar.set_postfix_str(f"writing {len(df):,} requests")
        write_trace(df, out)
        bar.update()
    recorded_h = float(clients["window_start_s"].max() + cfg.window_s) / 3600.0
    span = float(df["arrival_s"].iloc[-1]) if len(df) else 0.0
    return df, (len(df), span, took, recorded_h)

