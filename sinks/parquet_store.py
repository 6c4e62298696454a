"""Embedded archive (``chdb:///path``): immutable Parquet files per topic partition and offset range.

Why files and not a chdb data path: chdb lets one process own a data path, so a writer there would lock out
``preserve sql`` and ``preserve report``. Here the writer needs no ClickHouse at all (pyarrow writes), and any
number of readers query the files through an in-memory chdb session (:mod:`sinks.client`).

Layout: ``<root>/parquet/<table>/p<partition>-<first offset>-<last offset>.parquet``. Files appear atomically
(written as ``.part``, then renamed), so readers never see half a file. Idempotency: rows whose offset an
existing file already *holds* are dropped before writing, so a redelivered batch adds nothing; the reader views
also keep one row per (partition, offset) in case two writers raced during a rebalance. Many small files are
merged per partition once there are more than ``compact_files`` of them.

What a file holds is derived from its rows, never from its name: the name's ``first-last`` only bounds it. Why:
a file may have gaps (a merge of 0-99 and 200-299 while another worker still writes 100-199 after a rebalance;
offsets that were dead-lettered), and a name taken as a claim dropped the redelivered rows of the gap for good
(issue 21: 3,803 completions in Kafka, 3,793 archived). A file whose row count equals its span is contiguous
(offsets are unique within a file), otherwise its ``kafka_offset`` column is read once; both are cached per
file (files are immutable; a merge writes a new name).
"""

from __future__ import annotations

import bisect
import contextlib
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from sinks.exceptions import BackpressureError, SinkError
from sinks.schema import TableSchema, all_schemas

__all__ = ["ParquetStore", "ParquetStoreConfig", "covered", "merge_ranges", "parse_file_name", "file_name", "runs"]

_MAX = 1 << 62
_NAME = re.compile(r"^p(\d+)-(\d+)-(\d+)\.parquet$")


def file_name(partition: int, first: int, last: int) -> str:
    return f"p{partition:05d}-{first:020d}-{last:020d}.parquet"


def parse_file_name(name: str) -> tuple[int, int, int] | None:
    m = _NAME.match(name)
    return (int(m.group(1)), int(m.group(2)), int(m.group(3))) if m else None


