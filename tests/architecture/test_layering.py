"""The layering rule of docs/INTERFACES.md, checked on every import statement (module level and inside functions).

The control core (``streams/policies/``) sits below both drivers: it imports only itself and the event records.
Each other package may import the packages below it, never one above it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
OURS = ("streams", "fleet", "models", "replay", "sinks", "infra", "preserve_cli", "bench")
# What each layer must never import (prefixes). The core: nothing of ours but itself and the records, and no
# transport, store or model framework.
FORBIDDEN: dict[str, tuple[str, ...]] = {
    "streams/policies": ("fleet", "models", "replay", "sinks", "infra", "preserve_cli", "bench", "faust", "aiokafka",
                         "confluent_kafka", "clickhouse_connect", "chdb", "torch", "transformers",
                         "streams.agents", "streams.app", "streams.settings", "streams.pipeline_config"),
    "streams": ("fleet", "preserve_cli", "bench"),
    "models": ("streams", "fleet", "sinks", "infra", "preserve_cli", "bench"),
    "replay": ("fleet", "models", "sinks", "preserve_cli", "bench"),
    "sinks": ("fleet", "models", "replay", "preserve_cli", "bench"),
    "infra": ("streams", "fleet", "models", "replay", "sinks", "preserve_cli", "bench"),
    "fleet": ("preserve_cli", "bench"),
}
ALLOWED_IN_CORE = ("streams.policies", "streams.records")
# Two leaves of the core that models/ reads: the spec grammar (predictor specs) and the density windows (a
# forecaster trained on a per-request trace sees the density stage's windows).
ALLOWED_EXCEPTIONS = {"models": ("streams.policies.spec_grammar", "streams.policies.density_windows")}


def _layer(path: Path) -> str | None:
    rel = path.relative_to(ROOT).as_posix()
    return next((layer for layer in sorted(FORBIDDEN, key=len, reverse=True) if rel.startswith(layer + "/")), None)


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    out: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            out.append((node.lineno, node.module))
    return out


def _violations(path: Path) -> list[str]:
    layer = _layer(path)
    if layer is None:
        return []
    bad = []
    for line, name in _imports(path):
        hit = any(name == p or name.startswith(p + ".") for p in FORBIDDEN[layer])
        hit = hit and name not in ALLOWED_EXCEPTIONS.get(layer, ())
        if layer == "streams/policies" and name.split(".")[0] == "streams":
            hit = hit or not any(name == p or name.startswith(p + ".") for p in ALLOWED_IN_CORE)
        if hit:
            bad.append(f"{path.relative_to(ROOT)}:{line}: {layer}/ imports {name}")
    return bad


def test_no_layer_imports_one_above_it() -> None:
    files = [p for pkg in OURS for p in (ROOT / pkg).rglob("*.py")]
    assert len(files) > 100
    problems = [v for p in files for v in _violations(p)]
    assert not problems, "layering broken (docs/INTERFACES.md):\n" + "\n".join(problems)


@pytest.mark.parametrize(("source", "layer_ok"), [
    ("from streams.policies.fleet_view import FleetView\nfrom streams.records import Completion\n", True),
    ("from fleet.engine_instance import EngineInstance\n", False),
    ("def f():\n    from models.workload import OnlineForecaster\n", False),
    ("from streams.stages.control import RouteAgentState\n", False),
])
def test_the_checker_sees_what_the_core_may_not_import(source: str, layer_ok: bool) -> None:
    fake = ROOT / "streams" / "policies" / "_layering_probe.py"
    try:
        fake.write_text(source)
        assert (not _violations(fake)) is layer_ok
    finally:
        fake.unlink()
