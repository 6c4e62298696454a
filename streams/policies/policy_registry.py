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

C = TypeVar("C", bound=type)

__all__ = ["Registry", "ROUTERS", "SCALERS", "register_router", "register_scaler", "PolicySpec", "parse_policy",
           "parse_policies", "PolicySpecError"]

class Registry(dict[str, C]):
    """Name -> class of one kind of policy. A class registers once under one name, which it then carries
    (``cls.name``), so a name means the same class in every driver and the CLI."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind

    def register(self, name: str) -> Callable[[C], C]:
        def deco(cls: C) -> C:
            if name in self and self[name] is not cls:
                raise ValueError(f"{self.kind} {name!r} registered twice")
            cls.name = name  # type: ignore[attr-defined]
            self[name] = cls
            return cls
        return deco


ROUTERS: Registry[type[BaseRouter]] = Registry("router")
SCALERS: Registry[type[BaseScaler]] = Registry("scaler")
register_router = ROUTERS.register
register_scaler = SCALERS.register


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
    """Parse ``router[:scaler]`` where either part may carry ``(k=v,...)``. Without a scaler: the policy of the
    same name when there is one (``preserve`` is PreServe's router *and* scaler), else ``fixed``."""
    depth, cut = 0, -1
    for i, ch in enumerate(spec):
        depth += ch == "("
        depth -= ch == ")"
        if ch == ":" and depth == 0:
            cut = i
            break
    if cut >= 0:
        r, rp = _part(spec[:cut], "router")
        s, sp = _part(spec[cut + 1:], "scaler")
        return PolicySpec(r, s, rp, sp)
    import streams.policies.routers  # noqa: F401  (registers the policies: a bare name is looked up)
    import streams.policies.scalers  # noqa: F401

    r, rp = _part(spec, "router")
    return PolicySpec(r, r if r in SCALERS else "fixed", rp, {})


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
