"""Adapter to a real engine behind an OpenAI-compatible HTTP endpoint (vLLM's ``vllm serve``, or any server that
speaks ``POST /v1/completions`` with ``stream: true``).

How it measures: each routed request is sent from a worker thread as a streaming completion; the time of the
first streamed chunk is the first token, the end of the stream the finish. Times are wall-clock seconds since
the epoch, so run the pipeline without time compression (``preserve fleet --speedup 1``, replays at speedup 1
or real gateways). Output length: the server's ``usage.completion_tokens`` when it sends one
(``stream_options.include_usage``), else the number of streamed chunks.

Load: ``running`` is the number of requests in flight from this adapter; when the server exposes Prometheus
metrics (vLLM does, at ``/metrics``), ``waiting`` and KV usage come from ``vllm:num_requests_waiting`` and
``vllm:gpu_cache_usage_perc`` / ``vllm:kv_cache_usage_perc``.

Replays: with ``force_lengths`` the request asks for exactly the trace's output length (``max_tokens`` =
``min_tokens`` = the true length, ``ignore_eos``; vLLM's extensions), so a replay loads a real engine as the
trace did. Requests without prompt text get a filler prompt of about ``prompt_tokens`` tokens.
Scaling a real fleet (starting GPU servers) is outside this adapter: instances map onto the given endpoints.
"""

from __future__ import annotations

import json
import re
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from fleet.live.base_engine_adapter import (
    EngineAdapter,
    EngineFactory,
    EngineStatus,
    FinishedRequest,
    LiveRequest,
)

__all__ = ["OpenAIEngineConfig", "OpenAIEngine", "OpenAIEngineFactory", "parse_sse_line", "parse_vllm_metrics"]

_METRIC = re.compile(r"^(vllm:[a-z_]+)(?:\{[^}]*\})?\s+([0-9.eE+-]+)\s*$")


@dataclass(frozen=True)
class OpenAIEngineConfig:
    base_url: str  # e.g. http://10.0.0.5:8000
    model: str  # the served model name
    api_key: str | None = None
    force_lengths: bool = True
    timeout_s: float = 600.0
    concurrency: int = 256
    kv_capacity_tokens: int = 0  # for status(); vLLM reports KV use as a fraction
    metrics_every_s: float = 1.0


def parse_sse_line(line: bytes) -> dict[str, Any] | None:
    """One server-sent-events line -> the JSON chunk (None for keep-alives, comments and ``[DONE]``)."""
    text = line.decode("utf-8", errors="replace").strip()
    if not text.startswith("data:"):
        return None
    data = text[5:].strip()
    if not data or data == "[DONE]":
        return None
    try:
        obj = json.loads(data)
    except json.JSONDecodeError:
        return None
    return obj if isinstance(obj, dict) else None


