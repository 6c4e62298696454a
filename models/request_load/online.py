"""Online correction of output-length predictions from completions, per service (pure: no I/O, no clock).

Why: the offline calibration (``calibration.py``) is fitted once, on validation; a service's true lengths move
(a model upgrade, a new system prompt, a different user mix: e.g. x1.5), and the scaler's sums and the router's
quantile would stay wrong until someone re-fits. Completions report the actual length of every request, so
each service re-calibrates itself from its own recent (prediction, actual) pairs:

- per service, a window of the last ``window`` standardised residuals ``z = (log1p(y) - log1p(p50)) / s``
  with ``s = (log1p(p90) - log1p(p10)) / (2 z90)`` of the *base* (offline-calibrated) prediction;
- corrected quantile ``tau`` of a row: ``log1p(p50) + s * (w Zhat(tau) + (1 - w) z_tau)``, where ``Zhat`` is the
  window's empirical quantile, ``z_tau`` the base prediction's own standardised quantile and
  ``w = n / (n + prior_weight)``: with no completions yet the base answers unchanged, with a full window the
  service's recent residuals dominate. A shift (x1.5) moves ``Zhat`` by ``log(1.5)/s``; a wider spread widens it;
- corrected mean: base mean x ``(w R + 1 - w)`` with ``R = sum(y) / sum(base mean)`` over the window (actuals
  capped at ``cap_ratio`` x their base mean, so one runaway response cannot move a service's sums by tens of %).

Memory is bounded: ``window`` floats x 2 per service, at most ``max_services`` services (least recently
updated evicted), at most ``max_pending`` remembered predictions awaiting their completion.

Use (agent and simulator alike)::

    corr = OnlineCorrection(OnlineConfig())
    base = predictor.predict(prompts, prompt_tokens, serving_models)   # offline-calibrated
    corr.remember(request_ids, services, base)                         # keeps what observe() needs
    out = corr.correct(services, base)                                 # what routing/scaling get
    ...
    corr.complete(request_id, output_tokens)                           # on each completion
"""

from __future__ import annotations

import bisect
import math
from collections import OrderedDict, deque
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from models.request_load.base_predictor import LengthPredictions
from models.request_load.calibration import MIN_SPREAD, Z90

__all__ = ["OnlineConfig", "OnlineCorrection", "ServiceState", "base_parts", "base_parts_one"]


@dataclass(frozen=True)
class OnlineConfig:
    window: int = field(default=256, metadata={"help": "completions per service the correction remembers"})
    prior_weight: float = field(default=16.0, metadata={
        "help": "pseudo-completions of the offline calibration: with n completions the window weighs n/(n+this)"})
    max_services: int = field(default=4096, metadata={"help": "services tracked (least recently updated dropped)"})
    max_pending: int = field(default=200_000, metadata={
        "help": "predictions remembered until their completion arrives (oldest dropped)"})
    cap_ratio: float = field(default=10.0, metadata={
        "help": "an actual length counts at most this many times its predicted mean in the mean's ratio"})

    def __post_init__(self) -> None:
        if self.window < 1 or self.max_services < 1 or self.max_pending < 0:
            raise ValueError("window and max_services must be >= 1, max_pending >= 0")
        if not (self.prior_weight >= 0 and self.cap_ratio > 1):
            raise ValueError("prior_weight must be >= 0 and cap_ratio > 1")


