"""Archive round trip on the embedded store (real chdb reading real Parquet files), idempotent redelivery,
batches cleared on failure, backpressure on write errors."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from sinks.analytics import query_df
from sinks.base_sink import BaseSink, SinkBatch
from sinks.clickhouse_sink import ClickHouseSink
from sinks.exceptions import BackpressureError
from sinks.schema import table_name
from streams.records import RequestEvent


def _dsn(tmp_path: Path) -> str:
    return f"chdb://{tmp_path / 'archive'}"


def test_round_trip_every_topic(tmp_path: Path, sample_items: list) -> None:
    sink = ClickHouseSink(_dsn(tmp_path))
    for item in sample_items:
        sink.add(*item)
    assert sink.flush() == len(sample_items)
    assert sink.buffered == 0
    want = Counter(topic for topic, *_ in sample_items)
    for topic, n in want.items():
        got = query_df(_dsn(tmp_path), f"SELECT count() AS n FROM {table_name(topic)}")["n"].iloc[0]
        assert got == n, topic
    comp = query_df(_dsn(tmp_path), "SELECT request_id, e2e_s FROM completions ORDER BY request_id")
    src = {r.request_id: r.e2e_s for t, _, _, r in sample_items if t == "completions"}
    assert dict(zip(comp["request_id"], comp["e2e_s"], strict=True)) == pytest.approx(src)
    # Prompts are not archived by default; their hash is.
    req = query_df(_dsn(tmp_path), "SELECT countIf(prompt IS NULL) AS no_text, countIf(prompt_hash != '') AS hashed "
                                   "FROM requests")
    assert req["no_text"].iloc[0] == req["hashed"].iloc[0] == want["requests"]


def test_redelivery_is_idempotent(tmp_path: Path, sample_items: list) -> None:
    sink = ClickHouseSink(_dsn(tmp_path))
    for item in sample_items:
        sink.add(*item)
    sink.flush()
    first = sink.rows_written
    # The same batch again, then an overlapping one (redelivery from the middle plus new offsets).
    for item in sample_items:
        sink.add(*item)
    sink.flush()
    assert sink.rows_written == first
    part = next(it[1] for it in sample_items if it[0] == "requests")
    reqs = [it for it in sample_items if it[0] == "requests" and it[1] == part]
    extra = RequestEvent(ts=reqs[-1][3].ts, request_id="new", service="svc-a", prompt_tokens=1)
    for item in reqs[len(reqs) // 2:]:
        sink.add(*item)
    sink.add("requests", part, reqs[-1][2] + 1, extra)
    sink.flush()
    assert sink.rows_written == first + 1
    df = query_df(_dsn(tmp_path), "SELECT count() AS n, uniqExact(request_id) AS u FROM requests")
    assert df["n"].iloc[0] == df["u"].iloc[0] == sum(1 for it in sample_items if it[0] == "requests") + 1


def test_compaction_merges_files_without_losing_or_doubling_rows(tmp_path: Path) -> None:
    from sinks.client import open_store

    sink = ClickHouseSink(_dsn(tmp_path), store=open_store(_dsn(tmp_path), compact_files=4))
    for off in range(30):  # 30 single-row flushes -> compaction kicks in repeatedly
        sink.add("requests", 0, off, RequestEvent(ts=1.0 + off, request_id=f"r{off}", service="s", prompt_tokens=1))
        sink.flush()
    files = list((tmp_path / "archive" / "parquet" / "requests").glob("*.parquet"))
    assert len(files) <= 4
    df = query_df(_dsn(tmp_path), "SELECT count() AS n, min(kafka_offset) AS lo, max(kafka_offset) AS hi FROM requests")
    assert (df["n"].iloc[0], df["lo"].iloc[0], df["hi"].iloc[0]) == (30, 0, 29)


def test_write_failure_is_backpressure_and_batches_are_cleared(tmp_path: Path) -> None:
    sink = ClickHouseSink(_dsn(tmp_path))
    table_dir = tmp_path / "archive" / "parquet" / "requests"
    table_dir.rmdir()
    table_dir.write_text("not a directory")  # every write now fails with an OSError
    sink.add("requests", 0, 0, RequestEvent(ts=1.0, request_id="r", service="s", prompt_tokens=1))
    with pytest.raises(BackpressureError) as err:
        sink.flush()
    assert err.value.retry_after > 0
    assert sink.buffered == 0


class _Recorder(BaseSink):
    """In-memory sink: records batches, fails on a chosen topic."""

    def __init__(self, fail_topic: str | None = None) -> None:
        super().__init__()
        self.fail_topic = fail_topic
        self.seen: list[tuple[str, int, list[int]]] = []

    def write(self, batch: SinkBatch) -> None:
        if batch.topic == self.fail_topic:
            raise BackpressureError(1.0, "test")
        self.seen.append((batch.topic, batch.partition, [it.offset for it in batch.items]))


def test_batches_are_per_topic_partition_and_flushing_twice_writes_once() -> None:
    sink = _Recorder()
    rec = RequestEvent(ts=1.0, request_id="r", service="s", prompt_tokens=1)
    for off, part in [(0, 0), (0, 1), (1, 0)]:
        sink.add("requests", part, off, rec)
    assert sink.flush() == 3
    assert sorted(sink.seen) == [("requests", 0, [0, 1]), ("requests", 1, [0])]
    assert sink.flush() == 0
    assert len(sink.seen) == 2
    bad = _Recorder(fail_topic="requests")
    bad.add("requests", 0, 0, rec)
    with pytest.raises(BackpressureError):
        bad.flush()
    assert bad.buffered == 0


@pytest.mark.parametrize(("ranges", "union"), [
    ([], []),
    ([(5, 9), (0, 4)], [(0, 9)]),
    ([(0, 10), (3, 4), (20, 30)], [(0, 10), (20, 30)]),
    ([(0, 3), (2, 8), (10, 12)], [(0, 8), (10, 12)]),
])
def test_merge_ranges(ranges: list, union: list) -> None:
    from sinks.parquet_store import covered, merge_ranges

    assert merge_ranges(ranges) == union
    for off in range(-1, 35):
        assert covered(off, union) == any(lo <= off <= hi for lo, hi in ranges)


def test_setup_repairs_a_merge_cut_short(tmp_path: Path) -> None:
    """A writer killed between writing a merged file and deleting its sources leaves overlapping files: the
    next writer's setup removes the redundant ones, and only those."""
    import shutil

    import pyarrow as pa
    import pyarrow.parquet as pq

    from sinks.client import open_store
    from sinks.parquet_store import file_name
    from sinks.schema import record_row

    dsn = _dsn(tmp_path)
    table_dir = tmp_path / "archive" / "parquet" / "requests"
    sink = ClickHouseSink(dsn, store=open_store(dsn, compact_files=1000))
    schema = sink.schemas["requests"]

    def rec(off: int) -> RequestEvent:
        return RequestEvent(ts=1.0 + off, request_id=f"r{off}", service="s", prompt_tokens=1)

    for off in (0, 1, 2, 4, 5):  # offset 3 is missing (e.g. consumed by the other writer of a rebalance)
        sink.add("requests", 0, off, rec(off))
        sink.flush()
    keep = tmp_path / "keep"
    shutil.copytree(table_dir, keep)
    sink.store.compact(schema, 0)  # type: ignore[union-attr]
    for f in keep.iterdir():  # "killed" before the sources were deleted
        shutil.copy(f, table_dir / f.name)
    # The other writer's file lies inside the merged range but holds a row the merged file lacks.
    other = pa.Table.from_pylist([record_row(schema, rec(3), 0, 3)], schema=schema.arrow_schema())
    pq.write_table(other, table_dir / file_name(0, 3, 3))
    assert len(list(table_dir.glob("*.parquet"))) == 7
    open_store(dsn)  # the next writer starts
    left = sorted(table_dir.glob("*.parquet"))
    assert [p.name for p in left] == [file_name(0, 0, 5), file_name(0, 3, 3)]
    assert pq.read_table(left[0]).column("kafka_offset").to_pylist() == [0, 1, 2, 4, 5]
    assert query_df(dsn, "SELECT count() AS n FROM requests")["n"].iloc[0] == 6
    # Compacting overlapping inputs never writes an offset twice.
    sink.store.compact(schema, 0)  # type: ignore[union-attr]
    (merged,) = table_dir.glob("*.parquet")
    assert pq.read_table(merged).column("kafka_offset").to_pylist() == [0, 1, 2, 3, 4, 5]
