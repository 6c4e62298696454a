"""Service -> serving-model map, flags and online tables for unmapped services, and the predict agent's loop of
predictions and completions (pure: RawMessages in, records out; the shipped fallback table, no data files)."""

from __future__ import annotations

import json
import logging
import time

import numpy as np
import pytest

from models.request_load.online import OnlineCorrection
from models.request_load.predictor_registry import get_predictor
from models.request_load.serving import OnlineFallbackTable, ServiceMap, ServingPredictor, known_models_of
from streams.records import Completion, PredictedRequest, RequestEvent
from streams.stages.predict import PredictAgentState
from streams.transport.messages import RawMessage


def test_service_map_parses_text_json_and_files(tmp_path) -> None:  # type: ignore[no-untyped-def]
    m = ServiceMap.parse("chat=llama-2-7b-chat-hf, code = vicuna-7b-v1.5", known={"gpt-3.5-turbo-0613"})
    assert m.entries == {"chat": "llama-2-7b-chat-hf", "code": "vicuna-7b-v1.5"}
    models, unmapped = m.resolve(["chat", "gpt-3.5-turbo-0613", "llama-2-7b"])
    assert models == ["llama-2-7b-chat-hf", "gpt-3.5-turbo-0613", "llama-2-7b"]
    assert unmapped.tolist() == [False, False, True]
    path = tmp_path / "map.json"
    path.write_text(json.dumps({"chat": "gemma-7b-it"}))
    assert ServiceMap.parse(f"@{path}").entries == {"chat": "gemma-7b-it"}
    assert ServiceMap.parse('{"a": "b"}').entries == {"a": "b"}
    with pytest.raises(ValueError, match="service=serving-model"):
        ServiceMap.parse("chat")


def test_mapped_service_predicts_as_its_model_unmapped_is_flagged_and_warned_once(
        caplog: pytest.LogCaptureFixture) -> None:
    fallback = get_predictor("fallback")
    assert "llama-2-7b-chat-hf" in known_models_of(fallback)
    serving = ServingPredictor(fallback, ServiceMap.parse("llama-2-7b=llama-2-7b-chat-hf"))
    pt = [50, 300]
    direct = fallback.predict([None, None], pt, ["llama-2-7b-chat-hf"] * 2)
    via_map = serving.predict([None, None], pt, ["llama-2-7b"] * 2)
    np.testing.assert_allclose(via_map.mean, direct.mean)
    assert via_map.unmapped is not None and not via_map.unmapped.any()
    assert set(via_map.quantiles) >= {"p10", "p50", "p90", "p99"}  # the shipped checkpoint is calibrated
    with caplog.at_level(logging.WARNING):
        for _ in range(3):
            other = serving.predict([None], [50], ["my-new-service"])
    assert other.unmapped is not None and other.unmapped.tolist() == [True]
    assert sum("my-new-service" in r.message for r in caplog.records) == 1
    assert serving.stats.unmapped_rows == 3


def test_unmapped_service_learns_its_own_table_from_completions() -> None:
    fallback = get_predictor("fallback")
    serving = ServingPredictor(fallback, ServiceMap(), online=None, online_fallback=OnlineFallbackTable(min_count=20))
    before = serving.predict([None], [40], ["tiny-answers"]).mean[0]
    for i in range(30):
        serving.complete(f"r{i}", "tiny-answers", 40, 12.0 + i % 3)
    after = serving.predict([None], [40], ["tiny-answers"])
    assert before > 100 and after.mean[0] == pytest.approx(13.0, abs=0.5)
    assert after.quantiles["p10"][0] <= after.p50[0] <= after.p90[0] <= 14.0


def _msg(topic: str, rec: RequestEvent | Completion, offset: int) -> RawMessage:
    return RawMessage(topic, rec.service.encode(), rec.to_json(), 0, offset, time.time())


def test_predict_agent_recalibrates_a_service_from_completions() -> None:
    state = PredictAgentState("fallback", service_map="chat=llama-2-7b-chat-hf", online_window=64)
    now = time.time()
    first = [r for r in state.handle([_msg("requests", RequestEvent(ts=now, request_id="a0", service="chat",
                                                                    prompt_tokens=100), 0)], now)
             if isinstance(r, PredictedRequest)]
    assert len(first) == 1 and not first[0].service_unmapped
    base_mean = first[0].predicted_tokens
    assert first[0].predicted_p10_tokens is not None and first[0].predicted_p99_tokens is not None
    msgs: list[RawMessage] = []
    for i in range(200):  # the service now answers 1.5x longer than the table says
        msgs.append(_msg("requests", RequestEvent(ts=now, request_id=f"r{i}", service="chat", prompt_tokens=100), i))
    preds = [r for r in state.handle(msgs, now) if isinstance(r, PredictedRequest)]
    done = [_msg("completions", Completion(ts=now + 5, request_id=p.request_id, service="chat", instance_id="i0",
                                           arrival_ts=now, prompt_tokens=100,
                                           output_tokens=round(1.5 * p.predicted_tokens), ttft_s=0.1, e2e_s=5.0), k)
            for k, p in enumerate(preds)]
    assert state.handle(done, now + 5) == []  # completions produce no records, they teach
    assert state.online is not None and state.online.unmatched == 0
    later = [r for r in state.handle([_msg("requests", RequestEvent(ts=now, request_id="z", service="chat",
                                                                    prompt_tokens=100), 999)], now + 6)
             if isinstance(r, PredictedRequest)]
    assert later[0].predicted_tokens == pytest.approx(1.5 * base_mean, rel=0.1)
    unmapped = [r for r in state.handle([_msg("requests", RequestEvent(ts=now, request_id="u", service="llama-2-7b",
                                                                       prompt_tokens=100), 1000)], now + 6)
                if isinstance(r, PredictedRequest)]
    assert unmapped[0].service_unmapped


def test_online_correction_is_shared_by_model_and_fallback_paths() -> None:
    state = PredictAgentState("fallback", online_window=32)
    assert isinstance(state.online, OnlineCorrection)
    assert state.serving(state.predictor).online is state.serving(state.fallback).online
