"""Name -> class registries for routers and scalers, and the ``router:scaler(k=v,...)`` spec parser.

Harness, CLI and live agents build policies only through here, so a name means the same thing everywhere.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from streams.policies.base_router import BaseRouter
from streams.policies.base_scaler import BaseScaler
from streams.policies.spec_grammar import SpecError, split_spec

__all__ = ["ROUTERS", "SCALERS", "register_router", "register_scaler", "PolicySpec", "parse_policy",
           "parse_policies", "PolicySpecError"]

ROUTERS: dict[str, type[BaseRouter]] = {}
SCALERS: dict[str, type[BaseScaler]] = {}

RT = TypeVar("RT", bound=type[BaseRouter])
ST = TypeVar("ST", bound=type[BaseScaler])


def register_router(name: str) -> Callable[[RT], RT]:
    def deco(cls: RT) -> RT:
        if name in ROUTERS and ROUTERS[name] is not cls:
            raise ValueError(f"router {name!r} registered twice")
        cls.name = name
        ROUTERS[name] = cls
        return cls
    return deco


def register_scaler(name: str) -> Callable[[ST], ST]:
    def deco(cls: ST) -> ST:
        if name in SCALERS and SCALERS[name] is not cls:
            raise ValueError(f"scaler {name!r} registered twice")
        cls.name = name
        SCALERS[name] = cls
        return cls
    return deco


class PolicySpecError(ValueError):
    """A policy spec string that does not parse or names an unknown policy."""


@dataclass(frozen=True)
class PolicySpec:
    router: str
    scaler: str
    router_params: dict[str, Any] = field(default_factory=dict)
    scaler_params: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        def fmt(name: str, params: dict[str, Any]) -> str:
            return name + (f"({','.join(f'{k}={v}' for k, v in params.items())})" if params else "")
        return f"{fmt(self.router, self.router_params)}:{fmt(self.scaler, self.scaler_params)}"


def _part(text: str, what: str) -> tuple[str, dict[str, Any]]:
    """``name`` or ``name(k=v,...)``: the same grammar as predictor specs, so there is one parser for both."""
    try:
        return split_spec(text)
    except SpecError as e:
        raise PolicySpecError(f"cannot parse {what} {text.strip()!r}: {e}") from e


def parse_policy(spec: str) -> PolicySpec:
    """Parse ``router[:scaler]`` where either part may carry ``(k=v,...)``. Scaler defaults to ``fixed``."""
    depth, cut = 0, -1
    for i, ch in enumerate(spec):
        depth += ch == "("
        depth -= ch == ")"
        if ch == ":" and depth == 0:
            cut = i
            break
    rtext, stext = (spec[:cut], spec[cut + 1:]) if cut >= 0 else (spec, "fixed")
    r, rp = _part(rtext, "router")
    s, sp = _part(stext, "scaler")
    return PolicySpec(r, s, rp, sp)


def parse_policies(text: str) -> list[PolicySpec]:
    """Parse a comma-separated list of specs (commas inside parentheses belong to parameters)."""
    out, depth, start = [], 0, 0
    for i, ch in enumerate(text + ","):
        depth += ch == "("
        depth -= ch == ")"
        if ch == "," and depth == 0:
            if text[start:i].strip():
                out.append(parse_policy(text[start:i]))
            start = i + 1
    return out
