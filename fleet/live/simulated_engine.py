"""The simulator's :class:`EngineInstance` behind the live adapter interface, advanced in event time.

Requests are prepared exactly as the offline simulator prepares them (output at least one token; prompt +
output above ``max_model_len`` truncated the way vLLM stops at the length limit), so a live run and an offline
``preserve eval`` of the same trace serve the same work. Both adjustments are visible: a truncated request's
completion is flagged ``truncated``; a request without ``output_tokens`` (a gateway's) gets a length drawn from
its service's learned distribution (``output_lengths``), flagged ``output_sampled``.
"""

from __future__ import annotations

import itertools

from fleet.engine_instance import EngineInstance
from fleet.live.base_engine_adapter import (
    EngineAdapter,
    EngineFactory,
    EngineStatus,
    FinishedRequest,
    LiveRequest,
)
from fleet.live.output_lengths import OutputLengthSampler
from fleet.sim_types import EngineEventKind, SimRequest
from streams.policies.engine_profiles import EngineConfig, get_preset
from streams.policies.fleet_rules import served_lengths

__all__ = ["SimulatedEngine", "SimulatedEngineFactory"]


class SimulatedEngine(EngineAdapter):
    """:param config: engine preset. :param instance_id: the instance's name.
    :param lengths: where lengths of requests without ``output_tokens`` come from (shared by a factory's engines)."""

    def __init__(self, config: EngineConfig, instance_id: str, lengths: OutputLengthSampler | None = None) -> None:
        self.cfg = config
        self.engine = EngineInstance(config, instance_id)
        self.lengths = lengths or OutputLengthSampler()
        self._idx = itertools.count()
        self._done: list[FinishedRequest] = []
        self._flags: dict[str, tuple[bool, bool]] = {}  # request id -> (output sampled, truncated)
        self._now = 0.0

    def submit(self, request: LiveRequest, now: float) -> None:
        self._collect(now)
        wanted = request.output_tokens
        if wanted is None:
            wanted = self.lengths.sample(request.service, request.predicted_tokens)
        else:
            self.lengths.learn(request.service, wanted)
        prompt, out, truncated = served_lengths(request.prompt_tokens, wanted, self.cfg.max_model_len)
        req = SimRequest(next(self._idx), request.request_id, request.arrival, prompt, out,
                         float(request.predicted_tokens or 0.0))
        self._flags[request.request_id] = (request.output_tokens is None, truncated)
        self.engine.add_request(req, self._now)

    def _collect(self, now: float) -> None:
        self._now = max(self._now, now)
        for ev in self.engine.advance(self._now):
            if ev.kind == EngineEventKind.FINISHED:
                r = ev.request
                sampled, truncated = self._flags.pop(r.request_id, (False, False))
                self._done.append(FinishedRequest(r.request_id, r.arrival, r.first_token_s, ev.time, r.prompt,
                                                  r.output, r.preemptions, sampled, truncated))

    def advance(self, now: float) -> list[FinishedRequest]:
        self._collect(now)
        done, self._done = self._done, []
        return done

    def status(self) -> EngineStatus:
        v = self.engine.refresh_view(self._now)
        return EngineStatus(v.running, v.waiting, v.kv_used_tokens, v.kv_capacity_tokens)

    def idle(self) -> bool:
        return self.engine.idle() and not self._done


class SimulatedEngineFactory(EngineFactory):
    """:param preset: engine preset name (``streams.policies.engine_profiles``). :param cold_start_s: override of its cold start."""

    def __init__(self, preset: str = "llama2-7b-h100", cold_start_s: float | None = None, seed: int = 0) -> None:
        self.config = get_preset(preset)
        self._cold = self.config.cold_start_s if cold_start_s is None else cold_start_s
        self.lengths = OutputLengthSampler(seed)  # one learned distribution per service, across its instances

    def create(self, service: str, instance_id: str, now: float) -> EngineAdapter:
        return SimulatedEngine(self.config, instance_id, self.lengths)

    @property
    def cold_start_s(self) -> float:
        return self._cold

    @property
    def adopts_instances(self) -> bool:
        return True  # a simulated instance is its id: a restarted manager serves under the same ids

    @property
    def kv_capacity_tokens(self) -> int:
        return self.config.kv_capacity_tokens
