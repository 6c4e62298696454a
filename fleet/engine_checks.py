"""Recount of an instance's KV bookkeeping from its sequences (test mode: after every step)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fleet.decode_math import phase_of

if TYPE_CHECKING:
    from fleet.engine_instance import EngineInstance

__all__ = ["KVAccountingError", "check_invariants"]


class KVAccountingError(AssertionError):
    """The instance's KV bookkeeping disagrees with a recount (a simulator bug, never a workload property)."""


def check_invariants(inst: EngineInstance) -> None:
    """Recount KV blocks and decode-phase bookkeeping from the sequences; raise on any disagreement."""
    dec = sum(-(-(r.kv_base + inst.steps) // inst.bs) for r in inst.decoding.values())
    pre = sum(r.blocks for r in inst.prefilling)
    if dec + pre != inst.used_blocks:
        raise KVAccountingError(f"{inst.instance_id}: used_blocks {inst.used_blocks} != recount {dec + pre}")
    if not 0 <= inst.used_blocks <= inst.total_blocks:
        raise KVAccountingError(f"{inst.instance_id}: used_blocks {inst.used_blocks} outside "
                                f"[0, {inst.total_blocks}]")
    phase = [0] * inst.bs
    for r in inst.decoding.values():
        phase[phase_of(r.kv_base, inst.bs)] += 1
        if not r.prompt < r.kv_base + inst.steps <= r.prompt + r.output:
            raise KVAccountingError(f"{r}: footprint {r.kv_base + inst.steps} out of range")
    if phase != inst.phase or sum(r.kv_base for r in inst.decoding.values()) != inst.base_sum:
        raise KVAccountingError(f"{inst.instance_id}: decode-phase bookkeeping drifted")
    if len(inst.decoding) + len(inst.prefilling) > inst.cfg.max_num_seqs:
        raise KVAccountingError(f"{inst.instance_id}: more running sequences than max_num_seqs")
