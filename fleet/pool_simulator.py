"""Several services' fleets on one shared GPU pool, simulated together.

Each service is a :class:`fleet.simulator.Simulator` of its own (its own router, scaler, instances, arrivals):
services interact only through the :class:`fleet.pool.InstancePool` (a scale-up takes free GPUs or waits; a stop
frees one for the longest-waiting service). The driver advances the services in lock-step windows of ``sync_s``
of simulated time, service after service (sorted by name) inside a window: events of one service keep their exact
order, and pool operations of different services inside one window are ordered by service instead of by time —
an error of at most ``sync_s`` (1 s; half the cold start when that is shorter) in when a freed GPU is seen, far
below any scaler's period or cold start. Windows with no event are skipped.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from fleet.itl import ItlHistogram
from fleet.pool import InstancePool
from fleet.sim_inputs import SimResult
from fleet.simulator import Simulator

__all__ = ["PoolRun", "simulate_pool", "merge_results"]


class PoolRun:
    """The per-service results of one pooled run and the pool's own counters."""

    def __init__(self, results: list[SimResult], pool: InstancePool) -> None:
        self.results = results
        self.pool_waits = pool.waits
        self.pool_wait_instance_s = pool.wait_instance_s


def simulate_pool(sims: Sequence[Simulator], pool: InstancePool, sync_s: float = 1.0) -> PoolRun:
    """Run ``sims`` (built with ``pool=pool``) to the end together; results in the order of ``sims``."""
    if any(s.pool is not pool for s in sims):
        raise ValueError("every simulator of a pooled run must be built with the same pool")
    cold = min(s.cfg.engine.cold_start_s for s in sims) if sims else 0.0
    step = min(sync_s, cold / 2) if cold > 0 else min(sync_s, 0.01)
    for s in sims:
        s.begin()
    active = list(range(len(sims)))
    t = 0.0
    while active:
        first = min(sims[i].next_time() for i in active)
        if first == math.inf:
            break
        t = max(t + step, first + step)  # skip empty windows
        for i in list(active):
            if sims[i].advance(t):
                active.remove(i)
                pool.want(sims[i], 0, sims[i].now)  # a service with nothing left to serve waits for nothing
    end = max((s.end_time() for s in sims), default=0.0)
    return PoolRun([s.finish_run(end) for s in sims], pool)


def merge_results(results: Sequence[SimResult], services: Sequence[str]) -> SimResult:
    """The whole pool as one result (request arrays concatenated service after service, instance ids prefixed by
    the service, time series summed over services), for the row's totals and the plots."""
    offsets = np.cumsum([0] + [len(r.instances) for r in results[:-1]])
    instances = [{**m, "instance_id": f"{svc}/{m['instance_id']}"}
                 for svc, r in zip(services, results, strict=True) for m in r.instances]
    instance = np.concatenate([np.where(r.instance >= 0, r.instance + off, -1)
                               for r, off in zip(results, offsets, strict=True)])
    samples = [r.fleet_samples for r in results if len(r.fleet_samples)]
    if samples:
        rows = min(len(x) for x in samples)
        fleet = samples[0][:rows].copy()
        for x in samples[1:]:
            fleet[:, 1:] += x[:rows, 1:]
    else:
        fleet = np.zeros((0, 6))
    per_instance = [np.column_stack([r.instance_samples[:, :1], r.instance_samples[:, 1:2] + off,
                                     r.instance_samples[:, 2:]])
                    for r, off in zip(results, offsets, strict=True) if len(r.instance_samples)]
    cat = np.concatenate
    itl = ItlHistogram()  # every service's inter-token gaps
    for r in results:
        itl.merge(r.itl)
    return SimResult(
        arrival=cat([r.arrival for r in results]), prompt_tokens=cat([r.prompt_tokens for r in results]),
        output_tokens=cat([r.output_tokens for r in results]), first_token=cat([r.first_token for r in results]),
        finish=cat([r.finish for r in results]), preemptions=cat([r.preemptions for r in results]),
        instance=instance, drop_reason=[d for r in results for d in r.drop_reason],
        truncated=sum(r.truncated for r in results), instances=instances,
        scale_actions=sorted((a for r in results for a in r.scale_actions), key=lambda a: float(a["t"])),  # type: ignore[arg-type]
        fleet_samples=fleet,
        instance_samples=cat(per_instance) if per_instance else np.zeros((0, 6)),
        end_time=max(r.end_time for r in results), control_cpu_s=sum(r.control_cpu_s for r in results),
        wall_s=max(r.wall_s for r in results), itl=itl)  # the services run in one loop: their walls overlap
