"""Archive schemas: one table per topic, prompts hashed unless storing them is enabled."""

from __future__ import annotations

import pytest

from sinks.schema import all_schemas, prompt_hash, record_row, table_name, table_schema
from streams.records import (
    RECORD_TYPES,
    InstanceEvent,
    InstanceEventKind,
    InstanceState,
    RequestEvent,
    RoutingTable,
)


def test_a_table_per_topic_with_dedup_key() -> None:
    schemas = all_schemas()
    assert set(schemas) == set(RECORD_TYPES)
    for s in schemas.values():
        assert s.order_by[-2:] == ("kafka_partition", "kafka_offset")
        assert s.order_by[1] == "ts"
        assert "-" not in s.table
    assert table_schema("requests").order_by[0] == "service"
    assert table_schema("dead-letter").order_by[0] == "source_topic"


def test_table_name_rejects_unknown_topic() -> None:
    assert table_name("predicted-requests") == "predicted_requests"
    with pytest.raises(KeyError):
        table_name("nope")


@pytest.mark.parametrize("store", [False, True])
def test_prompt_is_hashed_and_kept_only_when_enabled(store: bool) -> None:
    schema = table_schema("requests")
    rec = RequestEvent(ts=1.0, request_id="r", service="s", prompt_tokens=3, prompt="secret text")
    row = record_row(schema, rec, partition=2, offset=7, store_prompts=store)
    assert row["prompt_hash"] == prompt_hash("secret text") and len(row["prompt_hash"]) == 16
    assert row["prompt_chars"] == len("secret text")
    assert row["prompt"] == ("secret text" if store else None)
    assert (row["kafka_partition"], row["kafka_offset"]) == (2, 7)
    assert set(row) == set(schema.names)


def test_enums_and_containers_become_text() -> None:
    ev = record_row(table_schema("instance-events"), InstanceEvent(
        ts=1.0, service="s", instance_id="i", kind=InstanceEventKind.READY, state=InstanceState.READY), 0, 0)
    assert (ev["kind"], ev["state"]) == ("ready", "ready")
    rt = record_row(table_schema("routing-table"), RoutingTable(ts=1.0, service="s", instances=[{"id": "i"}]), 0, 0)
    assert rt["instances"] == '[{"id":"i"}]'
    assert "Nullable(Int64)" in table_schema("requests").ch_structure()  # max_tokens: Tokens | None
