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

from fleet.cost_model import CostModel

__all__ = ["blocks_needed", "max_decode_steps", "steps_within", "phase_of"]


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


def steps_within(cost: CostModel, dt: float, n_seqs: int, context_tokens: int, k_max: int) -> int:
    """Largest ``j <= k_max`` with ``cost.decode_run_time(j, n_seqs, context_tokens) <= dt``.

    The run time is ``j * a + c * (j * ctx + n * j (j - 1) / 2)`` (the cost model's attention grows
    arithmetically), so the root of the quadratic gives ``j`` directly; the exact check against
    ``decode_run_time`` then fixes float rounding by one step either way.
    """
    if dt <= 0 or k_max <= 0:
        return 0
    a = cost.step_time(0, n_seqs, 0)
    c = cost.c_ctx
    qa = 0.5 * c * n_seqs
    qb = a + c * context_tokens - qa
    if qa > 0:
        j = int((-qb + math.sqrt(qb * qb + 4.0 * qa * dt)) / (2.0 * qa))
    else:
        j = int(dt / qb) if qb > 0 else k_max
    j = max(0, min(j, k_max))
    run = cost.decode_run_time
    while j < k_max and run(j + 1, n_seqs, context_tokens) <= dt:
        j += 1
    while j > 0 and run(j, n_seqs, context_tokens) > dt:
        j -= 1
    return j
