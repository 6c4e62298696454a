"""The recent past as the PreServe scaler's short-term loop needs it: load, request mix, SLO misses.

One sliding window of ``span_s`` (event time) over arrivals and completions gives
* the prompt-token rate (by arrival) and the generated-token *demand* rate, also by arrival: each arrival's
  predicted output length, scaled by how the completions of the same window compared with their predictions
  (``sum actual / sum predicted``). Counting generated tokens when requests complete instead cannot show
  more than the fleet already serves: a saturated fleet completes at its own pace, so the measured load
  stays at its capacity while the queue and the TPOT grow (the rise of the diurnal trace's peak);
* the request mix (mean prompt and output of the completions), from which the per-instance capacity is
  profiled over the same span as the rates it converts (a 50-completion EWMA swung it by ~20% between ticks);
* the SLO misses among the completions that count.

Pure: explicit times, no I/O; amortised O(1) per event.
"""

from __future__ import annotations

import math
from collections import deque

__all__ = ["RecentLoad", "binomial_tail"]


class RecentLoad:
    """Sliding-window account of arrivals and completions.

    :param span_s: window of the arrival rates (event time): short, so that a rise shows within a minute.
    :param mix_span_s: window of the completions (request mix, the predictor's calibration, SLO misses):
        longer, since these drift slowly and a short window only adds noise.
    :param prior_prompt: mean prompt length assumed before any completion.
    :param prior_output: mean output length assumed before any completion.
    :param pending_s: forget the prediction of a request that has not completed within this long (a dropped
        one never does), so that the table of in-flight predictions stays bounded.
    """

    def __init__(self, span_s: float, mix_span_s: float, prior_prompt: float = 1000.0,
                 prior_output: float = 200.0, pending_s: float = 3600.0) -> None:
        if span_s <= 0 or mix_span_s <= 0:
            raise ValueError("span_s and mix_span_s must be > 0")
        self.span_s, self.mix_span_s, self.pending_s = span_s, mix_span_s, pending_s
        self.prior = (prior_prompt, prior_output)
        self._first: float | None = None
        self._arrivals: deque[tuple[float, int, float]] = deque()  # (t, prompt, predicted output)
        self._arr = [0.0, 0.0]  # sums: prompt, predicted output
        self._pending: dict[str, tuple[float, float]] = {}  # request id -> (arrival, predicted), in arrival order
        self._done: deque[tuple[float, int, int, float]] = deque()  # (t, prompt, output, predicted or 0)
        self._dn = [0.0, 0.0, 0.0, 0.0]  # sums: prompt, output, predicted, output of those with a prediction
        self._slo: deque[tuple[float, int]] = deque()  # (t, 1 if missed)
        self.slo_misses = 0

    def arrival(self, now: float, request_id: str, prompt_tokens: int, predicted_tokens: float) -> None:
        if self._first is None:
            self._first = now
        self._arrivals.append((now, prompt_tokens, predicted_tokens))
        self._arr[0] += prompt_tokens
        self._arr[1] += predicted_tokens
        if predicted_tokens > 0:
            self._pending[request_id] = (now, predicted_tokens)

    def completion(self, now: float, request_id: str, prompt_tokens: int, output_tokens: int,
                   missed: int | None) -> None:
        """A completion; ``missed`` is 1/0 for one judged against the SLO, None for one that does not count."""
        if self._first is None:
            self._first = now
        predicted = self._pending.pop(request_id, (now, 0.0))[1]
        self._done.append((now, prompt_tokens, output_tokens, predicted))
        self._dn[0] += prompt_tokens
        self._dn[1] += output_tokens
        self._dn[2] += predicted
        self._dn[3] += output_tokens if predicted > 0 else 0
        if missed is not None:
            self._slo.append((now, missed))
            self.slo_misses += missed

    def age(self, now: float) -> None:
        """Forget what left the window (the last completion stays, so the mix is never empty again)."""
        cut = now - self.span_s
        while self._arrivals and self._arrivals[0][0] < cut:
            _, p, o = self._arrivals.popleft()
            self._arr[0] -= p
            self._arr[1] -= o
        cut = now - self.mix_span_s
        while len(self._done) > 1 and self._done[0][0] < cut:
            _, p, o, pred = self._done.popleft()
            self._dn[0] -= p
            self._dn[1] -= o
            self._dn[2] -= pred
            self._dn[3] -= o if pred > 0 else 0
        while self._slo and self._slo[0][0] < cut:
            self.slo_misses -= self._slo.popleft()[1]
        while self._pending:
            oldest = next(iter(self._pending))
            if self._pending[oldest][0] >= now - self.pending_s:
                break
            del self._pending[oldest]

    def _span(self, now: float, floor_s: float, span_s: float) -> float:
        """Seconds a window of ``span_s`` covers: less until that much has been seen."""
        seen = now - self._first if self._first is not None else 0.0
        return min(span_s, max(seen, floor_s))

    def rates(self, now: float, floor_s: float = 1.0) -> tuple[float, float]:
        """(prompt tokens/s, generated tokens/s) demanded by the arrivals of the window."""
        span = self._span(now, floor_s, self.span_s)
        if self._arr[1] <= 0:  # no predictions at all: generated tokens as completed
            return self._arr[0] / span, self._dn[1] / self._span(now, floor_s, self.mix_span_s)
        return self._arr[0] / span, self._arr[1] * self.calibration() / span

    def calibration(self) -> float:
        """Actual over predicted output tokens of the window's completions (1 without predictions)."""
        return self._dn[3] / self._dn[2] if self._dn[2] > 0 else 1.0

    def mix(self) -> tuple[float, float]:
        """Mean prompt and output tokens of the window's completions (the priors before any)."""
        n = len(self._done)
        return (self._dn[0] / n, self._dn[1] / n) if n else self.prior

    def miss_share(self) -> float:
        return self.slo_misses / len(self._slo) if self._slo else 0.0

    def judged(self) -> int:
        return len(self._slo)

    def reset_slo(self) -> None:
        self._slo.clear()
        self.slo_misses = 0


def binomial_tail(k: int, n: int, p: float) -> float:
    """P(X >= k) for X ~ Binomial(n, p): how likely ``k`` or more misses in ``n`` completions are by chance
    when the true miss rate is ``p``. Log-space terms, O(k)."""
    if k <= 0 or p >= 1.0:
        return 1.0
    if k > n or p <= 0.0:
        return 0.0
    lp, lq, ln = math.log(p), math.log1p(-p), math.lgamma(n + 1)
    below = sum(math.exp(ln - math.lgamma(i + 1) - math.lgamma(n - i + 1) + i * lp + (n - i) * lq)
                for i in range(k))
    return max(0.0, 1.0 - below)
