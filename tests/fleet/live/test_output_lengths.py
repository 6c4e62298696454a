"""Honest simulated lengths (issue 21, item 7): a request without output_tokens gets a length drawn from its
service's learned distribution, never 1, flagged; clamping to the engine's context is flagged too."""

from __future__ import annotations

import numpy as np

from fleet.live.instance_manager import FleetManager
from fleet.live.output_lengths import OutputLengthSampler
from fleet.live.simulated_engine import SimulatedEngineFactory
from streams.records import Completion, RouteDecision, ScaleCommand


def _run(routes: list[RouteDecision]) -> list[Completion]:
    mgr = FleetManager(SimulatedEngineFactory("llama2-7b-h100"))
    mgr.offer(ScaleCommand(ts=0.0, service="svc", target_instances=4, current_instances=0, policy="p",
                           reason="bootstrap", bootstrap=True))
    mgr.advance(0.0)
    for r in routes:
        mgr.offer(r)
    return [c for c in mgr.advance(10_000.0) if isinstance(c, Completion)]


def _route(i: int, out: int | None, predicted: float = 300.0, prompt: int = 100) -> RouteDecision:
    return RouteDecision(ts=1.0 + i * 0.5, request_id=f"r{i}", service="svc", instance_id=f"svc-{i % 4}",
                         prompt_tokens=prompt, predicted_tokens=predicted, output_tokens=out, policy="p")


def test_a_gateway_request_without_output_tokens_gets_a_sampled_length_not_one() -> None:
    done = _run([_route(i, None) for i in range(200)])
    assert len(done) == 200 and all(c.output_sampled is True and c.truncated is False for c in done)
    lengths = np.array([c.output_tokens for c in done])
    assert (lengths == 1).mean() < 0.05 and 200 < lengths.mean() < 420  # around the prediction (300), not 1
    assert len(set(lengths.tolist())) > 50  # a distribution, not a constant


def test_once_the_service_has_shown_its_lengths_they_are_what_is_sampled() -> None:
    known = [_route(i, 40 + (i % 3) * 10) for i in range(60)]  # the service's real lengths: 40, 50, 60
    unknown = [_route(60 + i, None, predicted=900.0) for i in range(60)]
    done = {c.request_id: c for c in _run(known + unknown)}
    assert all(done[f"r{i}"].output_sampled is False for i in range(60))
    assert {done[f"r{60 + i}"].output_tokens for i in range(60)} <= {40, 50, 60}


def test_clamping_to_the_context_is_flagged() -> None:
    done = {c.request_id: c for c in _run([_route(0, 100, prompt=6000), _route(1, 100, prompt=100)])}
    assert done["r0"].truncated is True and done["r0"].prompt_tokens == 4095 and done["r0"].output_tokens == 1
    assert done["r1"].truncated is False


def test_the_sampler_never_returns_less_than_one_and_is_reproducible() -> None:
    a, b = OutputLengthSampler(seed=3), OutputLengthSampler(seed=3)
    xs = [a.sample("s", p) for p in (None, 0.0, 0.5, 1.0, 5.0, 1e5)]
    assert xs == [b.sample("s", p) for p in (None, 0.0, 0.5, 1.0, 5.0, 1e5)] and min(xs) >= 1
