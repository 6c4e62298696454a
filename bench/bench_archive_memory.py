"""Archive writer memory: RSS of a process doing many small Parquet inserts, per pyarrow memory pool.

The soak (docs/reliability.md) saw the archive worker's RSS grow ~10 MB/min at any rate. This isolates the
writer: ``--inserts`` batches of ``--rows`` completions over 4 partitions through :class:`ParquetStore`
(compaction included), once per pool, each in a fresh process with ``ARROW_DEFAULT_MEMORY_POOL`` set (pyarrow reads
it once at start, and its C++ writers ignore a pool switched later). `preserve` sets ``system`` for every command
(``preserve_cli/main.py``); ``mimalloc`` is pyarrow's own default, the baseline. Run:

    .venv/bin/python -m bench.bench_archive_memory [--inserts 8000] [--rows 25]

Prints RSS (MiB, as the soak reports it) at start, peak and end per pool, and the end-RSS growth of the system
pool relative to mimalloc.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.soak.proc_stats import sample_tree

__all__ = ["main"]


def _rss_mb() -> float:
    """This process's RSS in MiB, read as the soak reads it."""
    return sample_tree(os.getpid()).rss_mb


def _child(pool: str, inserts: int, rows: int) -> dict[str, float]:
    """Runs in a fresh process: ``inserts`` small files through the store with the given pool."""
    import pyarrow as pa

    import sinks.parquet_store as ps

    if pa.default_memory_pool().backend_name != pool:
        raise SystemExit(f"pyarrow started with {pa.default_memory_pool().backend_name}, not {pool}")
    schema = ps.all_schemas()["completions"]
    store = ps.ParquetStore(ps.ParquetStoreConfig(root=Path(tempfile.mkdtemp(prefix="archive-mem-"))))
    store.setup()
    start, peak, offset = _rss_mb(), 0.0, 0
    t0 = time.perf_counter()
    for _ in range(inserts // 4):
        for part in range(4):
            batch = [dict(v=1, ts=time.time(), request_id=f"r{offset + j}", service="svc-0", instance_id="i0",
                          arrival_ts=1.0, prompt_tokens=100 + j, output_tokens=50, predicted_tokens=60.0,
                          ttft_s=0.1, e2e_s=1.0, preemptions=0, kafka_partition=part, kafka_offset=offset + j)
                     for j in range(rows)]
            offset += rows
            store.insert(schema, batch, part)
        peak = max(peak, _rss_mb())
    return {"pool": pa.default_memory_pool().backend_name, "start_mb": start, "peak_mb": peak,
            "end_mb": _rss_mb(), "inserts_per_s": inserts / (time.perf_counter() - t0)}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--inserts", type=int, default=8000, help="files written per pool (default 8000)")
    ap.add_argument("--rows", type=int, default=25, help="rows per file (default 25)")
    ap.add_argument("--pools", default="mimalloc,system", help="pools to compare; the first is the baseline")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.child:
        print(json.dumps(_child(a.child, a.inserts, a.rows)))
        return
    results = []
    for pool in a.pools.split(","):
        out = subprocess.run([sys.executable, "-m", "bench.bench_archive_memory", "--child", pool,
                              "--inserts", str(a.inserts), "--rows", str(a.rows)],
                             check=True, capture_output=True, text=True,
                             env={**os.environ, "ARROW_DEFAULT_MEMORY_POOL": pool})
        results.append(json.loads(out.stdout.strip().splitlines()[-1]))
    print(f"{'pool':<10} {'start MiB':>9} {'peak MiB':>9} {'end MiB':>9} {'growth MiB':>10} {'inserts/s':>10}")
    for r in results:
        print(f"{r['pool']:<10} {r['start_mb']:>9.1f} {r['peak_mb']:>9.1f} {r['end_mb']:>9.1f} "
              f"{r['end_mb'] - r['start_mb']:>10.1f} {r['inserts_per_s']:>10.0f}")
    base, *rest = results
    for r in rest:
        g0, g1 = base["end_mb"] - base["start_mb"], r["end_mb"] - r["start_mb"]
        print(f"{r['pool']} vs {base['pool']}: growth {g1:.1f} vs {g0:.1f} MiB "
              f"({g1 / g0:.2f}x), speed {r['inserts_per_s'] / base['inserts_per_s']:.2f}x")


if __name__ == "__main__":
    main()
