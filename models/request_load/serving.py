"""Service -> serving model, per-service online fallback tables, and the composition the predict agent uses.

Why: the predictor conditions on the *serving model* (its name enters the encoder as text and as a learned
embedding; the fallback table and the calibration are keyed by it), but requests carry a *service* name. Guessing
the model from the service name was silently wrong: the example producer's ``llama-2-7b`` is not a training name
and moved predictions by +22%, and any unknown service fell to the global fallback cells unflagged. Now:

- ``ServiceMap``: configured ``service -> serving model`` entries (settings ``predictor_services`` or the CLI's
  ``--service-map``). A service is *mapped* if it has an entry or is itself a serving-model name the predictor
  knows; any other is *unmapped*: it is warned about once, its predictions carry ``unmapped=True``
  (``PredictedRequest.service_unmapped``), the encoder sees its name as given (index 0 = "any model" embedding,
  pooled calibration) and the fallback answers from tables learned online from its completions.
- ``OnlineFallbackTable``: per (unmapped service, prompt-length bucket) the recent actual lengths, so a
  service the tables have never seen gets its own mean and quantiles after ``min_count`` completions.
- ``ServingPredictor``: map -> base predictor -> online fallback for unmapped rows answered by the fallback ->
  ``OnlineCorrection`` per service. Pure apart from logging; ``now`` is never needed.
"""

from __future__ import annotations

import json
import logging
from collections import OrderedDict, deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from models.request_load.base_predictor import LengthPredictions, LengthPredictor
from models.request_load.calibration import OUTPUT_TAUS, quantile_name
from models.request_load.online import OnlineCorrection
from models.request_load.simple_predictors import DEFAULT_BUCKET_EDGES, bucket_of

