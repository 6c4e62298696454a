"""Load anticipator: one per instance (or one per fleet), projects KV-token usage over the next seconds.

It sees only what the live route agent sees: routes (prompt length + predicted output length) and
completions (actual output, TTFT, finish). Tokens generated so far are estimated from the time since the
route and the instance's per-sequence decode rate, itself learned from completions (EWMA over
``(output - 1) / (e2e - ttft)``), starting from a prior.

A request *i* routed at ``s_i`` with prompt ``p_i`` and (conservative) predicted output ``L_i`` holds
``p_i + r * (t - s_i)`` tokens until its expected end ``e_i = s_i + L_i / r``. The projected load at time t
is therefore ``sum_{e_i > t} p_i + r * t * N(t) - r * sum_{e_i > t} s_i``. Keeping (count, sum p, sum s)
per end-time bucket makes the whole projection over the horizon O(horizon / bucket), independent of the
number of requests; each route/completion is O(log n) (a heap of expected ends drives the corrections).

Corrections: a request that outlives its prediction is extended (``L <- max(growth * L, generated +
min_extend_tokens)``); a request that ends early is simply removed, which rolls back the tokens it was
still expected to hold. When the learned rate drifts by more than ``rebuild_drift`` the expected ends are
recomputed (O(n log n), rare).
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass, field

__all__ = ["AnticipatorConfig", "LoadAnticipator"]


@dataclass(frozen=True)
class AnticipatorConfig:
    horizon_s: float = field(default=30.0, metadata={"help": "how far ahead the load is projected (s)"})
    bucket_s: float = field(default=1.0, metadata={"help": "resolution of the end-time histogram (s)"})
    decode_tokens_per_s: float = field(
        default=30.0, metadata={"help": "prior per-sequence decode rate until completions teach the real one"})
    rate_ewma: float = field(default=0.05, metadata={"help": "weight of each completion in the rate EWMA"})
    growth: float = field(default=1.5, metadata={"help": "factor applied to a prediction that was outlived"})
    min_extend_tokens: float = field(default=16.0, metadata={"help": "smallest extension (tokens)"})
    rebuild_drift: float = field(default=0.15, metadata={"help": "relative rate change that recomputes ends"})
    max_output_tokens: float = field(
        default=4096.0, metadata={"help": "no request generates more (model length): one estimated past it is "
                                          "forgotten, as its completion was evidently lost"})

    def __post_init__(self) -> None:
        if self.horizon_s <= 0 or self.bucket_s <= 0 or self.decode_tokens_per_s <= 0:
            raise ValueError("horizon_s, bucket_s and decode_tokens_per_s must be > 0")
        if not 0 < self.rate_ewma <= 1 or self.growth <= 1:
            raise ValueError("rate_ewma must be in (0, 1] and growth > 1")


@dataclass(slots=True)
class _Flight:
    prompt: float
    start: float  # relative to the anticipator's origin
    predicted: float  # output tokens currently assumed (grows on extension)
    end: float  # expected end, relative to origin
    bucket: int
    extensions: int = 0


class LoadAnticipator:
    """Current and anticipated KV-token usage of the requests routed to one instance.

    Times passed in are event times (any origin); internally they are made relative to the first event
    so that sums of start times stay well-conditioned with epoch timestamps.
    """

    def __init__(self, config: AnticipatorConfig | None = None) -> None:
        self.config = config or AnticipatorConfig()
        self.rate = self.config.decode_tokens_per_s
        self._rate_built = self.rate
        self._origin: float | None = None
        self._flights: dict[str, _Flight] = {}
        self._heap: list[tuple[float, int, str]] = []  # (end, seq, request_id), lazily invalidated
        self._seq = 0
        self._buckets: dict[int, list[float]] = {}  # bucket -> [count, sum prompt, sum start]
        self._n = 0
        self._sum_prompt = 0.0
        self._sum_start = 0.0
        self._version = 0
        self._cache: tuple[int, int, list[float]] | None = None
        self.extensions = 0

    # ----------------------------------------------------------------- events
    def add(self, request_id: str, prompt_tokens: float, predicted_tokens: float, now: float) -> None:
        """A request was routed here at ``now`` and will generate about ``predicted_tokens``."""
        t = self._rel(now)
        if request_id in self._flights:
            self.remove(request_id, now)
        predicted = max(1.0, float(predicted_tokens))
        f = _Flight(float(prompt_tokens), t, predicted, t + predicted / self.rate, 0)
        self._insert(request_id, f)

    def remove(self, request_id: str, now: float) -> bool:
        """The request finished (or was dropped): its remaining anticipated tokens are rolled back."""
        f = self._flights.pop(request_id, None)
        if f is None:
            return False
        self._unbucket(f)
        return True

    def complete(self, request_id: str, output_tokens: int, e2e_s: float, ttft_s: float, now: float) -> bool:
        """Completion: remove the request and learn the decode rate from it."""
        decode_s = e2e_s - ttft_s
        if output_tokens > 1 and decode_s > 0:
            observed = (output_tokens - 1) / decode_s
            a = self.config.rate_ewma
            self.rate = (1 - a) * self.rate + a * observed
        removed = self.remove(request_id, now)
        if abs(self.rate - self._rate_built) > self.config.rebuild_drift * self._rate_built:
            self._rebuild(now)
        return removed

    def advance(self, now: float) -> None:
        """Extend every request that has outlived its expected end (amortised O(log n) each)."""
        t = self._rel(now)
        while self._heap and self._heap[0][0] <= t:
            end, _, rid = heapq.heappop(self._heap)
            f = self._flights.get(rid)
            if f is None or f.end != end:
                continue  # stale heap entry
            generated = self.rate * (t - f.start)
            if generated >= self.config.max_output_tokens:
                self._flights.pop(rid)
                self._unbucket(f)
                continue
            self._unbucket_keep(f)
            f.predicted = min(max(f.predicted * self.config.growth, generated + self.config.min_extend_tokens),
                              self.config.max_output_tokens)
            f.end = f.start + f.predicted / self.rate
            f.extensions += 1
            self.extensions += 1
            self._bucket(rid, f)

    # ---------------------------------------------------------------- queries
    @property
    def in_flight(self) -> int:
        return self._n

    def current_load(self, now: float) -> float:
        """Estimated KV tokens held now (prompts + tokens generated so far). Call :meth:`advance` first."""
        t = self._rel(now)
        return self._sum_prompt + self.rate * (t * self._n - self._sum_start)

    def profile(self, now: float) -> tuple[float, list[float]]:
        """(first grid time, projected load at each grid point) over the horizon; grid step = bucket_s.

        Grid point k is the end of bucket ``b0 + k`` (b0 = bucket of ``now``); the values are exact there,
        so a peak between grid points is under-read by at most ``rate * bucket_s`` tokens per request.
        """
        self.advance(now)
        t = self._rel(now)
        dt = self.config.bucket_s
        b0 = math.floor(t / dt)
        if self._cache is None or self._cache[0] != self._version or self._cache[1] != b0:
            self._cache = (self._version, b0, self._project(b0))
        return (b0 + 1) * dt + self._origin_or(now), self._cache[2]

    def max_load(self, now: float, horizon_s: float | None = None) -> float:
        """Maximum anticipated load over ``[now, now + horizon]`` (current load included)."""
        horizon = self.config.horizon_s if horizon_s is None else horizon_s
        t0, loads = self.profile(now)
        peak = self.current_load(now)
        k_max = min(len(loads), max(0, math.ceil((now + horizon - t0) / self.config.bucket_s) + 1))
        for k in range(k_max):
            peak = max(peak, loads[k])
        return peak

    def peak_with(self, prompt_tokens: float, predicted_tokens: float, now: float) -> float:
        """Peak load over the new request's expected lifetime if it were added now (the router's question).

        The new request holds ``prompt + r * (t - now)``; the peak is taken over its lifetime only, because
        what happens after it ends does not slow it down.
        """
        t0, loads = self.profile(now)
        life = min(max(1.0, predicted_tokens) / self.rate, self.config.horizon_s)
        peak = self.current_load(now) + prompt_tokens
        dt = self.config.bucket_s
        for k, load in enumerate(loads):
            t = t0 + k * dt
            if t - now > life:
                break
            peak = max(peak, load + prompt_tokens + self.rate * (t - now))
        return peak

    def expected_usage(self, now: float, horizon_s: float | None = None) -> float:
        """Time-averaged anticipated load over the horizon (token-seconds / s): how busy the instance will be."""
        horizon = self.config.horizon_s if horizon_s is None else horizon_s
        t0, loads = self.profile(now)
        k_max = min(len(loads), max(1, math.ceil((now + horizon - t0) / self.config.bucket_s)))
        return (self.current_load(now) + sum(loads[:k_max])) / (k_max + 1)

    # -------------------------------------------------------------- internals
    def _rel(self, now: float) -> float:
        if self._origin is None:
            self._origin = now
        return now - self._origin

    def _origin_or(self, now: float) -> float:
        return self._origin if self._origin is not None else now

    def _project(self, b0: int) -> list[float]:
        dt, r = self.config.bucket_s, self.rate
        n, sp, ss = self._n, self._sum_prompt, self._sum_start
        # requests expected to end in buckets < b0 are overdue and were extended by advance()
        out: list[float] = []
        for k in range(math.ceil(self.config.horizon_s / dt)):
            agg = self._buckets.get(b0 + k)  # these end before (b0 + k + 1) * dt
            if agg is not None:
                n -= int(agg[0])
                sp -= agg[1]
                ss -= agg[2]
            t = (b0 + k + 1) * dt
            out.append(max(0.0, sp + r * (t * n - ss)) if n > 0 else 0.0)
        return out

    def _insert(self, rid: str, f: _Flight) -> None:
        self._flights[rid] = f
        self._bucket(rid, f)

    def _bucket(self, rid: str, f: _Flight) -> None:
        f.bucket = math.floor(f.end / self.config.bucket_s)
        agg = self._buckets.setdefault(f.bucket, [0.0, 0.0, 0.0])
        agg[0] += 1
        agg[1] += f.prompt
        agg[2] += f.start
        self._n += 1
        self._sum_prompt += f.prompt
        self._sum_start += f.start
        self._seq += 1
        heapq.heappush(self._heap, (f.end, self._seq, rid))
        self._version += 1

    def _unbucket_keep(self, f: _Flight) -> None:
        agg = self._buckets[f.bucket]
        agg[0] -= 1
        agg[1] -= f.prompt
        agg[2] -= f.start
        if agg[0] <= 0:
            del self._buckets[f.bucket]
        self._n -= 1
        self._sum_prompt -= f.prompt
        self._sum_start -= f.start
        self._version += 1

    def _unbucket(self, f: _Flight) -> None:
        self._unbucket_keep(f)
        if self._n == 0:  # reset accumulated float error
            self._sum_prompt = self._sum_start = 0.0
            self._buckets.clear()
            self._heap.clear()

    def _rebuild(self, now: float) -> None:
        """The learned rate moved: recompute expected ends (requests keep their predicted lengths)."""
        flights = list(self._flights.items())
        self._flights.clear()
        self._buckets.clear()
        self._heap.clear()
        self._n, self._sum_prompt, self._sum_start = 0, 0.0, 0.0
        for rid, f in flights:
            f.end = f.start + f.predicted / self.rate
            self._insert(rid, f)
        self._rate_built = self.rate
        self.advance(now)
