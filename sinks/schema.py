"""Archive table schemas derived from the event records, and record -> row conversion (pure, no I/O).

One table per topic, named :func:`table_name` (``"predicted-requests"`` -> ``predicted_requests``), with one
column per record field plus ``kafka_partition``/``kafka_offset`` (the idempotency key: a redelivered message has
the same pair). Types map to ClickHouse and Arrow alike so the Parquet archive and a server table have the same
columns. Prompt text is sensitive: RequestEvent/PredictedRequest rows carry ``prompt_hash`` (keyed HMAC-SHA256, 16 hex: streams/privacy.py) and
``prompt_chars``, and ``prompt`` holds the text only when ``store_prompts`` is on.
"""

from __future__ import annotations

import enum
import functools
import json
import types
import typing
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from streams.privacy import prompt_hash
from streams.records import RECORD_TYPES, EventRecord

__all__ = ["Column", "TableSchema", "table_name", "table_schema", "all_schemas", "record_row", "prompt_hash"]

META_COLUMNS = ("kafka_partition", "kafka_offset")


@dataclass(frozen=True)
class Column:
    name: str
    ch_type: str  # ClickHouse type, e.g. "Nullable(Int64)"
    arrow_type: pa.DataType
    nullable: bool


@dataclass(frozen=True)
class TableSchema:
    topic: str
    table: str
    columns: tuple[Column, ...]
    order_by: tuple[str, ...]  # server sort key: (service, ts, partition, offset) = the dedup key

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    def ch_structure(self) -> str:
        """``name Type, ...`` as ClickHouse's file()/CREATE TABLE want it."""
        return ", ".join(f"{c.name} {c.ch_type}" for c in self.columns)

    def arrow_schema(self) -> pa.Schema:
        return pa.schema([pa.field(c.name, c.arrow_type, nullable=c.nullable) for c in self.columns])


def table_name(topic: str) -> str:
    """Logical topic -> SQL identifier (same on chdb and on a server)."""
    if topic not in RECORD_TYPES:
        raise KeyError(f"unknown topic {topic!r}; known: {', '.join(RECORD_TYPES)}")
    return topic.replace("-", "_")


_SCALARS: dict[type, tuple[str, pa.DataType]] = {
    str: ("String", pa.string()), int: ("Int64", pa.int64()), float: ("Float64", pa.float64()),
    bool: ("Bool", pa.bool_()),
}


def _column(name: str, annotation: Any) -> Column:
    """Map a pydantic field annotation to a column; containers are stored as JSON text."""
    args = typing.get_args(annotation)
    nullable = typing.get_origin(annotation) in (typing.Union, types.UnionType) and type(None) in args
    base = next((a for a in args if a is not type(None)), annotation) if nullable else annotation
    if typing.get_origin(base) is typing.Annotated:
        base = typing.get_args(base)[0]
    if typing.get_origin(base) is typing.Literal:
        base = type(typing.get_args(base)[0])
    if isinstance(base, type) and issubclass(base, enum.Enum):
        ch, ar = "LowCardinality(String)", pa.string()
    elif base in _SCALARS:
        ch, ar = _SCALARS[base]
    else:  # list[...] / dict[...]: JSON text, queryable with JSONExtract*
        ch, ar = "String", pa.string()
    if nullable:
        ch = f"Nullable({ch})" if not ch.startswith("LowCardinality") else "LowCardinality(Nullable(String))"
    return Column(name, ch, ar, nullable)


def table_schema(topic: str) -> TableSchema:
    cls = RECORD_TYPES[topic]
    cols: list[Column] = []
    for name, f in cls.model_fields.items():
        if name == "prompt" and "prompt_hash" not in cls.model_fields:
            cols += [Column("prompt_hash", "Nullable(String)", pa.string(), True),
                     Column("prompt_chars", "Nullable(Int64)", pa.int64(), True)]
        cols.append(_column(name, f.annotation))
    cols += [Column("kafka_partition", "Int32", pa.int32(), False), Column("kafka_offset", "Int64", pa.int64(), False)]
    names = {c.name for c in cols}
    first = "service" if "service" in names else "source_topic"
    return TableSchema(topic, table_name(topic), tuple(cols), (first, "ts", *META_COLUMNS))


def all_schemas() -> dict[str, TableSchema]:
    return {t: table_schema(t) for t in RECORD_TYPES}


def _value(v: Any) -> Any:
    if isinstance(v, enum.Enum):
        return v.value
    if isinstance(v, (list, dict)):
        return json.dumps(v, separators=(",", ":"), default=str)
    return v


@functools.cache
def _special_fields(cls: type[EventRecord]) -> tuple[str, ...]:
    """Fields whose values need converting (enums, containers); the rest are stored as they are."""
    out = []
    for name, f in cls.model_fields.items():
        col = _column(name, f.annotation)
        if col.ch_type.startswith("LowCardinality") or (col.ch_type in ("String", "Nullable(String)")
                                                       and f.annotation not in (str, str | None)):
            out.append(name)
    return tuple(out)


def record_row(schema: TableSchema, record: EventRecord, partition: int, offset: int,
               store_prompts: bool = False) -> dict[str, Any]:
    """One archive row (column name -> value); prompt text only with ``store_prompts`` (hash and length always).

    Hot path of the archive (tens of thousands of rows per second): reads the model's ``__dict__`` directly and
    converts only the fields that need it.
    """
    row = dict(record.__dict__)
    for name in _special_fields(type(record)):
        row[name] = _value(row[name])
    if "prompt" in row:
        text = row["prompt"]
        if text is not None:
            row["prompt_hash"] = prompt_hash(text)
            row["prompt_chars"] = len(text)
        else:  # a PredictedRequest carries them itself (the predict stage drops the text)
            row.setdefault("prompt_hash", None)
            row.setdefault("prompt_chars", None)
        if not store_prompts:
            row["prompt"] = None
    row["kafka_partition"] = partition
    row["kafka_offset"] = offset
    return row
