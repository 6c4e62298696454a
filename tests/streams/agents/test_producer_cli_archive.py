"""Gateway-side helpers (validation before Kafka), schemas, `preserve produce` input errors, the archive state."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from click.testing import CliRunner

from replay.producer import request_payloads
from sinks.base_sink import BaseSink, SinkBatch
from sinks.exceptions import BackpressureError
from streams.records import DeadLetter, InvalidEvent, RequestEvent
from streams.stages.archive import ArchiveAgentState
from streams.transport.messages import RawMessage
from streams.transport.producer_helper import PRODUCER_DEFAULTS, RequestProducer


def test_request_producer_validates_before_sending() -> None:
    gw = RequestProducer(bootstrap="127.0.0.1:1")  # never connects: nothing valid is sent
    with pytest.raises(InvalidEvent, match="prompt_tokens"):
        gw.send("r1", "svc", prompt_tokens=-5)
    assert gw.sent == 0 and PRODUCER_DEFAULTS["partitioner"] == "murmur2_random"


def test_schemas_match_what_the_replay_produces(tmp_path: Path) -> None:
    from preserve_cli.produce_cmd import schemas

    res = CliRunner().invoke(schemas, ["--out", str(tmp_path)])
    assert res.exit_code == 0, res.output
    schema = json.loads((tmp_path / "requests.schema.json").read_text())
    assert len(list(tmp_path.glob("*.schema.json"))) == 10
    import pandas as pd

    df = pd.DataFrame({"request_id": ["a"], "arrival_s": [0.0], "service": ["s"], "prompt_tokens": [3],
                       "output_tokens": [4], "prompt": ["hello"]})
    for _, _, payload in request_payloads(df, 1000.0):
        jsonschema.validate(json.loads(payload), schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"ts": 1.0, "request_id": "a", "service": "s", "prompt_tokens": -1}, schema)


def test_produce_reports_the_bad_line_and_sends_nothing(tmp_path: Path) -> None:
    from preserve_cli.produce_cmd import produce

    f = tmp_path / "reqs.jsonl"
    good = RequestEvent(ts=1.0, request_id="a", service="s", prompt_tokens=3).model_dump_json()
    f.write_text(good + "\n\n" + '{"ts": 1.0, "request_id": "b"}\n')
    res = CliRunner().invoke(produce, [str(f)])
    assert res.exit_code != 0 and f"{f}:3:" in res.output and "service" in res.output


class MemorySink(BaseSink):
    """Rows keyed by (topic, partition, offset) like the archive; fails the first ``fail`` writes."""

    def __init__(self, fail: int = 0) -> None:
        super().__init__()
        self.rows: dict[tuple[str, int, int], object] = {}
        self.fail = fail

    def write(self, batch: SinkBatch) -> None:
        if self.fail:
            self.fail -= 1
            raise BackpressureError(0.25, "test")
        for it in batch.items:
            self.rows[(batch.topic, it.partition, it.offset)] = it.record


def test_archive_retries_on_backpressure_and_never_doubles_rows() -> None:
    sink, slept = MemorySink(fail=2), []
    st = ArchiveAgentState(sink, sleep=slept.append)
    ev = RequestEvent(ts=1.0, request_id="a", service="s", prompt_tokens=3).to_json()
    msgs = [RawMessage("requests", b"s", ev, 0, 7), RawMessage("requests", b"s", b"{bad", 0, 8)]
    st.handle(msgs, now=0.0)
    st.handle(msgs, now=0.0)  # a redelivered batch
    assert list(sink.rows) == [("requests", 0, 7)] and slept == [0.25, 0.25] and st.skipped == 2


def test_dead_letters_reach_the_archive_like_any_record() -> None:
    """A valid DeadLetter on the dead-letter topic is a good record there (it used to be counted as bad and
    never archived); an invalid message on that topic is still skipped."""
    sink = MemorySink()
    st = ArchiveAgentState(sink)
    dl = DeadLetter(ts=2.0, source_topic="requests", reason="prompt_tokens: not an integer", payload="{...}",
                    partition=0, offset=3).to_json()
    st.handle([RawMessage("dead-letter", None, dl, 0, 0), RawMessage("dead-letter", None, b"{bad", 0, 1)], now=0.0)
    assert list(sink.rows) == [("dead-letter", 0, 0)] and st.skipped == 1
    assert sink.rows[("dead-letter", 0, 0)].reason == "prompt_tokens: not an integer"  # type: ignore[attr-defined]
