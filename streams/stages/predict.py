"""State of the `predict` agent: the predictor (GPU when there is one), its fallback and the per-service online
correction fed by completions (no Kafka I/O)."""

from __future__ import annotations

import logging
import threading

from models.request_load.base_predictor import LengthPredictor
from models.request_load.online import OnlineConfig, OnlineCorrection
from models.request_load.predictor_registry import get_predictor
from models.request_load.serving import OnlineFallbackTable, ServiceMap, ServingPredictor, known_models_of
from streams.records import Completion, EventRecord, RequestEvent
from streams.stages.predict_batch import predict_requests
from streams.transport.dead_letters import dead_letter
from streams.transport.event_skew import EventSkewGuard, SkewSettings
from streams.transport.messages import RawMessage, parse_messages

__all__ = ["PredictAgentState", "default_device"]

log = logging.getLogger(__name__)


def default_device() -> str:
    try:
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    except ImportError:
        return "cpu"


class PredictAgentState:
    """:param spec: predictor spec (``model``, ``fallback``, ...); the model runs on the GPU when present.
    :param max_lag_s: when the oldest request of a batch has waited longer than this (its Kafka time to ``now``),
        the batch is answered by the fallback, flagged ``fallback`` in each PredictedRequest: the model's
        per-forward timeout cannot see a queue building up in front of it, and a late prediction delays routing
        more than a coarse one costs. 0 turns it off. Compares the producer's clock with this worker's.
    :param service_map: service -> serving model (``ServiceMap.parse``: "svc=model,...", JSON, @file).
    :param online_window: completions per service the online correction keeps (0 = no online correction).
    :param skew: the window around the stream's event time that requests must fall in (others are
        dead-lettered with the reason, ``streams/transport/event_skew.py``): this is where requests enter the
        pipeline, so no watermark, window or fleet clock downstream ever sees a time one client made up.
    """

    REPORTS = frozenset({"requests"})  # completions' dead letters are reported by the density agent

    def __init__(self, spec: str, max_lag_s: float = 0.0, service_map: str = "", online_window: int = 256,
                 skew: SkewSettings | None = None) -> None:
        self.max_lag_s = max_lag_s
        self.skew = EventSkewGuard(skew)
        self.lagged_batches = 0
        self.fallback: LengthPredictor = get_predictor("fallback")
        # Only the encoder takes long enough to be worth a thread: the others are table look-ups, for which the
        # hand-over to a thread cost more than the prediction (and the GIL hand-offs slowed the event loop).
        self.off_loop = spec.startswith("model")
        ctx = {"device": default_device()} if self.off_loop else {}
        self.predictor: LengthPredictor = get_predictor(spec, **ctx)
        self.service_map = ServiceMap.parse(service_map, known_models_of(self.predictor) |
                                            known_models_of(self.fallback))
        # one correction and one set of online tables for both paths: a completion teaches whichever answered
        self.online = OnlineCorrection(OnlineConfig(window=online_window)) if online_window > 0 else None
        self.online_tables = OnlineFallbackTable() if online_window > 0 else None
        self._lock = threading.Lock()  # handle() may run in a worker thread while learn() runs on the loop
        self._serving: dict[int, ServingPredictor] = {}
        log.info("predict agent: predictor %s, %d mapped services, online correction %s", spec,
                 len(self.service_map.entries), f"window {online_window}" if self.online else "off")

    def serving(self, base: LengthPredictor) -> ServingPredictor:
        """``base`` behind the service map and the shared online correction (one wrapper per base object)."""
        wrapped = self._serving.get(id(base))
        if wrapped is None or wrapped.base is not base:
            wrapped = ServingPredictor(base, self.service_map, self.online, self.online_tables)
            if self._serving:  # unmapped services are warned about once, whichever path answers
                wrapped.stats = next(iter(self._serving.values())).stats
            self._serving[id(base)] = wrapped
        return wrapped

    def learn(self, msgs: list[RawMessage], now: float) -> int:
        """Teach the online correction from a batch of `completions` (the feedback agent's batches); the
        number of completions read. Thread-safe with :meth:`handle` (which may run in a worker thread)."""
        good, _ = parse_messages(msgs, now, frozenset())  # their dead letters are the density agent's to report
        done = [c for c in good if isinstance(c, Completion)]
        with self._lock:
            for c in done:
                self.serving(self.predictor).complete(c.request_id, c.service, c.prompt_tokens, c.output_tokens)
        return len(done)

    def handle(self, msgs: list[RawMessage], now: float) -> list[EventRecord]:
        with self._lock:
            return self._handle(msgs, now)

    def _handle(self, msgs: list[RawMessage], now: float) -> list[EventRecord]:
        good: list[EventRecord] = []
        bad: list[EventRecord] = []
        for m in msgs:  # one at a time: a request refused for its time is dead-lettered with its coordinates
            g, b = parse_messages([m], now, self.REPORTS)
            bad += b
            for rec in g:
                why = self.skew.check(rec.ts, now) if isinstance(rec, RequestEvent) else None
                if why is None:
                    good.append(rec)
                else:
                    bad.append(dead_letter(m.topic, m.value, why, now, m.key, m.partition, m.offset))
        for c in good:
            if isinstance(c, Completion):  # completions handed in with requests (tests, one-stream callers)
                self.serving(self.predictor).complete(c.request_id, c.service, c.prompt_tokens, c.output_tokens)
        reqs = [r for r in good if isinstance(r, RequestEvent)]
        if self._lagging([m for m in msgs if m.topic == "requests"], now):
            self.lagged_batches += 1
            if self.lagged_batches == 1 or self.lagged_batches % 100 == 0:
                log.warning("predict agent: requests waited > %.2f s; the fallback answered %d batches so far",
                            self.max_lag_s, self.lagged_batches)
            return [*bad, *predict_requests(reqs, self.serving(self.fallback))]
        return [*bad, *predict_requests(reqs, self.serving(self.predictor), self.serving(self.fallback))]

    def _lagging(self, msgs: list[RawMessage], now: float) -> bool:
        if not (self.off_loop and self.max_lag_s > 0):
            return False  # table look-ups never queue: only the encoder is worth skipping
        stamps = [m.timestamp for m in msgs if m.timestamp is not None]
        return bool(stamps) and now - min(stamps) > self.max_lag_s