def parse_vllm_metrics(text: str) -> dict[str, float]:
    """The ``vllm:*`` gauges of a Prometheus exposition (summed over label sets)."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        m = _METRIC.match(line.strip())
        if m:
            out[m.group(1)] = out.get(m.group(1), 0.0) + float(m.group(2))
    return out


class OpenAIEngine(EngineAdapter):
    """:param cfg: endpoint and request settings. :param clock: wall clock (tests may inject one)."""

    def __init__(self, cfg: OpenAIEngineConfig, clock: Any = time.time) -> None:
        self.cfg = cfg
        self.clock = clock
        self._pool = ThreadPoolExecutor(max_workers=cfg.concurrency, thread_name_prefix="openai-engine")
        self._lock = threading.Lock()
        self._done: list[FinishedRequest] = []
        self._in_flight = 0
        self.errors = 0
        self._metrics: dict[str, float] = {}
        self._metrics_at = 0.0

    def _headers(self) -> dict[str, str]:
        h = {"Content-Type": "application/json"}
        if self.cfg.api_key:
            h["Authorization"] = f"Bearer {self.cfg.api_key}"
        return h

    def _body(self, r: LiveRequest) -> dict[str, Any]:
        prompt = r.prompt or ("hello " * max(1, r.prompt_tokens - 1)).strip()
        body: dict[str, Any] = {"model": self.cfg.model, "prompt": prompt, "stream": True,
                                "stream_options": {"include_usage": True}}
        n = r.output_tokens if self.cfg.force_lengths and r.output_tokens else r.max_tokens
        if n:
            body["max_tokens"] = int(n)
        if self.cfg.force_lengths and r.output_tokens:
            body.update(min_tokens=int(r.output_tokens), ignore_eos=True)
        return body

    def _run(self, r: LiveRequest) -> None:
        first: float | None = None
        chunks, usage = 0, None
        try:
            req = urllib.request.Request(f"{self.cfg.base_url.rstrip('/')}/v1/completions",  # noqa: S310
                                         data=json.dumps(self._body(r)).encode(), headers=self._headers())
            with urllib.request.urlopen(req, timeout=self.cfg.timeout_s) as resp:  # noqa: S310
                for line in resp:
                    obj = parse_sse_line(line)
                    if obj is None:
                        continue
                    if obj.get("usage"):
                        usage = obj["usage"].get("completion_tokens")
                    if any(c.get("text") for c in obj.get("choices") or []):
                        chunks += 1
                        first = first if first is not None else self.clock()
            end = self.clock()
            out = int(usage) if usage is not None else chunks
            fin = FinishedRequest(r.request_id, r.arrival, first if first is not None else end, end,
                                  r.prompt_tokens, out)
        except Exception:  # an HTTP or network error: the request is reported finished with 0 tokens, counted
            end = self.clock()
            fin = FinishedRequest(r.request_id, r.arrival, end, end, r.prompt_tokens, 0)
            with self._lock:
                self.errors += 1
        with self._lock:
            self._done.append(fin)
            self._in_flight -= 1

    def submit(self, request: LiveRequest, now: float) -> None:
        with self._lock:
            self._in_flight += 1
        self._pool.submit(self._run, request)

    def advance(self, now: float) -> list[FinishedRequest]:
        with self._lock:
            done, self._done = self._done, []
        return sorted(done, key=lambda f: f.finished_at)

    def _scrape(self) -> dict[str, float]:
        if self.clock() - self._metrics_at < self.cfg.metrics_every_s:
            return self._metrics
        self._metrics_at = self.clock()
        try:
            with urllib.request.urlopen(f"{self.cfg.base_url.rstrip('/')}/metrics", timeout=1.0) as resp:  # noqa: S310
                self._metrics = parse_vllm_metrics(resp.read().decode("utf-8", errors="replace"))
        except Exception:  # metrics are optional: servers without /metrics report in-flight counts only
            self._metrics = {}
        return self._metrics

    def status(self) -> EngineStatus:
        m = self._scrape()
        frac = m.get("vllm:kv_cache_usage_perc", m.get("vllm:gpu_cache_usage_perc", 0.0))
        with self._lock:
            in_flight = self._in_flight
        waiting = min(in_flight, int(m.get("vllm:num_requests_waiting", 0.0)))
        return EngineStatus(in_flight - waiting, waiting, int(frac * self.cfg.kv_capacity_tokens),
                            self.cfg.kv_capacity_tokens)

    def idle(self) -> bool:
        with self._lock:
            return self._in_flight == 0 and not self._done

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=False)


class OpenAIEngineFactory(EngineFactory):
    """Instances of a service map round-robin onto its endpoints (already running servers: no cold start).

    :param endpoints: base URLs of the servers. :param template: settings shared by every endpoint."""

    def __init__(self, endpoints: list[str], template: OpenAIEngineConfig) -> None:
        if not endpoints:
            raise ValueError("need at least one endpoint")
        self.endpoints = endpoints
        self.template = template
        self._next = 0

    def create(self, service: str, instance_id: str, now: float) -> EngineAdapter:
        url = self.endpoints[self._next % len(self.endpoints)]
        self._next += 1
        from dataclasses import replace

        return OpenAIEngine(replace(self.template, base_url=url))

    @property
    def cold_start_s(self) -> float:
        return 0.0

    @property
    def kv_capacity_tokens(self) -> int:
        return self.template.kv_capacity_tokens
