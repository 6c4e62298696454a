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
Scaling a real fleet (starting GPU servers) is outside this adapter: instances map onto the given endpoints,
or the process actuator (``process_engine``) starts one server per instance.

Engines: ``flavor="vllm"`` or ``"llama-cpp"`` (llama.cpp's ``llama-server``). They differ in how an exact
length is forced (llama.cpp ignores ``min_tokens``: ``n_predict`` + ``max_tokens`` + ``ignore_eos`` instead) and
in their Prometheus names (``vllm:*`` vs ``llamacpp:*``: requests processing/deferred, no KV-use gauge), so each
has its own metrics parser.

Failures: a request whose stream breaks (an HTTP error, a reset connection, a stream that ends without its
final chunk) is by default reported finished with 0 tokens and counted in ``errors``. With
``report_failures`` it is instead handed back through :meth:`OpenAIEngine.take_failed` with its reason, and
:meth:`OpenAIEngine.abandon` hands back everything still in flight (the manager re-routes them when an engine
process dies).
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

__all__ = ["OpenAIEngineConfig", "OpenAIEngine", "OpenAIEngineFactory", "parse_sse_line", "parse_vllm_metrics",
           "parse_llamacpp_metrics", "FLAVORS"]

_METRIC = re.compile(r"^([a-z_]+:[a-z_]+)(?:\{[^}]*\})?\s+([0-9.eE+-]+)\s*$")
FLAVORS = ("vllm", "llama-cpp")


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
    flavor: str = "vllm"  # one of FLAVORS: how lengths are forced and which metrics parser reads /metrics
    report_failures: bool = False  # failed requests go to take_failed() instead of 0-token completions

    def __post_init__(self) -> None:
        if self.flavor not in FLAVORS:
            raise ValueError(f"unknown engine flavor {self.flavor!r}; known: {', '.join(FLAVORS)}")


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


def _parse_prefixed(text: str, prefix: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for line in text.splitlines():
        m = _METRIC.match(line.strip())
        if m and m.group(1).startswith(prefix):
            out[m.group(1)] = out.get(m.group(1), 0.0) + float(m.group(2))
    return out


def parse_vllm_metrics(text: str) -> dict[str, float]:
    """The ``vllm:*`` gauges of a Prometheus exposition (summed over label sets)."""
    return _parse_prefixed(text, "vllm:")


def parse_llamacpp_metrics(text: str) -> dict[str, float]:
    """The ``llamacpp:*`` series of llama-server's ``/metrics`` (needs ``--metrics``)."""
    return _parse_prefixed(text, "llamacpp:")


def _load_from_metrics(flavor: str, m: dict[str, float]) -> tuple[float, float]:
    """(waiting requests, KV use as a fraction) by engine; llama.cpp has no KV-use gauge (0 then)."""
    if flavor == "llama-cpp":
        return m.get("llamacpp:requests_deferred", 0.0), m.get("llamacpp:kv_cache_usage_ratio", 0.0)
    return (m.get("vllm:num_requests_waiting", 0.0),
            m.get("vllm:kv_cache_usage_perc", m.get("vllm:gpu_cache_usage_perc", 0.0)))


class _StreamCut(RuntimeError):
    """The stream ended without its final chunk (the server went away mid-request)."""


class OpenAIEngine(EngineAdapter):
    """:param cfg: endpoint and request settings. :param clock: wall clock (tests may inject one)."""

    def __init__(self, cfg: OpenAIEngineConfig, clock: Any = time.time) -> None:
        self.cfg = cfg
        self.clock = clock
        self._pool = ThreadPoolExecutor(max_workers=cfg.concurrency, thread_name_prefix="openai-engine")
        self._lock = threading.Lock()
        self._done: list[FinishedRequest] = []
        self._in_flight = 0
        self._requests: dict[str, LiveRequest] = {}  # in flight, by id (abandon() hands them back)
        self._failed: list[tuple[LiveRequest, str]] = []
        self._abandoned: set[str] = set()
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
            if self.cfg.flavor == "llama-cpp":
                body["n_predict"] = int(n)
        if self.cfg.force_lengths and r.output_tokens:
            body["ignore_eos"] = True
            if self.cfg.flavor == "vllm":
                body["min_tokens"] = int(r.output_tokens)
        return body

    def _run(self, r: LiveRequest) -> None:
        first: float | None = None
        chunks, usage, finished = 0, None, False
        try:
            req = urllib.request.Request(f"{self.cfg.base_url.rstrip('/')}/v1/completions",  # noqa: S310
                                         data=json.dumps(self._body(r)).encode(), headers=self._headers())
            with urllib.request.urlopen(req, timeout=self.cfg.timeout_s) as resp:  # noqa: S310
                for line in resp:
                    finished = finished or line.strip() == b"data: [DONE]"
                    obj = parse_sse_line(line)
                    if obj is None:
                        continue
                    if obj.get("usage"):
                        usage = obj["usage"].get("completion_tokens")
                    choices = obj.get("choices") or []
                    finished = finished or any(c.get("finish_reason") for c in choices)
                    if any(c.get("text") for c in choices):
                        chunks += 1
                        first = first if first is not None else self.clock()
            if not finished:
                raise _StreamCut("stream ended without its final chunk")
            end = self.clock()
            out = int(usage) if usage is not None else chunks
            self._finish(r, FinishedRequest(r.request_id, r.arrival, first if first is not None else end, end,
                                            r.prompt_tokens, out), None)
        except Exception as e:  # an HTTP or network error, or a cut stream
            end = self.clock()
            self._finish(r, FinishedRequest(r.request_id, r.arrival, end, end, r.prompt_tokens, 0),
                         f"{type(e).__name__}: {e}")

    def _finish(self, r: LiveRequest, fin: FinishedRequest, error: str | None) -> None:
        with self._lock:
            self._in_flight -= 1
            self._requests.pop(r.request_id, None)
            if r.request_id in self._abandoned:  # handed back already (its engine died): drop the late result
                self._abandoned.discard(r.request_id)
                return
            if error is None:
                self._done.append(fin)
            elif self.cfg.report_failures:
                self._failed.append((r, error))
            else:  # reported finished with 0 tokens, counted
                self.errors += 1
                self._done.append(fin)

    def take_failed(self) -> list[tuple[LiveRequest, str]]:
        """Requests that failed since the last call, with their reasons (``report_failures`` only)."""
        with self._lock:
            out, self._failed = self._failed, []
        return out

    def abandon(self) -> list[tuple[LiveRequest, str]]:
        """Hand back every request in flight or failed (its engine is gone); their late results are dropped."""
        with self._lock:
            out = self._failed + [(r, "engine gone") for r in self._requests.values()]
            self._failed = []
            self._abandoned.update(self._requests)
            self._requests.clear()
        return out

    def submit(self, request: LiveRequest, now: float) -> None:
        with self._lock:
            self._in_flight += 1
            self._requests[request.request_id] = request
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
                text = resp.read().decode("utf-8", errors="replace")
            self._metrics = parse_llamacpp_metrics(text) if self.cfg.flavor == "llama-cpp" else parse_vllm_metrics(text)
        except Exception:  # metrics are optional: servers without /metrics report in-flight counts only
            self._metrics = {}
        return self._metrics

    def status(self) -> EngineStatus:
        waiting_f, frac = _load_from_metrics(self.cfg.flavor, self._scrape())
        with self._lock:
            in_flight = self._in_flight - len(self._abandoned)
        waiting = min(in_flight, int(waiting_f))
        return EngineStatus(in_flight - waiting, waiting, int(frac * self.cfg.kv_capacity_tokens),
                            self.cfg.kv_capacity_tokens)

    def in_flight(self) -> int:
        with self._lock:
            return len(self._requests)

    def idle(self) -> bool:
        with self._lock:
            return not self._requests and not self._done and not self._failed

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
