"""Event records: every type round-trips through JSON, and bad input is rejected with a reason."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from streams.records import (
    FUTURE_SKEW_S,
    MAX_PROMPT_CHARS,
    MAX_TOKENS,
    RECORD_TYPES,
    EventRecord,
    InvalidEvent,
    RequestEvent,
    parse_event,
)
from tests.fixtures.archive_data import sample_records


def _one_of_each() -> dict[str, EventRecord]:
    out: dict[str, EventRecord] = {}
    for rec in sample_records(time.time() - 3600, n=2):
        out.setdefault(rec.topic, rec)
    return out


GOOD = _one_of_each()
TOPICS = sorted(RECORD_TYPES)


def _dict(topic: str) -> dict[str, Any]:
    return json.loads(GOOD[topic].to_json())


def test_fixture_covers_every_record_type() -> None:
    assert set(GOOD) == set(RECORD_TYPES)


@pytest.mark.parametrize("topic", TOPICS)
def test_round_trip(topic: str) -> None:
    rec = GOOD[topic]
    back = parse_event(rec.to_json(), RECORD_TYPES[topic])
    assert back == rec
    assert parse_event(rec.to_json().decode(), RECORD_TYPES[topic]) == rec
    assert json.loads(rec.to_json())["v"] == 1


@pytest.mark.parametrize("topic", TOPICS)
def test_missing_required_field_is_rejected(topic: str) -> None:
    cls = RECORD_TYPES[topic]
    required = [n for n, f in cls.model_fields.items() if f.is_required()]
    assert required, topic
    for name in required:
        d = _dict(topic)
        del d[name]
        with pytest.raises(InvalidEvent, match=name):
            parse_event(json.dumps(d), cls)


@pytest.mark.parametrize("topic", TOPICS)
def test_far_future_and_negative_timestamps_are_rejected(topic: str) -> None:
    cls = RECORD_TYPES[topic]
    for ts, why in ((time.time() + FUTURE_SKEW_S + 3600, "in the future"), (-1.0, "non-negative")):
        d = _dict(topic)
        d["ts"] = ts
        with pytest.raises(InvalidEvent, match=why):
            parse_event(json.dumps(d), cls)


@pytest.mark.parametrize("topic", TOPICS)
def test_unknown_fields_and_wrong_versions_are_rejected(topic: str) -> None:
    cls = RECORD_TYPES[topic]
    d = _dict(topic)
    d["surprise"] = 1
    with pytest.raises(InvalidEvent, match="surprise"):
        parse_event(json.dumps(d), cls)
    d = _dict(topic)
    d["v"] = 2
    with pytest.raises(InvalidEvent, match="v"):
        parse_event(json.dumps(d), cls)


@pytest.mark.parametrize("topic", TOPICS)
def test_wrong_types_are_rejected(topic: str) -> None:
    cls = RECORD_TYPES[topic]
    d = _dict(topic)
    d["ts"] = "yesterday"
    with pytest.raises(InvalidEvent, match="ts"):
        parse_event(json.dumps(d), cls)


@pytest.mark.parametrize(("field", "value", "why"), [
    ("request_id", "", "request_id"),
    ("request_id", None, "request_id"),
    ("service", "x" * 300, "service"),
    ("prompt_tokens", -1, "prompt_tokens"),
    ("prompt_tokens", MAX_TOKENS + 1, "prompt_tokens"),
    ("output_tokens", -5, "output_tokens"),
    ("prompt_tokens", "many", "prompt_tokens"),
    ("prompt_tokens", 1.5, "prompt_tokens"),
    ("prompt", "x" * (MAX_PROMPT_CHARS + 1), "prompt"),
])
def test_request_event_bad_values(field: str, value: Any, why: str) -> None:
    d = _dict("requests")
    d[field] = value
    with pytest.raises(InvalidEvent, match=why):
        parse_event(json.dumps(d), RequestEvent)


@pytest.mark.parametrize("topic", ["completions", "scale-commands", "token-density", "instance-events"])
def test_negative_counts_are_rejected(topic: str) -> None:
    cls = RECORD_TYPES[topic]
    d = _dict(topic)
    ints = [k for k, v in d.items() if isinstance(v, int) and not isinstance(v, bool) and k != "v"]
    assert ints, topic
    for k in ints:
        bad = dict(d, **{k: -1})
        with pytest.raises(InvalidEvent, match=k):
            parse_event(json.dumps(bad), cls)


@pytest.mark.parametrize(("raw", "why"), [
    (b"{not json", "malformed JSON"),
    (b"", "malformed JSON"),
    (b"\xff\xfe\x00", "not UTF-8"),
    (b"[1, 2]", "expected a JSON object"),
    (b"null", "expected a JSON object"),
    (b'"a string"', "expected a JSON object"),
])
def test_malformed_payloads_are_rejected(raw: bytes, why: str) -> None:
    with pytest.raises(InvalidEvent, match=why):
        parse_event(raw, RequestEvent)


def test_records_are_frozen() -> None:
    rec = GOOD["requests"]
    with pytest.raises(Exception, match="frozen"):
        rec.request_id = "other"  # type: ignore[misc]


@pytest.mark.parametrize("value", ["true", "1.5", "3.0", "\"3\""])
def test_token_counts_are_strict_integers_as_the_schema_says(value: str) -> None:
    """`"prompt_tokens": true` used to be accepted as 1."""
    raw = '{"ts": 1.0, "request_id": "a", "service": "s", "prompt_tokens": ' + value + "}"
    with pytest.raises(InvalidEvent):
        parse_event(raw, RequestEvent)
