"""The metrics endpoint and the probes over real HTTP on loopback; the published-record counters."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

from streams.records import DeadLetter, PredictedRequest, RouteDecision, ScaleCommand
from streams.transport import metrics_server as m
from streams.transport import worker_probes


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:  # noqa: S310  (loopback)
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


@pytest.fixture()
def server() -> Iterator[tuple[str, m.Health]]:
    h = m.Health(stale_after_s=5.0)
    srv = m.MetricsServer("127.0.0.1", 0, health_=h).start()
    try:
        yield f"http://127.0.0.1:{srv.port}", h
    finally:
        srv.stop()


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for fam in text_string_to_metric_families(text) for s in fam.samples}


def test_readyz_waits_for_every_condition_and_says_which(server: tuple[str, m.Health]) -> None:
    url, h = server
    assert _get(url + "/readyz")[0] == 503  # nothing declared: never ready by accident
    h.require("partitions_assigned", "not_rebalancing")
    code, body = _get(url + "/readyz")
    assert code == 503 and "partitions_assigned" in body and "not_rebalancing" in body
    h.set_ready("partitions_assigned", True)
    code, body = _get(url + "/readyz")
    assert code == 503 and "partitions_assigned" not in body
    h.set_ready("not_rebalancing", True)
    assert _get(url + "/readyz") == (200, "ready\n")
    h.set_ready("not_rebalancing", False)  # a rebalance began
    assert _get(url + "/readyz")[0] == 503


def test_livez_fails_once_the_heartbeat_stops(server: tuple[str, m.Health]) -> None:
    url, h = server
    assert _get(url + "/livez")[0] == 200  # starting: no beat yet
    h.beat()
    assert _get(url + "/livez")[0] == 200
    h.beat(now=-100.0)  # the last beat is 100+ s old
    code, body = _get(url + "/livez")
    assert code == 503 and "heartbeat" in body
    assert _get(url + "/nope")[0] == 404


def test_metrics_count_decisions_predictions_scale_reasons_and_dead_letters(
        server: tuple[str, m.Health], monkeypatch: pytest.MonkeyPatch) -> None:
    url, _ = server
    monkeypatch.setitem(worker_probes._state, "enabled", True)
    before = _samples(_get(url + "/metrics")[1])
    recs = [
        RouteDecision(ts=100.010, request_id="r1", service="svc-m", instance_id="i0", prompt_tokens=10,
                      predicted_tokens=5.0, arrival_ts=100.0, policy="p"),
        RouteDecision(ts=100.5, request_id="r2", service="svc-m", instance_id="i0", prompt_tokens=10,
                      predicted_tokens=5.0, arrival_ts=100.0, policy="p"),
        PredictedRequest(ts=1.0, request_id="r3", service="svc-m", prompt_tokens=3, predicted_tokens=2.0, predicted_p90_tokens=3.0,
                         predictor="fallback"),
        ScaleCommand(ts=1.0, service="svc-m", target_instances=3, current_instances=2, policy="p",
                     reason="scale up: forecast 12.5 req/s over capacity 10"),
        DeadLetter(ts=1.0, source_topic="preserve.requests", reason="1 validation error for RequestEvent",
                   payload="{}"),
    ]
    worker_probes.observe_published("route", recs)
    after = _samples(_get(url + "/metrics")[1])

    def delta(name: str, **labels: str) -> float:
        key = (name, tuple(sorted(labels.items())))
        return after.get(key, 0.0) - before.get(key, 0.0)

    assert delta("preserve_decisions_total", service="svc-m") == 2
    assert delta("preserve_decision_latency_seconds_count") == 2
    assert delta("preserve_decision_latency_seconds_bucket", le="0.015") == 1  # 10 ms in, 500 ms out
    assert delta("preserve_predictions_total", source="fallback") == 1
    assert delta("preserve_scale_actions_total", service="svc-m", reason="scale_up") == 1
    assert delta("preserve_dead_letters_total", source_topic="preserve.requests", reason="validation_error_for") == 1
    assert delta("preserve_records_published_total", agent="route", topic="routes") == 2


def test_nothing_is_counted_while_metrics_are_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(worker_probes._state, "enabled", False)
    before = m.REGISTRY.get_sample_value("preserve_predictions_total", {"source": "off-probe"})
    worker_probes.observe_published("predict", [PredictedRequest(
        ts=1.0, request_id="r", service="s", prompt_tokens=3, predicted_tokens=2.0, predicted_p90_tokens=3.0, predictor="off-probe")])
    assert m.REGISTRY.get_sample_value("preserve_predictions_total", {"source": "off-probe"}) == before is None


@pytest.mark.parametrize(("text", "label"), [
    ("scale up: forecast 12.5 req/s over capacity 10", "scale_up"),
    ("queue-aware headroom for 3 instances", "queue_aware_headroom_for"),
    ("1 validation error for RequestEvent\nprompt_tokens ...", "validation_error_for"),
    ("", "other"),
    ("12345", "other"),
])
def test_reason_labels_are_bounded(text: str, label: str) -> None:
    assert m.reason_label(text) == label


def test_a_taken_port_is_a_clear_error() -> None:
    srv = m.MetricsServer("127.0.0.1", 0).start()
    try:
        with pytest.raises(OSError, match=f"cannot serve metrics on 127.0.0.1:{srv.port}"):
            m.start_metrics_server(srv.port)
    finally:
        srv.stop()
