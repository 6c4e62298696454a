"""Prompts are sensitive: by default only the predictor sees prompt text, the archive keeps a hash and a length
(the text only when ``store_prompts`` is on), and prompt text has a size limit that records enforce.

Checked on the real archive path: the ClickHouse sink writing the embedded Parquet archive, read back through
``clickhouse_client`` (the SQL every reader uses) and by scanning every string column of every file written.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from sinks.clickhouse_sink import ClickHouseSink
from sinks.client import clickhouse_client
from streams.privacy import prompt_hash
from streams.records import (
    MAX_PROMPT_CHARS,
    DeadLetter,
    EventRecord,
    InvalidEvent,
    PredictedRequest,
    RequestEvent,
    parse_event,
)
from streams.stages.predict import PredictAgentState
from streams.stages.predict_batch import predict_requests
from streams.transport.dead_letters import parse_or_dead_letter

pytestmark = pytest.mark.timeout(120)

PROMPT = "my card number is 4111-1111-1111-1111, please write a poem about it"
LIBRDKAFKA_MAX_MESSAGE_BYTES = 1_000_000  # message.max.bytes default of the producers (and ~ the broker's)


def _request(i: int, prompt: str | None = PROMPT) -> RequestEvent:
    return RequestEvent(ts=time.time(), request_id=f"r-{i}", service="svc-a", prompt_tokens=17, prompt=prompt,
                        output_tokens=30)


def _archive(tmp_path: Path, recs: list[EventRecord], store_prompts: bool) -> str:
    dsn = f"chdb://{tmp_path / 'archive'}"
    sink = ClickHouseSink(dsn, store_prompts=store_prompts)
    for off, rec in enumerate(recs):
        sink.add(rec.topic, 0, off, rec)
    sink.flush()
    sink.close()
    return dsn


def _strings_in_archive(root: Path) -> list[str]:
    out: list[str] = []
    for f in root.rglob("*.parquet"):
        t = pq.read_table(f)
        for name in t.column_names:
            col = t.column(name)
            if str(col.type) == "string":
                out += [v for v in col.to_pylist() if v]
    return out


def _pipeline_records() -> list[EventRecord]:
    """What the archive sees of two requests: the request, its prediction and its route."""
    reqs = [_request(0), _request(1)]
    preds = predict_requests(reqs, PredictAgentState("fallback").fallback)
    from streams.records import RouteDecision

    routes = [RouteDecision(ts=p.ts, request_id=p.request_id, service=p.service, instance_id="i-0",
                            prompt_tokens=p.prompt_tokens, predicted_tokens=p.predicted_tokens, policy="x",
                            prompt_hash=p.prompt_hash) for p in preds]
    return [*reqs, *preds, *routes]


def test_archive_keeps_hash_and_length_not_the_text_by_default(tmp_path: Path) -> None:
    dsn = _archive(tmp_path, _pipeline_records(), store_prompts=False)
    client = clickhouse_client(dsn)
    want_hash = prompt_hash(PROMPT)  # keyed (streams/privacy.py)
    assert want_hash != hashlib.sha256(PROMPT.encode()).hexdigest()[:16]
    for table in ("requests", "predicted_requests"):
        df: pd.DataFrame = client.query_df(f"SELECT prompt, prompt_hash, prompt_chars FROM {table}")  # noqa: S608
        assert len(df) == 2
        assert df["prompt"].isna().all()
        assert (df["prompt_hash"] == want_hash).all() and (df["prompt_chars"] == len(PROMPT)).all()
    routes = client.query_df("SELECT prompt_hash FROM routes")
    assert (routes["prompt_hash"] == want_hash).all()
    assert not any(PROMPT in s or "4111" in s for s in _strings_in_archive(tmp_path / "archive"))


def test_archive_keeps_the_text_only_when_enabled(tmp_path: Path) -> None:
    dsn = _archive(tmp_path, _pipeline_records(), store_prompts=True)
    df = clickhouse_client(dsn).query_df("SELECT prompt FROM requests")
    assert list(df["prompt"]) == [PROMPT, PROMPT]


def test_a_dead_lettered_request_does_not_put_its_prompt_in_the_archive(tmp_path: Path) -> None:
    bad = _request(0).model_dump(mode="json") | {"prompt_tokens": -1}
    import json

    dead = parse_or_dead_letter(json.dumps(bad).encode(), RequestEvent, "requests", time.time(), b"svc-a", 0, 5)
    assert isinstance(dead, DeadLetter)
    _archive(tmp_path, [dead], store_prompts=False)
    assert not any("4111" in s for s in _strings_in_archive(tmp_path / "archive"))


def test_only_the_predictor_sees_the_prompt_text() -> None:
    preds = predict_requests([_request(0)], PredictAgentState("fallback").fallback)
    assert preds[0].prompt is None


def test_records_reject_over_limit_prompts_and_accept_the_limit() -> None:
    ok = _request(0, "x" * MAX_PROMPT_CHARS)
    assert parse_event(ok.to_json(), RequestEvent).prompt == ok.prompt
    with pytest.raises(InvalidEvent, match="prompt"):
        parse_event(ok.model_dump() | {"prompt": "x" * (MAX_PROMPT_CHARS + 1)}, RequestEvent)
    with pytest.raises(ValueError):
        PredictedRequest(**ok.model_dump() | {"prompt": "x" * (MAX_PROMPT_CHARS + 1)}, predicted_tokens=1.0,
                         predicted_p90_tokens=1.0, predictor="fallback")


@pytest.mark.parametrize("char", ["x", "é", "中", "\U0001f600"])
def test_a_prompt_at_the_limit_fits_in_one_kafka_message_as_records_encode_it(char: str) -> None:
    assert len(_request(0, char * MAX_PROMPT_CHARS).to_json()) <= LIBRDKAFKA_MAX_MESSAGE_BYTES


def test_a_replayed_prompt_at_the_limit_fits_in_one_kafka_message() -> None:
    from replay.producer import request_payloads

    df = pd.DataFrame({"request_id": ["a"], "arrival_s": [0.0], "service": ["s"], "prompt_tokens": [5],
                       "output_tokens": [3], "prompt": ["中" * MAX_PROMPT_CHARS]})
    payload = next(iter(request_payloads(df, time.time())))[2]
    assert len(payload) <= LIBRDKAFKA_MAX_MESSAGE_BYTES
