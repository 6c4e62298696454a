"""Prometheus metrics and Kubernetes-style probes of a long-running process: ``/metrics``, ``/livez``, ``/readyz``.

Why its own small HTTP server (``prometheus-client``'s exposition on a stdlib ``ThreadingHTTPServer``) and not
Faust's web server: ``preserve fleet`` and the archive worker need the same endpoints, and a thread answers a
probe even while the event loop is busy or wedged — which is what ``/livez`` must detect, not suffer from.

- ``/metrics``: every ``preserve_*`` series of this module (names and labels below), text exposition format.
- ``/livez``: 200 while the process's heartbeat (:meth:`Health.beat`, called by a loop of the process) is younger
  than ``stale_after_s``; 503 with the age once it stops (a wedged event loop); 200 before the first beat.
- ``/readyz``: 200 once every readiness condition (:meth:`Health.set_ready`) is true — for a worker: it has
  completed its first partition assignment (tables recovered) and is not rebalancing; models load at import, before
  the app starts, so a ready worker has its models. 503 with the conditions that are false.

Labels stay bounded: reasons are free text in the records (a policy's explanation, a validation error), so a
label carries only their leading words (:func:`reason_label`), never the numbers in them.
"""

from __future__ import annotations

import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

__all__ = ["REGISTRY", "Health", "MetricsServer", "reason_label", "start_metrics_server", "health",
           "CONSUMER_LAG", "DECISIONS", "DECISION_LATENCY", "PREDICTIONS", "SCALE_ACTIONS", "INSTANCES",
           "ARCHIVE_INSERT_LATENCY", "ARCHIVE_ROWS", "DEAD_LETTERS", "RECORDS_OUT", "READY"]

# One registry of ours (not prometheus-client's global one): the series a scrape sees are exactly these.
REGISTRY = CollectorRegistry(auto_describe=True)

# Decision latency: a request's arrival to its RouteDecision. The budget is p99 20 ms, so the buckets are dense
# below 50 ms; waits for a ready instance (cold starts) land in the seconds buckets.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5,
                   5.0, 10.0, 30.0)

CONSUMER_LAG = Gauge("preserve_consumer_lag", "messages between the partition's high watermark and this "
                     "consumer's position", ["group", "topic", "partition"], registry=REGISTRY)
DECISIONS = Counter("preserve_decisions", "routing decisions published (rate: decisions per second)",
                    ["service"], registry=REGISTRY)
DECISION_LATENCY = Histogram("preserve_decision_latency_seconds", "a request's arrival to its routing decision "
                             "(RouteDecision.ts - arrival_ts)", buckets=LATENCY_BUCKETS, registry=REGISTRY)
PREDICTIONS = Counter("preserve_predictions", "length predictions published, by the predictor that made them",
                      ["source"], registry=REGISTRY)
SCALE_ACTIONS = Counter("preserve_scale_actions", "scale commands published, by the policy's reason",
                        ["service", "reason"], registry=REGISTRY)
INSTANCES = Gauge("preserve_instances", "serving instances managed by this fleet process, by state",
                  ["service", "state"], registry=REGISTRY)
ARCHIVE_INSERT_LATENCY = Histogram("preserve_archive_insert_seconds", "one archive batch's write to ClickHouse",
                                   buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
                                   registry=REGISTRY)
ARCHIVE_ROWS = Counter("preserve_archive_rows", "messages handed to the archive sink", registry=REGISTRY)
DEAD_LETTERS = Counter("preserve_dead_letters", "dead letters published, by source topic and reason",
                       ["source_topic", "reason"], registry=REGISTRY)
RECORDS_OUT = Counter("preserve_records_published", "records published by this process's agents",
                      ["agent", "topic"], registry=REGISTRY)
READY = Gauge("preserve_ready", "1 while /readyz answers 200", registry=REGISTRY)

_WORDS = re.compile(r"[A-Za-z][A-Za-z_\-]*")


def reason_label(text: str, words: int = 3, max_len: int = 48) -> str:
    """A bounded label for a free-text reason: its first ``words`` words (no numbers, ids or quotes), lowercased.

    >>> reason_label("scale up: forecast 12.5 req/s over capacity 10")
    'scale_up'
    """
    found = _WORDS.findall(text.split(":", 1)[0] if ":" in text[:40] else text)[:words]
    return ("_".join(w.lower().replace("-", "_") for w in found) or "other")[:max_len]


class Health:
    """Liveness (a heartbeat) and readiness (named conditions) of one process; thread-safe."""

    def __init__(self, stale_after_s: float = 30.0) -> None:
        self.stale_after_s = stale_after_s
        self._lock = threading.Lock()
        self._last_beat: float | None = None
        self._conditions: dict[str, bool] = {}

    def beat(self, now: float | None = None) -> None:
        with self._lock:
            self._last_beat = time.monotonic() if now is None else now

    def require(self, *names: str) -> None:
        """Declare readiness conditions (false until set)."""
        with self._lock:
            for n in names:
                self._conditions.setdefault(n, False)

    def set_ready(self, name: str, ok: bool) -> None:
        with self._lock:
            self._conditions[name] = ok
            READY.set(1.0 if all(self._conditions.values()) else 0.0)

    def live(self, now: float | None = None) -> tuple[bool, str]:
        with self._lock:
            if self._last_beat is None:
                return True, "starting"
            age = (time.monotonic() if now is None else now) - self._last_beat
        return (age <= self.stale_after_s), f"heartbeat {age:.1f} s ago"

    def ready(self) -> tuple[bool, str]:
        with self._lock:
            missing = [n for n, ok in self._conditions.items() if not ok]
            if not self._conditions:
                return False, "no readiness condition declared"
        return (not missing), ("ready" if not missing else "waiting for " + ", ".join(missing))


health = Health()  # the process's own; the HTTP server and the edges that report into it share it


class _Handler(BaseHTTPRequestHandler):
    server: MetricsServer

    def do_GET(self) -> None:  # noqa: N802  (http.server's name)
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            self._send(200, generate_latest(self.server.registry), CONTENT_TYPE_LATEST)
        elif path in ("/livez", "/readyz"):
            ok, why = self.server.health.live() if path == "/livez" else self.server.health.ready()
            self._send(200 if ok else 503, (why + "\n").encode(), "text/plain; charset=utf-8")
        else:
            self._send(404, b"not found: /metrics, /livez, /readyz\n", "text/plain; charset=utf-8")

    def _send(self, code: int, body: bytes, ctype: str) -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002  (scrapes every few s: not logged)
        return


class MetricsServer(ThreadingHTTPServer):
    """The endpoints on ``host:port`` in a daemon thread (:meth:`start`); ``port=0`` picks a free port."""

    daemon_threads = True

    def __init__(self, host: str, port: int, registry: CollectorRegistry = REGISTRY,
                 health_: Health | None = None) -> None:
        super().__init__((host, port), _Handler)
        self.registry = registry
        self.health = health_ or health
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def start(self) -> MetricsServer:
        self._thread = threading.Thread(target=self.serve_forever, name="preserve-metrics", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()


def start_metrics_server(port: int, host: str = "127.0.0.1") -> MetricsServer:
    """Serve this process's metrics and probes; raises OSError with the address if it cannot bind."""
    try:
        return MetricsServer(host, port).start()
    except OSError as e:
        raise OSError(f"cannot serve metrics on {host}:{port}: {e.strerror or e}") from e
