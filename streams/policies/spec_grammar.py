"""The ``name`` / ``name(key=value,...)`` grammar of every spec: policies and request-load predictors.

A leaf module with no imports of ours: the control core and ``models/`` both read specs with it, so a spec
means the same thing everywhere (docs/INTERFACES.md lists it as the one thing ``models/`` may import from here).
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["SpecError", "split_spec"]

_SPEC = re.compile(r"^\s*([a-z][a-z0-9_-]*)\s*(?:\((.*)\))?\s*$")


class SpecError(ValueError):
    """A spec that does not follow the grammar."""


def _value(raw: str) -> Any:
    raw = raw.strip()
    for cast in (int, float):
        try:
            return cast(raw)
        except ValueError:
            pass
    if raw.lower() in ("true", "false"):
        return raw.lower() == "true"
    return raw.strip("'\"")


def split_spec(spec: str) -> tuple[str, dict[str, Any]]:
    """``"noisy-oracle(sigma=0.3)"`` -> ``("noisy-oracle", {"sigma": 0.3})``."""
    m = _SPEC.match(spec)
    if not m:
        raise SpecError(f"bad spec {spec!r}: expected NAME or NAME(key=value,...)")
    name, args = m.group(1), m.group(2)
    kwargs: dict[str, Any] = {}
    for part in filter(None, (p.strip() for p in (args or "").split(","))):
        key, eq, val = part.partition("=")
        if not eq or not key.strip().isidentifier():
            raise SpecError(f"bad argument {part!r} in spec {spec!r}: expected key=value")
        kwargs[key.strip()] = _value(val)
    return name, kwargs
