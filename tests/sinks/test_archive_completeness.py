"""The embedded archive never claims offsets it does not hold (issue 21, finding 6).

A file's name bounds its offsets; what it holds comes from its rows. Before, a merge of 0-9 and 20-29 was named
0-29, the redelivered rows 10-19 (another worker's, after a rebalance) were dropped as "covered", and the
archive stayed short of the topic for good.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq

from sinks.client import open_store
from sinks.parquet_store import ParquetStore, file_name, runs
from sinks.schema import record_row, table_schema
from streams.records import RequestEvent

SCHEMA = table_schema("requests")


def _rows(offsets: range | list[int]) -> list[dict]:
    return [record_row(SCHEMA, RequestEvent(ts=1.0 + o, request_id=f"r{o}", service="s", prompt_tokens=1), 0, o)
            for o in offsets]


def _archived(root: Path) -> list[int]:
    out: list[int] = []
    for f in (root / "parquet" / "requests").glob("*.parquet"):
        out += pq.read_table(f, columns=["kafka_offset"]).column(0).to_pylist()
    return sorted(out)


def _store(root: Path, compact_files: int) -> ParquetStore:
    store = open_store(f"chdb://{root}", compact_files=compact_files)
    assert isinstance(store, ParquetStore)
    return store


def test_a_gap_inside_a_merged_file_is_filled_by_redelivery(tmp_path: Path) -> None:
    store = _store(tmp_path, compact_files=1)
    assert store.insert(SCHEMA, _rows(range(0, 10)), 0) == 10
    assert store.insert(SCHEMA, _rows(range(20, 30)), 0) == 10  # merged with the first: named 0-29, 20 rows
    (merged,) = (tmp_path / "parquet" / "requests").glob("*.parquet")
    assert merged.name == file_name(0, 0, 29)
    assert store.held(SCHEMA, 0) == [(0, 9), (20, 29)]
    assert store.insert(SCHEMA, _rows(range(5, 25)), 0) == 10  # the gap's rows, redelivered with neighbours
    assert _archived(tmp_path) == list(range(30))


def test_a_second_writer_fills_the_gap_of_the_first_ones_merge(tmp_path: Path) -> None:
    """Two archive workers on one archive during a rebalance: each sees what the other's files hold."""
    a, b = _store(tmp_path, compact_files=1), _store(tmp_path, compact_files=1)
    a.insert(SCHEMA, _rows(range(0, 50)), 0)
    a.insert(SCHEMA, _rows(range(80, 100)), 0)  # A got the partition back from a later offset
    assert b.insert(SCHEMA, _rows(range(40, 90)), 0) == 30  # B's batch of the gap (and some overlap)
    assert a.insert(SCHEMA, _rows(range(0, 100)), 0) == 0  # a full redelivery then adds nothing
    assert _archived(tmp_path) == list(range(100))


def test_a_batch_written_around_held_rows_claims_only_its_own(tmp_path: Path) -> None:
    store = _store(tmp_path, compact_files=1000)
    store.insert(SCHEMA, _rows([3, 4, 5]), 0)
    assert store.insert(SCHEMA, _rows([0, 1, 2, 3, 4, 5, 6, 9]), 0) == 5  # file 0-9 holds 0-2, 6, 9
    assert store.held(SCHEMA, 0) == [(0, 6), (9, 9)]
    assert store.insert(SCHEMA, _rows([7, 8]), 0) == 2
    assert _archived(tmp_path) == list(range(10))


def test_a_new_process_derives_what_is_held_from_the_files(tmp_path: Path) -> None:
    _store(tmp_path, compact_files=1000).insert(SCHEMA, _rows([0, 1, 2, 7, 8]), 0)
    assert _store(tmp_path, compact_files=1000).held(SCHEMA, 0) == [(0, 2), (7, 8)]


def test_runs() -> None:
    assert runs([]) == []
    assert runs([5, 3, 4, 9, 9, 10, 0]) == [(0, 0), (3, 5), (9, 10)]
