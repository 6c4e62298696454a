"""Fleet rules every driver applies: who leaves on a scale-down (starting newest first, then least-loaded
ready, newest first on equal load) and how an over-long request is served (vLLM's length limit)."""

from __future__ import annotations

import pytest

from streams.policies.fleet_rules import scale_down_victims, served_lengths, served_prompt


def victims(specs: list[tuple[str, bool, int]], n: int) -> list[str]:
    """(name, starting, load) in start order."""
    chosen = scale_down_victims(specs, n, lambda x: x[1], lambda x: x[2])
    return [x[0] for x in chosen]


FLEET = [("r-old", False, 3), ("s-old", True, 0), ("r-idle", False, 1), ("r-idle2", False, 1), ("s-new", True, 0),
         ("r-busy", False, 9)]


def test_starting_ones_leave_first_newest_first() -> None:
    assert victims(FLEET, 1) == ["s-new"]
    assert victims(FLEET, 2) == ["s-new", "s-old"]


def test_then_the_least_loaded_ready_ones_newest_first_on_a_tie() -> None:
    assert victims(FLEET, 4) == ["s-new", "s-old", "r-idle2", "r-idle"]
    assert victims(FLEET, 6) == ["s-new", "s-old", "r-idle2", "r-idle", "r-old", "r-busy"]


def test_n_is_clamped() -> None:
    assert victims(FLEET, 0) == [] and victims(FLEET, -2) == []
    assert len(victims(FLEET, 99)) == 6
    assert victims([], 3) == []


def test_equal_objects_are_told_apart_by_position() -> None:
    a, b = ["x", False, 1], ["x", False, 1]  # equal but distinct: the later one is newer
    chosen = scale_down_victims([a, b], 1, lambda x: bool(x[1]), lambda x: int(x[2]))  # type: ignore[arg-type]
    assert chosen[0] is b


@pytest.mark.parametrize("prompt, output, limit, expected", [
    (100, 50, 4096, (100, 50, False)),
    (4000, 96, 4096, (4000, 96, False)),  # exactly the limit: not truncated
    (4000, 97, 4096, (4000, 96, True)),
    (5000, 10, 4096, (4095, 1, True)),  # the prompt keeps limit - 1 tokens, one output token
    (0, 0, 4096, (1, 1, False)),  # at least one of each
    (10, None, 4096, (10, 1, False)),
    (7, -3, 4096, (7, 1, False)),
])
def test_served_lengths(prompt: int, output: int | None, limit: int, expected: tuple[int, int, bool]) -> None:
    assert served_lengths(prompt, output, limit) == expected


@pytest.mark.parametrize("prompt, expected", [(100, 100), (4095, 4095), (4096, 4095), (9000, 4095), (0, 1), (-5, 1)])
def test_served_prompt(prompt: int, expected: int) -> None:
    assert served_prompt(prompt, 4096) == expected
    assert served_prompt(prompt, 4096) == served_lengths(prompt, 1, 4096)[0] or prompt >= 4096
