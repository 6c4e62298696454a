"""The analytics report: the saved queries as tables, and PNG plots of them (matplotlib, Agg backend)."""

from __future__ import annotations

from pathlib import Path

import click
import pandas as pd

from sinks.analytics import SAVED_HELP, SAVED_QUERIES, query_df

__all__ = ["report_frames", "print_report", "write_plots"]


def report_frames(dsn: str) -> dict[str, pd.DataFrame]:
    return {name: query_df(dsn, name) for name in SAVED_QUERIES}


def _table(df: pd.DataFrame, max_rows: int) -> str:
    if df.empty:
        return "  (no rows)"
    shown = df if len(df) <= max_rows else pd.concat([df.head(max_rows // 2), df.tail(max_rows // 2)])
    with pd.option_context("display.width", 200, "display.max_columns", 20, "display.max_colwidth", 60,
                           "display.float_format", "{:.3f}".format):
        text = shown.to_string(index=False)
    more = f"\n  ... {len(df) - len(shown)} more rows (preserve sql ... for all)" if len(shown) < len(df) else ""
    return "\n".join("  " + line for line in text.splitlines()) + more


def print_report(dsn: str, frames: dict[str, pd.DataFrame] | None = None, max_rows: int = 20) -> None:
    frames = frames if frames is not None else report_frames(dsn)
    for name, df in frames.items():
        click.echo(f"\n== {name}: {SAVED_HELP[name]} ==")
        click.echo(_table(df, max_rows))


def _per_service(ax, df: pd.DataFrame, x: str, ys: list[str], ylabel: str) -> None:  # type: ignore[no-untyped-def]
    for service, g in df.groupby("service"):
        for y in ys:
            ax.plot(g[x], g[y], label=f"{service} {y}", drawstyle="steps-post" if "instances" in ys else "default")
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)


def write_plots(frames: dict[str, pd.DataFrame], out: Path) -> list[Path]:
    """One PNG per non-empty saved query; returns the paths written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []

    def save(fig, name: str) -> None:  # type: ignore[no-untyped-def]
        path = out / f"{name}.png"
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)

    lat = frames.get("latency_per_minute", pd.DataFrame())
    if not lat.empty:
        fig, (a1, a2) = plt.subplots(2, 1, figsize=(10, 7), sharex=True)
        _per_service(a1, lat, "minute", ["p50_ttft_s", "p99_ttft_s"], "TTFT (s)")
        _per_service(a2, lat, "minute", ["p50_e2e_s", "p99_e2e_s"], "end-to-end latency (s)")
        save(fig, "latency_per_minute")
    inst = frames.get("instances_over_time", pd.DataFrame())
    if not inst.empty:
        fig, ax = plt.subplots(figsize=(10, 4))
        _per_service(ax, inst, "minute", ["instances", "ready"], "instances")
        save(fig, "instances_over_time")
    err = frames.get("predictor_error", pd.DataFrame())
    if not err.empty:
        fig, ax = plt.subplots(figsize=(8, 4))
        labels = [f"{s}\n{p}" for s, p in zip(err["service"], err["predictor"], strict=True)]
        ax.bar(labels, err["mae_tokens"], label="MAE")
        ax.bar(labels, err["bias_tokens"], alpha=0.5, label="bias")
        ax.set_ylabel("output tokens")
        ax.legend()
        save(fig, "predictor_error")
    dec = frames.get("scaler_decisions", pd.DataFrame())
    if not dec.empty:
        fig, ax = plt.subplots(figsize=(10, 4))
        _per_service(ax, dec, "time", ["target_instances"], "target instances")
        save(fig, "scaler_decisions")
    return written