__all__ = ["ServiceMap", "OnlineFallbackTable", "ServingPredictor", "ServingStats", "known_models_of"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServiceMap:
    """``entries[service] = serving model``; ``known`` = serving-model names the predictor has tables for."""

    entries: dict[str, str] = field(default_factory=dict)
    known: frozenset[str] = frozenset()

    @classmethod
    def parse(cls, text: str, known: Iterable[str] = ()) -> ServiceMap:
        """``"svc=model,svc2=model2"``, a JSON object, or ``@path`` to a JSON file of the object; "" = no entries."""
        text = text.strip()
        if text.startswith("@"):
            text = Path(text[1:]).read_text()
        entries: dict[str, str] = {}
        if text.startswith("{"):
            raw = json.loads(text)
            if not all(isinstance(k, str) and isinstance(v, str) for k, v in raw.items()):
                raise ValueError("service map JSON must map service names to serving-model names")
            entries = dict(raw)
        else:
            for part in filter(None, (p.strip() for p in text.split(","))):
                svc, eq, model = part.partition("=")
                if not eq or not svc.strip() or not model.strip():
                    raise ValueError(f"bad service map entry {part!r}: expected service=serving-model")
                entries[svc.strip()] = model.strip()
        return cls(entries, frozenset(known))

    def resolve(self, services: Sequence[str]) -> tuple[list[str], np.ndarray]:
        """(serving model of each request, unmapped flag of each request)."""
        models = [self.entries.get(s, s) for s in services]
        unmapped = np.fromiter((s not in self.entries and s not in self.known for s in services), bool, len(services))
        return models, unmapped


def known_models_of(predictor: LengthPredictor) -> frozenset[str]:
    """Serving-model names a predictor has tables for (its calibration's or its fallback table's)."""
    names: set[str] = set()
    for part in (predictor, getattr(predictor, "fallback", None)):
        cal = getattr(part, "calibration", None)
        if cal is not None:
            names |= set(cal.curves)
        table = getattr(part, "table", None)
        if table is not None:
            names |= {s for s, _ in table.cells}
    return frozenset(names - {"*"})


class OnlineFallbackTable:
    """Recent actual lengths per (service, prompt-length bucket), bounded: ``window`` per service, at most
    ``max_services`` services (least recently updated dropped)."""

    def __init__(self, window: int = 512, min_count: int = 20, max_services: int = 1024,
                 edges: Sequence[int] = DEFAULT_BUCKET_EDGES) -> None:
        self.window = window
        self.min_count = min_count
        self.max_services = max_services
        self.edges = tuple(edges)
        self._rows: OrderedDict[str, deque[tuple[int, float]]] = OrderedDict()

    def observe(self, service: str, prompt_tokens: int, actual: float) -> None:
        rows = self._rows.get(service)
        if rows is None:
            rows = self._rows[service] = deque(maxlen=self.window)
            while len(self._rows) > self.max_services:
                self._rows.popitem(last=False)
        else:
            self._rows.move_to_end(service)
        rows.append((int(bucket_of(np.array([prompt_tokens]), self.edges)[0]), max(float(actual), 0.0)))

    def count(self, service: str) -> int:
        return len(self._rows.get(service, ()))

    def lookup(self, service: str, prompt_tokens: Sequence[int],
               taus: Sequence[float] = OUTPUT_TAUS) -> tuple[np.ndarray, np.ndarray] | None:
        """(mean (N,), quantiles (N, len(taus))) from the service's (bucket) rows, backing off to all its rows
        where a bucket has fewer than ``min_count``; None while the service has fewer than ``min_count``."""
        rows = self._rows.get(service)
        if rows is None or len(rows) < self.min_count:
            return None
        b = np.fromiter((r[0] for r in rows), np.int64, len(rows))
        y = np.fromiter((r[1] for r in rows), np.float64, len(rows))
        want = bucket_of(np.asarray(prompt_tokens, dtype=np.int64), self.edges)
        mean = np.empty(want.size)
        q = np.empty((want.size, len(taus)))
        for bk in np.unique(want):
            vals = y[b == bk] if int((b == bk).sum()) >= self.min_count else y
            sel = want == bk
            mean[sel] = vals.mean()
            q[sel] = np.quantile(vals, taus)
        return mean, q


@dataclass
class ServingStats:
    unmapped_rows: int = 0
    unmapped_services: set[str] = field(default_factory=set)
    online_fallback_rows: int = 0


class ServingPredictor:
    """What the predict agent (and the simulator, if wired) calls: services in, corrected predictions out."""

    def __init__(self, base: LengthPredictor, service_map: ServiceMap | None = None,
                 online: OnlineCorrection | None = None, online_fallback: OnlineFallbackTable | None = None) -> None:
        """:param base: the offline predictor (model or fallback), called with serving-model names.
        :param service_map: service -> serving model; default: no entries, the predictor's own names known.
        :param online: per-service correction from completions (None = off).
        :param online_fallback: per-service tables of unmapped services (None = off)."""
        self.base = base
        self.map = service_map or ServiceMap(known=known_models_of(base))
        if not self.map.known:
            self.map = ServiceMap(self.map.entries, known_models_of(base))
        self.online = online
        self.online_fallback = online_fallback
        self.stats = ServingStats()

    def predict_with_base(self, prompts: Sequence[str | None], prompt_tokens: Sequence[int],
                          services: Sequence[str]) -> tuple[LengthPredictions, LengthPredictions]:
        """(corrected, base): ``base`` is what the online correction learns against (``remember`` it)."""
        models, unmapped = self.map.resolve(services)
        if unmapped.any():
            new = {s for s, u in zip(services, unmapped.tolist(), strict=True) if u} - self.stats.unmapped_services
            for s in sorted(new):
                log.warning("service %r has no entry in the service -> serving-model map (settings "
                            "predictor_services / --service-map) and is no serving model the predictor knows: its "
                            "predictions back off to the pooled calibration and are flagged service_unmapped", s)
            self.stats.unmapped_services |= new
            self.stats.unmapped_rows += int(unmapped.sum())
        base = self.base.predict(prompts, prompt_tokens, models)
        base = self._online_fallback(base, services, prompt_tokens, unmapped)
        base = replace(base, unmapped=unmapped)
        out = self.online.correct(services, base) if self.online is not None else base
        return out, base

    def predict(self, prompts: Sequence[str | None], prompt_tokens: Sequence[int],
                services: Sequence[str]) -> LengthPredictions:
        return self.predict_with_base(prompts, prompt_tokens, services)[0]

    def _online_fallback(self, preds: LengthPredictions, services: Sequence[str], prompt_tokens: Sequence[int],
                         unmapped: np.ndarray) -> LengthPredictions:
        """Unmapped services answered by the (global-cell) fallback get their own online table once it has
        enough completions. Only whole fallback answers are replaced: a model answer is already per prompt."""
        if self.online_fallback is None or preds.source != "fallback" or not unmapped.any():
            return preds
        mean = np.array(preds.mean, dtype=np.float64)
        quantiles = {k: np.array(v, dtype=np.float64) for k, v in preds.quantiles.items()}
        p90 = np.array(preds.p90, dtype=np.float64)
        svc = np.asarray(services, dtype=object)
        pt = np.asarray(prompt_tokens, dtype=np.int64)
        for name in {s for s, u in zip(services, unmapped.tolist(), strict=True) if u}:
            rows = np.flatnonzero(svc == name)
            got = self.online_fallback.lookup(name, pt[rows].tolist())
            if got is None:
                continue
            m, q = got
            mean[rows] = m
            for j, t in enumerate(OUTPUT_TAUS):
                if quantile_name(t) in quantiles:
                    quantiles[quantile_name(t)][rows] = q[:, j]
            p90[rows] = q[:, OUTPUT_TAUS.index(0.9)]
            self.stats.online_fallback_rows += rows.size
        return replace(preds, mean=mean, p90=p90, quantiles=quantiles)

    def remember(self, request_ids: Sequence[str], services: Sequence[str], base: LengthPredictions) -> None:
        if self.online is not None:
            self.online.remember(request_ids, services, base)

    def complete(self, request_id: str, service: str, prompt_tokens: int, actual: float) -> None:
        """Feed one completion back: the per-service correction and, for unmapped services, the online table."""
        if self.online is not None:
            self.online.complete(request_id, actual)
        if self.online_fallback is not None and service in self.stats.unmapped_services:
            self.online_fallback.observe(service, prompt_tokens, actual)
