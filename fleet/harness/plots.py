"""Plots of one evaluation: latency CDFs per policy, instances and load over time, the cost-latency frontier.

matplotlib with the Agg backend (no display); imported only when ``--plots`` is given.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fleet.harness.runner import EvalRun
from fleet.metrics import request_latencies
from fleet.sim_inputs import SimResult

__all__ = ["write_plots"]


def _plt():  # type: ignore[no-untyped-def]
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _res(run: EvalRun) -> SimResult:
    if run.result is None:
        raise ValueError("plots need the runs' results: call run_eval(..., keep_results=True)")
    return run.result


def _cdf(ax, values: np.ndarray, label: str) -> None:  # type: ignore[no-untyped-def]
    v = np.sort(values[~np.isnan(values)])
    if v.size:
        ax.plot(v, np.arange(1, v.size + 1) / v.size, label=label, lw=1.2)


def latency_cdfs(runs: list[EvalRun], out: Path) -> Path:
    plt = _plt()
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.5))
    for run in runs:
        lat = request_latencies(_res(run))
        for ax, key in zip(axes, ("ttft", "tpot", "e2e"), strict=True):
            _cdf(ax, lat[key], run.spec.label)
    for ax, title in zip(axes, ("TTFT (s)", "TPOT (s)", "end-to-end latency (s)"), strict=True):
        ax.set_xscale("log")
        ax.set_xlabel(title)
        ax.set_ylabel("CDF")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=6, loc="lower right")
    path = out / "latency_cdf.png"
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _mean_ready_kv(samples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per sample time, the mean KV utilisation of READY instances (columns as in ``SimResult``)."""
    ready = samples[samples[:, 2] == 1] if samples.size else samples
    if not ready.size:
        return np.empty(0), np.empty(0)
    times, inverse = np.unique(ready[:, 0], return_inverse=True)
    sums = np.bincount(inverse, weights=ready[:, 5])
    return times, sums / np.bincount(inverse)


def timeline(runs: list[EvalRun], out: Path) -> Path:
    """Provisioned (ready + starting) instances of each policy, the load (requests in the system, arrival rate)
    and the mean KV utilisation of the ready instances."""
    plt = _plt()
    fig, (ax1, ax2, ax3) = plt.subplots(3, 1, figsize=(12, 10), sharex=True)
    for run in runs:
        fs = _res(run).fleet_samples
        if fs.size:
            ax1.step(fs[:, 0], fs[:, 1] + fs[:, 2], where="post", label=run.spec.label, lw=1)
            ax2.plot(fs[:, 0], fs[:, 5], lw=0.8, label=run.spec.label)
        t, kv = _mean_ready_kv(_res(run).instance_samples)
        if t.size:
            ax3.plot(t, kv, lw=0.8, label=run.spec.label)
    if runs:
        arrival = _res(runs[0]).arrival
        if arrival.size:
            bins = np.arange(0.0, arrival.max() + 60.0, 60.0)
            counts, edges = np.histogram(arrival, bins=bins)
            ax2b = ax2.twinx()
            ax2b.plot(edges[:-1], counts / 60.0, color="black", lw=1.5, alpha=0.5)
            ax2b.set_ylabel("arrivals / s (black, 60 s bins)")
    ax1.set_ylabel("instances (ready + starting)")
    ax2.set_ylabel("requests in system")
    ax3.set_ylabel("mean KV utilisation (ready)")
    ax3.set_xlabel("time (s)")
    ax1.legend(fontsize=6, ncol=2)
    for ax in (ax1, ax2, ax3):
        ax.grid(alpha=0.3)
    path = out / "instances_and_load.png"
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def frontier(runs: list[EvalRun], out: Path) -> Path:
    """P99 TTFT and P99 e2e against instance-hours: every run a point, each scaler family a curve."""
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(13, 5))
    families: dict[str, list[EvalRun]] = {}
    for run in runs:
        families.setdefault(f"{run.spec.router}:{run.spec.scaler}", []).append(run)
    for fam, members in sorted(families.items()):
        members = sorted(members, key=lambda r: r.row["instance_hours"])
        x = [r.row["instance_hours"] for r in members]
        for ax, key in zip(axes, ("p99_ttft_s", "p99_e2e_s"), strict=True):
            y = [r.row[key] if r.row[key] is not None else np.nan for r in members]
            ax.plot(x, y, marker="o", ms=4, lw=1, label=fam)
    for ax, title in zip(axes, ("P99 TTFT (s)", "P99 end-to-end (s)"), strict=True):
        ax.set_yscale("log")
        ax.set_xlabel("instance-hours")
        ax.set_ylabel(title)
        ax.grid(alpha=0.3, which="both")
    axes[0].legend(fontsize=7)
    path = out / "frontier.png"
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def write_plots(runs: list[EvalRun], out_dir: str | Path) -> list[Path]:
    """Write the three figures; ``runs`` must come from ``run_eval(..., keep_results=True)``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    return [latency_cdfs(runs, out), timeline(runs, out), frontier(runs, out)]
