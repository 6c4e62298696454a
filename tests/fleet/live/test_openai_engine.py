"""The OpenAI-compatible engine adapter against a local fake server (127.0.0.1 only, no network)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from fleet.live.base_engine_adapter import LiveRequest
from fleet.live.openai_engine import OpenAIEngine, OpenAIEngineConfig, parse_sse_line, parse_vllm_metrics

METRICS = """# HELP vllm:num_requests_waiting waiting
vllm:num_requests_waiting{model_name="m"} 1.0
vllm:kv_cache_usage_perc{model_name="m"} 0.25
"""


class FakeVLLM(BaseHTTPRequestHandler):
    bodies: list[dict] = []

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802
        body = METRICS.encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        FakeVLLM.bodies.append(body)
        if body["prompt"].startswith("fail"):
            self.send_response(500)
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        time.sleep(0.05)  # time to first token
        for i in range(body.get("max_tokens", 3)):
            self.wfile.write(f"data: {json.dumps({'choices': [{'text': f't{i}'}]})}\n\n".encode())
            self.wfile.flush()
        usage = {"choices": [], "usage": {"completion_tokens": body.get("max_tokens", 3)}}
        self.wfile.write(f"data: {json.dumps(usage)}\n\ndata: [DONE]\n\n".encode())


@pytest.fixture
def server() -> Iterator[str]:
    srv = ThreadingHTTPServer(("127.0.0.1", 0), FakeVLLM)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    FakeVLLM.bodies = []
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()


def wait_done(eng: OpenAIEngine, n: int, timeout_s: float = 10.0) -> list:
    out: list = []
    deadline = time.time() + timeout_s
    while len(out) < n and time.time() < deadline:
        out += eng.advance(time.time())
        time.sleep(0.01)
    return out


def test_streams_a_completion_and_measures_ttft_and_length(server: str) -> None:
    eng = OpenAIEngine(OpenAIEngineConfig(server, "m", kv_capacity_tokens=1000))
    t0 = time.time()
    eng.submit(LiveRequest("r1", "svc", t0, prompt_tokens=12, output_tokens=7, prompt="Hello there"), t0)
    [done] = wait_done(eng, 1)
    assert done.request_id == "r1" and done.output_tokens == 7
    assert 0.04 <= done.ttft_s <= done.e2e_s < 5
    body = FakeVLLM.bodies[0]
    assert body["max_tokens"] == 7 and body["min_tokens"] == 7 and body["ignore_eos"] and body["stream"]
    assert body["prompt"] == "Hello there" and body["model"] == "m"
    assert eng.idle()
    st = eng.status()
    assert st.kv_used_tokens == 250 and st.kv_capacity_tokens == 1000


def test_filler_prompt_and_errors_are_reported_not_raised(server: str) -> None:
    eng = OpenAIEngine(OpenAIEngineConfig(server, "m", force_lengths=False))
    now = time.time()
    eng.submit(LiveRequest("a", "svc", now, prompt_tokens=5, max_tokens=2), now)
    eng.submit(LiveRequest("b", "svc", now, prompt_tokens=5, prompt="fail please"), now)
    done = {d.request_id: d for d in wait_done(eng, 2)}
    filler = next(b["prompt"] for b in FakeVLLM.bodies if not b["prompt"].startswith("fail"))
    assert done["a"].output_tokens == 2 and filler.count("hello") == 4
    assert done["b"].output_tokens == 0 and eng.errors == 1


def test_parsers() -> None:
    assert parse_sse_line(b"data: [DONE]") is None and parse_sse_line(b": keep-alive") is None
    assert parse_sse_line(b'data: {"a": 1}\n') == {"a": 1}
    assert parse_sse_line(b"data: {broken") is None
    m = parse_vllm_metrics(METRICS + 'vllm:num_requests_waiting{model_name="n"} 2\n')
    assert m["vllm:num_requests_waiting"] == 3.0 and m["vllm:kv_cache_usage_perc"] == 0.25
