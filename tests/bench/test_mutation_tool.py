"""The mutation benchmark's own pieces: the operators produce the programs they claim, sampling is
deterministic, and the module list names files that exist (so it follows the code when files move)."""

from __future__ import annotations

import json
from pathlib import Path

from bench.mutation.__main__ import main, sample
from bench.mutation.modules import TARGETS, target_for
from bench.mutation.mutator import apply, mutants

ROOT = Path(__file__).resolve().parents[2]

SRC = '''"""doc"""
__all__ = ["f"]


def f(a: int, b: int = 2) -> int:
    """doc"""
    if a < b and a != 0:
        return max(a + b, 1)
    x = -3
    return x
'''


def _mutated(description: str, line: int | None = None) -> str:
    [m] = [m for m in mutants(SRC) if m.description == description and line in (None, m.line)]
    return apply(SRC, m)


def test_operators_produce_the_described_change() -> None:
    assert "if a <= b and a != 0:" in _mutated("< -> <=")
    assert "if a > b and a != 0:" in _mutated("< -> >")
    assert "a == 0" in _mutated("!= -> ==")
    assert "return min(a + b, 1)" in _mutated("max() -> min()")
    assert "max(a - b, 1)" in _mutated("+ -> -")
    assert "if a < b or a != 0:" in _mutated("and -> or")
    assert "x = 3" in _mutated("unary minus dropped")
    assert "        return None" in _mutated("return value -> None", line=8)
    assert "b: int=3" in _mutated("2 -> +1")
    assert "x = 0" in _mutated("-3 -> 0") and "x = -2" in _mutated("-3 -> +1")


def test_strings_annotations_and_all_are_left_alone() -> None:
    descriptions = [m.description for m in mutants(SRC)]
    assert not any("doc" in d or "'f'" in d for d in descriptions)
    assert all(m.line > 2 for m in mutants(SRC))  # nothing on the docstring or __all__ lines


def test_dropped_statements_become_pass() -> None:
    drops = [m for m in mutants(SRC) if m.op == "drop"]
    assert {m.line for m in drops} == {7, 8, 9, 10}
    assert "    pass\n" in apply(SRC, drops[-1])


def test_sampling_is_deterministic_and_takes_all_when_fewer() -> None:
    ms = mutants(SRC)
    assert sample(ms, 5, 0, "m.py") == sample(ms, 5, 0, "m.py")
    assert sample(ms, 5, 0, "m.py") != sample(ms, 5, 1, "m.py")
    assert sample(ms, 1000, 0, "m.py") == ms and sample(ms, 0, 0, "m.py") == ms


def test_module_list_names_existing_files_and_is_written_as_json(tmp_path: Path) -> None:
    for t in TARGETS:
        assert (ROOT / t.module).is_file() and t.tests and all((ROOT / p).is_file() for p in t.tests)
    assert target_for("streams/policies/load_anticipator.py").module == "streams/policies/load_anticipator.py"
    out = tmp_path / "list.json"
    assert main(["--list", "--json", str(out)]) == 0
    listing = json.loads(out.read_text())
    assert listing[0] == {"module": TARGETS[0].module, "tests": list(TARGETS[0].tests)}
    assert "streams/policies/scalers/density_forecast.py" not in {e["module"] for e in listing}
