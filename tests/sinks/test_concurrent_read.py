"""`preserve sql` in another process while a writer process keeps archiving (the chdb single-owner constraint
must not bite: the embedded archive has no owner)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from sinks.analytics import query_df
from streams.settings import project_root

WRITER = """
import sys, time
from pathlib import Path
from sinks.clickhouse_sink import ClickHouseSink
from streams.records import Completion
dsn, stop = sys.argv[1], Path(sys.argv[2])
sink = ClickHouseSink(dsn)
off = 0
while not stop.exists() and off < 200_000:
    for _ in range(200):
        sink.add("completions", off % 3, off // 3, Completion(ts=1e9 + off, request_id=f"r{off}", service="s",
                 instance_id="i", arrival_ts=1e9, prompt_tokens=1, output_tokens=1, ttft_s=0.1, e2e_s=1.0))
        off += 1
    sink.flush()
    print(off, flush=True)
    time.sleep(0.2)
print("done", sink.rows_written, flush=True)
"""


def _sql_count(dsn: str) -> int:
    out = subprocess.run([sys.executable, "-m", "preserve_cli.main", "sql", "--dsn", dsn, "--format", "json",
                          "SELECT count() AS n, uniqExact(request_id) AS u FROM completions"],
                         capture_output=True, text=True, cwd=project_root(), timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    row = json.loads(out.stdout.strip())
    assert row["n"] == row["u"]  # never a doubled row, even mid-write
    return int(row["n"])


def test_sql_reads_while_a_writer_writes(tmp_path: Path) -> None:
    dsn = f"chdb://{tmp_path / 'archive'}"
    stop = tmp_path / "stop"
    writer = subprocess.Popen([sys.executable, "-c", WRITER, dsn, str(stop)], cwd=project_root(),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert writer.stdout is not None
        writer.stdout.readline()  # first batch is on disk
        counts = [_sql_count(dsn)]  # `preserve sql` in its own process
        mid = query_df(dsn, "SELECT count() AS n, uniqExact(request_id) AS u FROM completions")  # this process
        assert mid["n"].iloc[0] == mid["u"].iloc[0]
        counts.append(int(mid["n"].iloc[0]))
        assert writer.poll() is None, "the writer must still be running during the reads"
    finally:
        stop.touch()
        out, err = writer.communicate(timeout=60)
    assert writer.returncode == 0, err[-2000:]
    total = int(out.strip().splitlines()[-1].split()[-1])
    assert 0 < counts[0] <= counts[1] <= total
    # Everything the writer reported is visible afterwards, exactly once (read in this process).
    final = query_df(dsn, "SELECT count() AS n, uniqExact(request_id) AS u FROM completions")
    assert final["n"].iloc[0] == final["u"].iloc[0] == total