@dataclass
class ServiceState:
    z: deque[float]
    actual: deque[float]
    predicted_mean: deque[float]
    observed: int = 0  # completions seen in total (not only in the window)
    sum_actual: float = 0.0  # running sums of the window's actual and predicted_mean (mean_scale in O(1))
    sum_predicted: float = 0.0
    _sorted: list[float] = field(default_factory=list)  # the window's z, sorted (quantiles in O(1) per tau)
    _curve: np.ndarray | None = None  # cached window quantiles at the taus last asked for
    _curve_taus: tuple[float, ...] = ()

    def add(self, z: float, actual: float, predicted_mean: float) -> None:
        if self.z.maxlen is not None and len(self.z) == self.z.maxlen:
            del self._sorted[bisect.bisect_left(self._sorted, self.z[0])]
            self.sum_actual -= self.actual[0]
            self.sum_predicted -= self.predicted_mean[0]
        self.sum_actual += actual
        self.sum_predicted += predicted_mean
        bisect.insort(self._sorted, z)
        self.z.append(z)
        self.actual.append(actual)
        self.predicted_mean.append(predicted_mean)
        self.observed += 1
        self._curve = None

    def window_quantiles(self, taus: tuple[float, ...]) -> np.ndarray:
        """``np.quantile(window, taus)`` (linear interpolation), from the sorted window without sorting it."""
        if self._curve is None or self._curve_taus != taus:
            xs, last = self._sorted, len(self._sorted) - 1
            out = []
            for tau in taus:
                pos = tau * last
                lo = int(pos)
                hi = min(lo + 1, last)
                out.append(xs[lo] + (xs[hi] - xs[lo]) * (pos - lo))
            self._curve = np.array(out)
            self._curve_taus = taus
        return self._curve


