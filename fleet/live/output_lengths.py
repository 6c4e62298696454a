"""Output lengths for requests that do not say theirs (pure; a seeded generator).

A replay carries each request's true ``output_tokens``; a gateway does not (it cannot know how long the answer will
be). A simulated engine must still generate *some* length, and serving every such request one token (the old
behaviour) makes the fleet look idle and its latencies meaningless. So the simulated fleet draws the length from
the service's learned distribution:

- the service's own output lengths seen so far (requests that did carry one, a bounded pool per service);
- until the pool holds ``min_pool`` of them, a geometric distribution whose mean is the predictor's estimate for
  this request (``predicted_tokens`` of its route: the most that is known of it), or ``default_mean`` without one.

Every drawn length is flagged (``Completion.output_sampled``), so nothing downstream mistakes it for a measured one.
"""

from __future__ import annotations

from collections import deque

import numpy as np

__all__ = ["OutputLengthSampler"]


class OutputLengthSampler:
    """:param seed: generator seed. :param pool_size: lengths kept per service. :param min_pool: lengths a
    service needs before its pool is sampled. :param default_mean: mean without a pool or a prediction."""

    def __init__(self, seed: int = 0, pool_size: int = 2048, min_pool: int = 20, default_mean: float = 256.0) -> None:
        if pool_size < 1 or min_pool < 1 or default_mean < 1:
            raise ValueError("need pool_size >= 1, min_pool >= 1 and default_mean >= 1")
        self.rng = np.random.default_rng(seed)
        self.pool_size = pool_size
        self.min_pool = min_pool
        self.default_mean = default_mean
        self._pools: dict[str, deque[int]] = {}
        self.sampled = 0

    def learn(self, service: str, output_tokens: int) -> None:
        """A request of ``service`` that carried its output length."""
        pool = self._pools.setdefault(service, deque(maxlen=self.pool_size))
        pool.append(max(1, int(output_tokens)))

    def sample(self, service: str, predicted_tokens: float | None = None) -> int:
        """A length for a request of ``service`` that carried none (at least 1)."""
        self.sampled += 1
        pool = self._pools.get(service)
        if pool is not None and len(pool) >= self.min_pool:
            return int(pool[int(self.rng.integers(len(pool)))])
        mean = predicted_tokens if predicted_tokens is not None and predicted_tokens >= 1 else self.default_mean
        return int(self.rng.geometric(1.0 / mean))
