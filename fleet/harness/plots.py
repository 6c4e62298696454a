"""Plots of evaluations: latency CDFs, instances and load over time, the cost-latency frontier.

The one place for these figures: ``preserve eval --plots`` (:func:`write_plots`) and the issue-7 headline
(``bench/headline``: :func:`frontier` on a results JSON's rows, :func:`timeline` on re-simulated runs) both
draw with the functions here. matplotlib with the Agg backend (no display); imported only when plotting.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fleet.harness.runner import EvalRun
from fleet.metrics import request_latencies
from fleet.sim_inputs import SimResult

__all__ = ["write_plots", "latency_cdfs", "timeline", "frontier"]

Row = dict[str, Any]


def _plt():  # type: ignore[no-untyped-def]
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    _plt().close(fig)
    return path


def _res(run: EvalRun) -> SimResult:
    if run.result is None:
        raise ValueError("plots need the runs' results: call run_eval(..., keep_results=True)")
    return run.result


def _cdf(ax, values: np.ndarray, label: str) -> None:  # type: ignore[no-untyped-def]
    v = np.sort(values[~np.isnan(values)])
    if v.size:
        ax.plot(v, np.arange(1, v.size + 1) / v.size, label=label, lw=1.2)


def latency_cdfs(runs: list[EvalRun], path: Path) -> Path:
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
    return _save(fig, path)


def _mean_ready_kv(samples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per sample time, the mean KV utilisation of READY instances (columns as in ``SimResult``)."""
    ready = samples[samples[:, 2] == 1] if samples.size else samples
    if not ready.size:
        return np.empty(0), np.empty(0)
    times, inverse = np.unique(ready[:, 0], return_inverse=True)
    sums = np.bincount(inverse, weights=ready[:, 5])
    return times, sums / np.bincount(inverse)


def _run_label(run: EvalRun) -> str:
    row = run.row
    if row.get("instance_hours") is None or row.get("slo_attainment") is None:
        return run.spec.label
    return f"{run.spec.label} ({row['instance_hours']:.2f} inst-h, SLO {100 * row['slo_attainment']:.2f}%)"


def timeline(runs: list[EvalRun], path: Path, title: str = "", bin_s: float = 60.0) -> Path:
    """Provisioned (ready + starting) instances of each run over the arrival rate, the requests in the system,
    and the mean KV utilisation of the ready instances."""
    plt = _plt()
    fig, (ax1, ax2, ax3) = plt.subplots(3, 1, figsize=(12, 10), sharex=True)
    if runs and _res(runs[0]).arrival.size:
        arrival = _res(runs[0]).arrival
        edges = np.arange(0.0, arrival.max() + bin_s, bin_s)
        counts, _ = np.histogram(arrival, bins=edges)
        rate_ax = ax1.twinx()
        rate_ax.fill_between(edges[:-1], counts / bin_s, step="post", color="grey", alpha=0.25)
        rate_ax.set_ylabel(f"arrivals / s ({bin_s:g} s bins, grey)")
        ax1.set_zorder(rate_ax.get_zorder() + 1)
        ax1.patch.set_visible(False)
    for k, run in enumerate(runs):
        fs = _res(run).fleet_samples  # t, ready, starting, draining, gateway queue, in system
        if fs.size:  # the first run on top and thicker: where the fleets agree, it stays visible
            ax1.step(fs[:, 0], fs[:, 1] + fs[:, 2], where="post", label=_run_label(run), lw=2.4 if k == 0 else 1.2,
                     zorder=len(runs) - k)
            ax2.plot(fs[:, 0], fs[:, 5], lw=0.8, label=run.spec.label)
        t, kv = _mean_ready_kv(_res(run).instance_samples)
        if t.size:
            ax3.plot(t, kv, lw=0.8, label=run.spec.label)
    ax1.set_ylabel("instances (ready + starting)")
    ax2.set_ylabel("requests in system")
    ax3.set_ylabel("mean KV utilisation (ready)")
    ax3.set_xlabel("time (s)")
    ax1.set_title(title or "provisioned instances against load")
    ax1.legend(fontsize=7, loc="upper left")
    for ax in (ax1, ax2, ax3):
        ax.grid(alpha=0.3)
    return _save(fig, path)


def frontier(rows: Sequence[Row], path: Path, title: str = "", family: Callable[[Row], str] | None = None,
             highlight: Callable[[Row], bool] | None = None, slo_share: float | None = None) -> Path:
    """P99 TTFT and P99 end-to-end against instance-hours: every run a point, each family a curve.

    :param rows: result rows of ``run_eval`` (``EvalReport.doc["results"]`` or a results JSON's).
    :param family: the curve a row belongs to (default: its ``router:scaler``).
    :param highlight: rows drawn as stars, not on a curve (the system under test).
    :param slo_share: ring the runs whose SLO attainment is at least this.
    """
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(14, 5.5))
    families: dict[str, list[Row]] = {}
    for row in rows:
        families.setdefault(family(row) if family else str(row["policy"]), []).append(row)
    for name, members in sorted(families.items()):
        members = sorted(members, key=lambda r: r["instance_hours"])
        x = [r["instance_hours"] for r in members]
        starred = highlight is not None and all(highlight(r) for r in members)
        for ax, key in zip(axes, ("p99_ttft_s", "p99_e2e_s"), strict=True):
            y = [max(r[key], 1e-3) if r[key] is not None else np.nan for r in members]
            if starred:
                ax.scatter(x, y, s=110, marker="*", label=name, zorder=3)
            else:
                ax.plot(x, y, marker="o", ms=4, lw=1, alpha=0.7, label=name, zorder=2)
            if slo_share is not None:
                ok = [(xi, yi) for xi, yi, r in zip(x, y, members, strict=True)
                      if r.get("slo_attainment") is not None and r["slo_attainment"] >= slo_share]
                if ok:
                    ax.scatter(*zip(*ok, strict=True), s=170, facecolors="none", edgecolors="green", zorder=4)
    for ax, label in zip(axes, ("P99 TTFT (s, log)", "P99 end-to-end (s, log)"), strict=True):
        ax.set_yscale("log")
        ax.set_xlabel("instance-hours")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3, which="both")
    axes[0].axhline(1.0, color="grey", ls="--", lw=0.8)
    ring = f" (green ring: SLO met for >= {100 * slo_share:g}% of requests)" if slo_share is not None else ""
    fig.suptitle((title or "cost-latency frontier") + ring)
    axes[0].legend(fontsize=7)
    return _save(fig, path)


def write_plots(runs: list[EvalRun], out_dir: str | Path) -> list[Path]:
    """Write the three figures; ``runs`` must come from ``run_eval(..., keep_results=True)``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    return [latency_cdfs(runs, out / "latency_cdf.png"), timeline(runs, out / "instances_and_load.png"),
            frontier([r.row for r in runs], out / "frontier.png")]