def base_parts(p10: np.ndarray, p50: np.ndarray, p90: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each row's base prediction in log space: centre ``log1p(p50)`` and spread (the p10..p90 width / 2 z90)."""
    centre = np.log1p(np.maximum(p50, 0.0))
    spread = np.maximum((np.log1p(np.maximum(p90, 0.0)) - np.log1p(np.maximum(p10, 0.0))) / (2 * Z90), MIN_SPREAD)
    return centre, spread


def base_parts_one(p10: float, p50: float, p90: float) -> tuple[float, float]:
    """:func:`base_parts` of one row in scalars (a completion at a time: no arrays to build)."""
    return (math.log1p(max(p50, 0.0)),
            max((math.log1p(max(p90, 0.0)) - math.log1p(max(p10, 0.0))) / (2 * Z90), MIN_SPREAD))


class OnlineCorrection:
    """Per-service correction of a base predictor's quantiles and mean from observed completions."""

    def __init__(self, cfg: OnlineConfig | None = None) -> None:
        self.cfg = cfg or OnlineConfig()
        self._services: OrderedDict[str, ServiceState] = OrderedDict()
        self._pending: OrderedDict[str, tuple[str, float, float, float, float]] = OrderedDict()
        self.unmatched = 0  # completions without a remembered prediction (other worker, evicted, restarted)

    # --- learning -----------------------------------------------------------------------------------------
    def observe(self, service: str, p10: float, p50: float, p90: float, mean: float, actual: float) -> None:
        """One completion of ``service``: its *base* prediction (before this correction) and actual length."""
        c, s = base_parts_one(p10, p50, p90)
        st = self._services.get(service)
        if st is None:
            w = self.cfg.window
            st = ServiceState(deque(maxlen=w), deque(maxlen=w), deque(maxlen=w))
            self._services[service] = st
            while len(self._services) > self.cfg.max_services:
                self._services.popitem(last=False)
        else:
            self._services.move_to_end(service)
        y = max(float(actual), 0.0)
        st.add((math.log1p(y) - c) / s, min(y, self.cfg.cap_ratio * max(float(mean), 1.0)),
               max(float(mean), 0.0))

    def remember(self, request_ids: Sequence[str], services: Sequence[str], base: LengthPredictions) -> None:
        """Keep each request's base prediction until ``complete`` (bounded: the oldest are dropped)."""
        if not self.cfg.max_pending:
            return
        p10, p50, p90 = (base.quantiles.get("p10", base.p50), base.p50, base.p90)
        for i, (rid, svc) in enumerate(zip(request_ids, services, strict=True)):
            self._pending[rid] = (svc, float(p10[i]), float(p50[i]), float(p90[i]), float(base.mean[i]))
        while len(self._pending) > self.cfg.max_pending:
            self._pending.popitem(last=False)

    def remember_one(self, request_id: str, service: str, p10: float, p50: float, p90: float, mean: float) -> None:
        """:meth:`remember` for one request, without building arrays (the simulator's per-request path)."""
        if not self.cfg.max_pending:
            return
        self._pending[request_id] = (service, p10, p50, p90, mean)
        if len(self._pending) > self.cfg.max_pending:
            self._pending.popitem(last=False)

    def complete(self, request_id: str, actual: float) -> bool:
        """Learn from the completion of a remembered request; False if its prediction is not remembered."""
        hit = self._pending.pop(request_id, None)
        if hit is None:
            self.unmatched += 1
            return False
        svc, p10, p50, p90, mean = hit
        self.observe(svc, p10, p50, p90, mean, actual)
        return True

    # --- answering ----------------------------------------------------------------------------------------
    def weight(self, service: str) -> float:
        st = self._services.get(service)
        n = len(st.z) if st is not None else 0
        return n / (n + self.cfg.prior_weight) if n else 0.0

    def mean_scale(self, service: str) -> float:
        """The factor applied to the base mean of ``service`` now (1.0 before any completion)."""
        st = self._services.get(service)
        if st is None or not st.z:
            return 1.0
        r = st.sum_actual / max(st.sum_predicted, 1e-9)
        w = self.weight(service)
        return w * r + (1 - w)

    def correct(self, services: Sequence[str], base: LengthPredictions) -> LengthPredictions:
        """``base`` corrected per service; rows of services without completions are returned unchanged."""
        n = len(services)
        if n == 0 or not self._services:
            return base
        names = sorted(base.quantiles, key=lambda k: int(k[1:])) or ["p90"]
        taus = tuple(int(k[1:]) / 100 for k in names)
        qs = np.stack([base.quantiles.get(k, base.p90) for k in names], axis=1)  # (N, T)
        p10 = base.quantiles.get("p10", base.p50)
        c, s = base_parts(p10, base.p50, base.p90)
        z_row = (np.log1p(np.maximum(qs, 0.0)) - c[:, None]) / s[:, None]
        new_q = qs.copy()
        mean = np.asarray(base.mean, dtype=np.float64).copy()
        svc = np.asarray(services, dtype=object)
        for name in set(services):
            st = self._services.get(name)
            if st is None or not st.z:
                continue
            rows = svc == name
            w = self.weight(name)
            zt = w * st.window_quantiles(taus)[None, :] + (1 - w) * z_row[rows]
            new_q[rows] = np.maximum.accumulate(np.expm1(c[rows, None] + s[rows, None] * zt), axis=1)
            mean[rows] *= self.mean_scale(name)
        quantiles = {k: new_q[:, j] for j, k in enumerate(names)} if base.quantiles else {}
        p90 = quantiles.get("p90", new_q[:, names.index("p90")] if "p90" in names else base.p90)
        return replace(base, mean=np.maximum(mean, 0.0), p90=np.maximum(p90, 0.0), quantiles=quantiles)

    def summary(self, service: str) -> dict[str, float]:
        """What the correction does for ``service`` now (for logs and metrics)."""
        st = self._services.get(service)
        n = len(st.z) if st is not None else 0
        return {"observed": float(st.observed if st else 0), "window": float(n), "weight": self.weight(service),
                "mean_scale": self.mean_scale(service),
                "z_p50": float(np.median(np.fromiter(st.z, np.float64, n))) if st and n else 0.0}

    def state(self, service: str) -> ServiceState | None:
        """The service's window (None before its first completion): read-only use (the simulator's fast path)."""
        return self._services.get(service)

    @property
    def services(self) -> list[str]:
        return list(self._services)

    @property
    def pending(self) -> int:
        return len(self._pending)