def merge_ranges(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Union of inclusive ranges as sorted, disjoint ranges (files may overlap after a race or a merge)."""
    out: list[tuple[int, int]] = []
    for lo, hi in sorted(ranges):
        if out and lo <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(out[-1][1], hi))
        else:
            out.append((lo, hi))
    return out


def covered(offset: int, union: list[tuple[int, int]]) -> bool:
    """Is ``offset`` inside the disjoint sorted ranges ``union`` (from :func:`merge_ranges`)?"""
    i = bisect.bisect_right(union, (offset, _MAX)) - 1
    return i >= 0 and union[i][0] <= offset <= union[i][1]


def _offsets(path: Path) -> list[int]:
    return pq.read_table(path, columns=["kafka_offset"]).column(0).to_pylist()


def runs(offsets: list[int]) -> list[tuple[int, int]]:
    """The contiguous runs of a set of offsets as sorted, disjoint inclusive ranges: what a file holds."""
    out: list[tuple[int, int]] = []
    for off in sorted(set(offsets)):
        if out and off == out[-1][1] + 1:
            out[-1] = (out[-1][0], off)
        else:
            out.append((off, off))
    return out


def _unique_offsets(table: pa.Table) -> pa.Table:
    """Keep the first row per offset of an offset-sorted table (inputs may overlap after an interrupted merge)."""
    offsets = table.column("kafka_offset").to_numpy()
    if len(offsets) < 2:
        return table
    keep = np.concatenate([[True], offsets[1:] != offsets[:-1]])
    return table if keep.all() else table.filter(pa.array(keep))


@dataclass(frozen=True)
class ParquetStoreConfig:
    root: Path = field(metadata={"help": "archive root; Parquet files live under <root>/parquet/<table>/"})
    compact_files: int = field(default=64, metadata={"help": "merge a partition's small files beyond this count"})
    compact_rows: int = field(default=200_000, metadata={"help": "files with fewer rows count as small"})


class ParquetStore:
    """Writer side of the embedded archive. ``setup()`` creates the directories; ``insert`` writes one file."""

    def __init__(self, cfg: ParquetStoreConfig) -> None:
        self.cfg = cfg
        self.schemas = all_schemas()
        # (table, file name) -> (size, mtime_ns, the offset runs the file holds); entries of vanished files are
        # dropped at each listing of their partition, so this stays as small as the archive's file count.
        self._held: dict[tuple[str, str], tuple[int, int, list[tuple[int, int]]]] = {}

    @property
    def base(self) -> Path:
        return self.cfg.root / "parquet"

    def table_dir(self, schema: TableSchema) -> Path:
        return self.base / schema.table

    def setup(self) -> None:
        """Create the table folders and repair what a writer killed mid-compaction left behind."""
        try:
            for s in self.schemas.values():
                self.table_dir(s).mkdir(parents=True, exist_ok=True)
                for part in sorted({p for p, _, _ in self._all_files(s)}):
                    self.drop_redundant(s, part)
        except OSError as e:
            raise SinkError(f"cannot create the archive under {self.cfg.root}: {e}") from e

    def _all_files(self, schema: TableSchema) -> list[tuple[int, int, int]]:
        return [x for x in (parse_file_name(p.name) for p in self.table_dir(schema).glob("p*.parquet")) if x]

    def drop_redundant(self, schema: TableSchema, partition: int) -> int:
        """Delete files whose rows all sit in another file (sources of a merge whose deletion was cut short).

        Checked by reading offsets, not by ranges alone: a file written concurrently inside a merged file's
        range (two writers during a rebalance) holds rows the merged file lacks and must stay.
        """
        files = self._files(schema, partition)
        removed = 0
        for f, lo, hi in files:
            for g, glo, ghi in files:
                if g == f or not (glo <= lo and hi <= ghi) or not (f.exists() and g.exists()):
                    continue
                if set(_offsets(f)) <= set(_offsets(g)):
                    f.unlink()
                    removed += 1
                    break
        return removed

    def _files(self, schema: TableSchema, partition: int) -> list[tuple[Path, int, int]]:
        out = []
        for p in self.table_dir(schema).glob(f"p{partition:05d}-*.parquet"):
            parsed = parse_file_name(p.name)
            if parsed:
                out.append((p, parsed[1], parsed[2]))
        return sorted(out, key=lambda x: x[1])

    def held(self, schema: TableSchema, partition: int) -> list[tuple[int, int]]:
        """The offsets of ``partition`` the table's files hold (their rows, not their names), as disjoint ranges."""
        files = self._files(schema, partition)
        prefix = f"p{partition:05d}-"
        present = {p.name for p, _, _ in files}
        for key in [k for k in self._held if k[0] == schema.table and k[1].startswith(prefix) and k[1] not in present]:
            del self._held[key]
        ranges: list[tuple[int, int]] = []
        for path, lo, hi in files:
            ranges += self._file_runs(schema, path, lo, hi)
        return merge_ranges(ranges)

    def _held_names(self, schema: TableSchema, partition: int) -> list[str]:
        prefix = f"p{partition:05d}-"
        return [name for table, name in self._held if table == schema.table and name.startswith(prefix)]

    def _file_runs(self, schema: TableSchema, path: Path, lo: int, hi: int) -> list[tuple[int, int]]:
        st = path.stat()
        key = (schema.table, path.name)
        hit = self._held.get(key)
        if hit is not None and hit[0] == st.st_size and hit[1] == st.st_mtime_ns:
            return hit[2]
        if pq.ParquetFile(path).metadata.num_rows == hi - lo + 1:
            got = [(lo, hi)]  # as many (unique) rows as offsets in the span: contiguous
        else:
            got = runs(_offsets(path))
        self._held[key] = (st.st_size, st.st_mtime_ns, got)
        return got

    def insert(self, schema: TableSchema, rows: list[dict[str, Any]], partition: int) -> int:
        """Write the rows not yet archived (by offset) as one file; return how many were new."""
        for attempt in range(3):
            try:
                ranges = self.held(schema, partition)
                n_files = len(self._held_names(schema, partition))
                break
            except FileNotFoundError:  # another writer merged a file away while it was listed: list again
                if attempt == 2:
                    raise BackpressureError(1.0, f"{self.table_dir(schema)} changing under the listing") from None
            except OSError as e:
                raise BackpressureError(5.0, f"listing {self.table_dir(schema)}: {e.strerror or e}") from e
        top = ranges[-1][1] if ranges else -1
        by_offset = {r["kafka_offset"]: r for r in rows if r["kafka_offset"] > top
                     or not covered(r["kafka_offset"], ranges)}
        if not by_offset:
            return 0
        fresh = [by_offset[o] for o in sorted(by_offset)]  # unique offsets: a file's span test relies on it
        table = pa.Table.from_pylist(fresh, schema=schema.arrow_schema())
        name = file_name(partition, fresh[0]["kafka_offset"], fresh[-1]["kafka_offset"])
        self._write_atomic(self.table_dir(schema) / name, table)
        if n_files + 1 > self.cfg.compact_files:
            self.compact(schema, partition)
        return len(fresh)

    def _write_atomic(self, path: Path, table: pa.Table) -> None:
        tmp = path.with_name(f".{path.name}.{os.getpid()}.part")
        try:
            pq.write_table(table, tmp, compression="zstd")
            os.replace(tmp, path)
        except OSError as e:
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)
            # Disk full / I/O errors are transient from the pipeline's point of view: back off, retry.
            raise BackpressureError(5.0, f"writing {path.name}: {e.strerror or e}") from e

    def compact(self, schema: TableSchema, partition: int) -> int:
        """Merge the partition's small files into one; returns how many files were merged.

        Safe with concurrent readers: the merged file appears before the small ones disappear, and views
        deduplicate by (partition, offset) meanwhile.
        """
        small = [(p, lo, hi) for p, lo, hi in self._files(schema, partition)
                 if pq.ParquetFile(p).metadata.num_rows < self.cfg.compact_rows]
        if len(small) < 2:
            return 0
        merged = pa.concat_tables([pq.read_table(p, schema=schema.arrow_schema()) for p, _, _ in small])
        merged = _unique_offsets(merged.sort_by("kafka_offset"))
        name = file_name(partition, min(lo for _, lo, _ in small), max(hi for _, _, hi in small))
        self._write_atomic(self.table_dir(schema) / name, merged)
        for p, _, _ in small:
            if p.name != name:
                p.unlink(missing_ok=True)
        self._clean_stale_parts(schema)
        return len(small)

    def _clean_stale_parts(self, schema: TableSchema, older_than_s: float = 600.0) -> None:
        """Temp files of writers that crashed mid-write (live writers finish within seconds)."""
        now = time.time()
        for p in self.table_dir(schema).glob(".*.part"):
            try:
                if now - p.stat().st_mtime > older_than_s:
                    p.unlink()
            except OSError:
                pass

    def close(self) -> None:
        """Nothing to release: every insert is a complete file."""
