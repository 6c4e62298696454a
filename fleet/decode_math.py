"""Closed forms that let an instance fast-forward a run of pure-decode steps instead of looping per token.

During a decode run every running sequence gains one token per step. Sequence ``i`` with footprint
``kv_base_i + steps`` needs a new KV block at the step that lifts ``steps`` to a value ``s`` with
``s % block_size == (1 - kv_base_i) % block_size`` (its last block was full before that step). So the
instance keeps ``phase_counts[r]`` = number of decoding sequences whose block-boundary phase is ``r``; then
the blocks a run of ``k`` steps needs, and the longest run that the free blocks allow, are O(block_size)
instead of O(sequences x steps). Any ``block_size`` consecutive steps need exactly one block per sequence.
"""

from __future__ import annotations

import math

from streams.policies.cost_model import CostModel

__all__ = ["blocks_needed", "max_decode_steps", "phase_of", "DecodeRun"]


def phase_of(kv_base: int, block_size: int) -> int:
    """The step phase (``steps % block_size``) at which a sequence with this ``kv_base`` needs a new block."""
    return (1 - kv_base) % block_size


def blocks_needed(phase_counts: list[int], steps: int, k: int) -> int:
    """New blocks needed by decode steps ``steps+1 .. steps+k`` (``phase_counts`` as in the module doc)."""
    if k <= 0:
        return 0
    bs = len(phase_counts)
    full, part = divmod(k, bs)
    total = full * sum(phase_counts) if full else 0
    first = steps + 1
    for j in range(part):
        total += phase_counts[(first + j) % bs]
    return total


def max_decode_steps(phase_counts: list[int], n_seqs: int, steps: int, free_blocks: int, limit: int) -> int:
    """Largest ``k <= limit`` such that decode steps ``steps+1 .. steps+k`` fit in ``free_blocks`` new blocks."""
    if n_seqs <= 0 or limit <= 0:
        return max(0, limit)
    bs = len(phase_counts)
    cycles = free_blocks // n_seqs
    k = cycles * bs
    if k >= limit:
        return limit
    left = free_blocks - cycles * n_seqs
    s = steps + k
    while k < limit:
        need = phase_counts[(s + 1) % bs]
        if need > left:
            break
        left -= need
        k += 1
        s += 1
    return k


class DecodeRun:
    """One planned run of ``k`` pure-decode steps of ``n`` sequences from context ``ctx``, with the cost model's
    per-step constant ``a = step_time(0, n, 0)`` and attention slope ``c`` cached, so that the many "how far is
    the run at time t" questions (policy views, cut-offs) cost a square root, not cost-model calls.
    ``time(j)`` uses the same float expression as :meth:`CostModel.decode_run_time`, so both agree exactly.
    """

    __slots__ = ("a", "c", "n", "ctx", "k")

    def __init__(self, cost: CostModel, n: int, ctx: int, k: int) -> None:
        self.a = cost.step_time(0, n, 0)
        self.c = cost.c_ctx
        self.n = n
        self.ctx = ctx
        self.k = k

    def time(self, j: int) -> float:
        """Seconds of the first ``j`` steps."""
        if j <= 0:
            return 0.0
        return j * self.a + self.c * (j * self.ctx + self.n * (j * (j - 1) // 2))

    def steps_by(self, dt: float) -> int:
        """Steps of the run finished ``dt`` seconds after its start (at most ``k``)."""
        if dt <= 0.0:
            return 0
        a, c, n, ctx, k = self.a, self.c, self.n, self.ctx, self.k
        qa = 0.5 * c * n
        qb = a + c * ctx - qa
        if qa > 0.0:
            j = int((-qb + math.sqrt(qb * qb + 4.0 * qa * dt)) / (2.0 * qa))
        else:
            j = int(dt / qb) if qb > 0.0 else k
        if j > k:
            j = k
        # exact check with time()'s expression (inlined: this runs for every instance at every arrival)
        while j > 0 and j * a + c * (j * ctx + n * (j * (j - 1) // 2)) > dt:
            j -= 1
        while j < k and (j + 1) * a + c * ((j + 1) * ctx + n * ((j + 1) * j // 2)) <= dt:
            j += 1
        return j
