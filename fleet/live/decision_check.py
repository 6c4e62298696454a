"""After a live run: the control decisions replayed from the archived input topics, compared one by one.

Reads the archive (ClickHouse, or the Kafka topics themselves when the run kept no archive) in each topic's
partition/offset order and hands the records to ``streams.stages.decision_replay`` — the offline driver of the same
route and scale state objects the live agents ran.
"""

from __future__ import annotations

import json
import math
import typing
from typing import Any

from streams.pipeline_config import PipelineConfig
from streams.records import RECORD_TYPES, EventRecord
from streams.settings import KafkaSettings
from streams.stages.decision_replay import ReplayReport, replay_decisions

__all__ = ["check_decisions", "archived_records"]

TOPICS = ("predicted-requests", "instance-events", "completions", "forecasts", "routes", "scale-commands")


def _container_fields(cls: type[EventRecord]) -> set[str]:
    """Fields the archive stores as JSON text (lists and maps, however annotated)."""
    def is_container(t: Any) -> bool:
        if typing.get_origin(t) in (list, dict):
            return True
        return any(is_container(a) for a in typing.get_args(t))
    return {name for name, f in cls.model_fields.items() if is_container(f.annotation)}


def _record(cls: type[EventRecord], row: dict[str, Any], containers: set[str]) -> EventRecord:
    data = {}
    for name in cls.model_fields:
        if name not in row:
            continue
        v = row[name]
        if isinstance(v, float) and math.isnan(v):
            v = None
        elif name in containers and isinstance(v, str):
            v = json.loads(v)
        data[name] = v
    return cls.model_validate(data)


def archived_records(dsn: str, topic: str) -> list[EventRecord]:
    """A topic's archived records in partition/offset order (the order its consumers read them)."""
    from sinks.analytics import query_df, table_name  # the archive owns table names and SQL access

    df = query_df(dsn, f"SELECT * FROM {table_name(topic)} ORDER BY kafka_partition, kafka_offset")  # noqa: S608
    cls = RECORD_TYPES[topic]
    containers = _container_fields(cls)
    return [_record(cls, row, containers) for row in df.to_dict("records")]


def _topic_records(kafka: KafkaSettings, topic: str) -> list[EventRecord]:
    from fleet.live.pipeline_procs import read_topic

    cls = RECORD_TYPES[topic]
    return [cls.model_validate_json(v) for v in read_topic(kafka, topic)]


def check_decisions(cfg: PipelineConfig, dsn: str | None, kafka: KafkaSettings) -> ReplayReport:
    """Replay the run's archived inputs through fresh control state; the report counts the mismatches."""
    recs = {t: (archived_records(dsn, t) if dsn is not None else _topic_records(kafka, t)) for t in TOPICS}
    return replay_decisions(cfg, recs["predicted-requests"], recs["instance-events"],  # type: ignore[arg-type]
                            recs["completions"], recs["forecasts"], recs["routes"],  # type: ignore[arg-type]
                            recs["scale-commands"])  # type: ignore[arg-type]
