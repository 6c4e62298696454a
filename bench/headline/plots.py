"""Frontier plot of one headline trace: P99 TTFT against instance-hours, every run, PreServe highlighted."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.headline.targets import SLO_SHARE, is_baseline

__all__ = ["frontier_plot", "timeline_plot"]


def frontier_plot(doc: dict[str, Any], name: str, out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    families: dict[str, list[dict[str, Any]]] = {}
    for row in doc["results"]:
        key = row["policy"] if not is_baseline(row) else row["policy"].split(":", 1)[1]
        families.setdefault(key if is_baseline(row) else row["label"], []).append(row)
    for key, rows in sorted(families.items()):
        rows = sorted(rows, key=lambda r: r["instance_hours"])
        x = [r["instance_hours"] for r in rows]
        y = [max(r["p99_ttft_s"], 1e-3) for r in rows]
        meets = [r["slo_attainment"] >= SLO_SHARE for r in rows]
        if any(r["label"].startswith("preserve") or ":preserve" in r["label"] for r in rows):
            ax.scatter(x, y, s=90, marker="*", label=key, zorder=3)
        else:
            ax.plot(x, y, "o-" if key == "fixed" else "o", alpha=0.5, label=f"baselines: {key}", zorder=2)
        for xi, yi, ok in zip(x, y, meets, strict=True):
            if ok:
                ax.scatter([xi], [yi], s=160, facecolors="none", edgecolors="green", zorder=4)
    ax.set_yscale("log")
    ax.axhline(1.0, color="grey", ls="--", lw=0.8)
    ax.set_xlabel("instance-hours")
    ax.set_ylabel("P99 TTFT (s, log)")
    ax.set_title(f"{name}: every run (green ring: SLO met for >= 99% of requests)")
    ax.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def timeline_plot(runs: list[Any], arrivals: Any, name: str, out: Path, bin_s: float = 60.0) -> Path:
    """Provisioned instances over time for a few runs (``fleet.harness.EvalRun``), over the arrival rate."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, ax = plt.subplots(figsize=(9, 4.5))
    ax2 = ax.twinx()
    t = np.asarray(arrivals, dtype=float)
    edges = np.arange(0.0, (t.max() if len(t) else 0.0) + bin_s, bin_s)
    counts, _ = np.histogram(t, bins=edges)
    ax2.fill_between(edges[:-1], counts / bin_s, step="post", color="grey", alpha=0.25)
    ax2.set_ylabel(f"arrivals / s ({bin_s:g} s bins, grey)")
    for run in runs:
        samples = run.result.fleet_samples  # t, ready, starting, draining, gateway queue, in system
        ax.step(samples[:, 0], samples[:, 1] + samples[:, 2], where="post",
                label=f"{run.spec.label} ({run.row['instance_hours']:.2f} inst-h, "
                      f"SLO {100 * run.row['slo_attainment']:.2f}%)")
    ax.set_xlabel("time (s)")
    ax.set_ylabel("instances (ready + starting)")
    ax.set_title(f"{name}: provisioned instances against load")
    ax.set_zorder(ax2.get_zorder() + 1)
    ax.patch.set_visible(False)
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
