"""Frontier plot of one headline trace: P99 TTFT against instance-hours, every run, PreServe highlighted."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.headline.targets import SLO_SHARE, is_baseline

__all__ = ["frontier_plot"]


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
