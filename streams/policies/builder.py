"""The one builder of router and scaler objects from ``router:scaler(k=v)`` specs (both drivers call it).

Every policy of one run gets the same fleet bounds, freeze, engine profile, SLO and density window from
:class:`ControlSettings`: each constructor receives the ones it declares, unless the spec sets them itself. The
router parameter ``predictor=SPEC`` chooses the request-length predictor for that policy (PreServe ablations;
live, the predict stage runs it); it is given to the router only if its constructor takes it.
"""

from __future__ import annotations

import inspect
from typing import Any

import streams.policies.routers  # noqa: F401  (registers the routers)
import streams.policies.scalers  # noqa: F401  (registers the scalers)
from streams.policies.base_router import BaseRouter
from streams.policies.base_scaler import BaseScaler
from streams.policies.control_settings import ControlSettings
from streams.policies.policy_registry import ROUTERS, SCALERS, PolicySpec, PolicySpecError

__all__ = ["build_policy", "predictor_for", "frontier_specs", "canonical"]


def _accepted(cls: type, shared: dict[str, Any], given: dict[str, Any]) -> dict[str, Any]:
    params = inspect.signature(cls).parameters
    return {k: v for k, v in shared.items() if k in params and k not in given}


def _construct(cls: type, kwargs: dict[str, Any], what: str) -> Any:
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise PolicySpecError(f"{what}: {exc}") from exc


def build_policy(spec: PolicySpec, settings: ControlSettings | None = None) -> tuple[BaseRouter, BaseScaler]:
    """Fresh router and scaler objects for ``spec`` with ``settings`` (defaults when None)."""
    cfg = settings or ControlSettings()
    shared = {**cfg.policy_kwargs(), "predictor": predictor_for(spec, cfg.predictor)}
    if spec.router not in ROUTERS:
        raise PolicySpecError(f"unknown router {spec.router!r}; known: {', '.join(sorted(ROUTERS))}")
    if spec.scaler not in SCALERS:
        raise PolicySpecError(f"unknown scaler {spec.scaler!r}; known: {', '.join(sorted(SCALERS))}")
    rcls, scls = ROUTERS[spec.router], SCALERS[spec.scaler]
    rparams = dict(spec.router_params)
    if "predictor" in rparams and "predictor" not in inspect.signature(rcls).parameters:
        del rparams["predictor"]  # consumed by the harness (which predictions the router sees)
    router = _construct(rcls, {**_accepted(rcls, shared, rparams), **rparams}, f"router {spec.router!r}")
    sparams = dict(spec.scaler_params)
    skw = _in_trace_time(scls, {**_accepted(scls, shared, sparams), **sparams}, cfg.time_scale)
    scaler = _construct(scls, skw, f"scaler {spec.scaler!r}")
    return router, scaler


def _in_trace_time(cls: type[BaseScaler], kwargs: dict[str, Any], time_scale: float) -> dict[str, Any]:
    """``kwargs`` with every load-dynamics time constant of ``cls`` (given or default) divided by
    ``time_scale``: a trace compressed x24 sees a 60 s window as 2.5 s."""
    if time_scale == 1.0:
        return kwargs
    params = inspect.signature(cls).parameters
    out = dict(kwargs)
    for name in cls.TRACE_TIME_PARAMS:
        if name not in params:
            continue
        value = out.get(name, params[name].default)
        if isinstance(value, int | float) and not isinstance(value, bool):
            out[name] = value / time_scale
    return out


def predictor_for(spec: PolicySpec, default: str) -> str:
    """The request-length predictor spec this policy runs with: its router's ``predictor=`` or ``default``."""
    value = spec.router_params.get("predictor")
    return str(value) if value is not None else default


def frontier_specs(max_instances: int, router: str = "least-requests", history: bool = False,
                   services: int = 1) -> list[PolicySpec]:
    """Each baseline scaler family over a small grid, so that every baseline is a cost-latency curve.

    fixed n = 1..max; reactive over (up, down) pairs around the 0.9/0.2 default; queue-depth over waiting
    thresholds around KEDA's 5 and two scale-down windows (1 min, HPA's default 5 min); the Kubernetes HPA over
    KV-use targets; Knative's KPA over per-instance concurrencies; AIBrix's APA over KV-use targets; an interval
    planner over target utilisations; with ``history``, a time-of-day schedule over head rooms; and the oracle
    schedule over load multiples (the lower bound, rows of kind ``oracle``). With ``services`` sharing a pool of
    ``max_instances``, a fixed fleet (per service) goes up to what the pool holds for all of them.
    """
    specs = [PolicySpec(router, "fixed", {}, {"n": n}) for n in range(1, max_instances // max(services, 1) + 1)]
    for up, down in ((0.95, 0.3), (0.9, 0.2), (0.8, 0.3), (0.7, 0.2), (0.6, 0.1), (0.5, 0.1)):
        specs.append(PolicySpec(router, "reactive", {}, {"up": up, "down": down}))
    for threshold in (1, 5, 20):
        for cooldown in (60, 300):
            specs.append(PolicySpec(router, "queue-depth", {}, {"threshold": threshold, "cooldown": cooldown}))
    for target in (0.3, 0.5, 0.7, 0.9):  # Kubernetes HPA on KV-cache use
        specs.append(PolicySpec(router, "hpa", {}, {"target": target}))
    for concurrency in (8, 16, 32, 64):  # Knative KPA on in-flight requests
        specs.append(PolicySpec(router, "kpa", {}, {"concurrency": concurrency}))
    for target in (0.3, 0.5, 0.7):  # AIBrix APA on KV-cache use (its sample: 0.5)
        specs.append(PolicySpec(router, "apa", {}, {"target": target}))
    for util in (0.6, 0.8, 1.0):  # a Dynamo-style interval planner
        specs.append(PolicySpec(router, "interval-planner", {}, {"target_util": util}))
    if history:  # a time-of-day schedule fitted on the previous day
        for headroom in (1.0, 1.25, 1.5, 2.0, 3.0):
            specs.append(PolicySpec(router, "tod-schedule", {}, {"headroom": headroom}))
    # the future-knowing schedule, per minute and per 10 s (bursts a minute's mean hides): its cheapest run
    # meeting the SLO is the bound the candidates are measured against
    for window in (60.0, 10.0):
        for scale in (0.8, 1.0, 1.25, 1.5, 2.0, 3.0, 4.0):
            specs.append(PolicySpec(router, "oracle-schedule", {}, {"scale": scale, "window_s": window}))
    return specs


def canonical(spec: PolicySpec) -> tuple[str, str, tuple[tuple[str, Any], ...], tuple[tuple[str, Any], ...]]:
    """``spec`` with every constructor default filled in, so that ``reactive`` and ``reactive(up=0.9,down=0.2)``
    compare equal (the frontier skips runs the user already listed)."""
    def full(cls: type | None, params: dict[str, Any]) -> tuple[tuple[str, Any], ...]:
        merged = dict(params)
        if cls is not None:
            for name, p in inspect.signature(cls).parameters.items():
                if p.default is not inspect.Parameter.empty and name not in merged:
                    merged[name] = p.default
        return tuple(sorted((k, float(v) if isinstance(v, int | float) and not isinstance(v, bool) else v)
                            for k, v in merged.items()))
    return (spec.router, spec.scaler, full(ROUTERS.get(spec.router), spec.router_params),
            full(SCALERS.get(spec.scaler), spec.scaler_params))
