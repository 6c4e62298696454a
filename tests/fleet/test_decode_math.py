"""The closed forms of decode runs agree with step-by-step brute force."""

from __future__ import annotations

import random

import pytest

from fleet.decode_math import DecodeRun, blocks_needed, max_decode_steps, phase_of
from tests.fleet.sim_fixtures import WITH_CTX

BS = 16


def _footprints(seed: int, n: int) -> list[int]:
    rng = random.Random(seed)
    return [rng.randint(1, 200) for _ in range(n)]


def _brute_blocks(footprints: list[int], k: int) -> int:
    """New blocks when every sequence grows by k tokens."""
    return sum(-(-(f + k) // BS) - -(-f // BS) for f in footprints)


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("steps", [0, 7, 33])
def test_blocks_needed_matches_brute_force(seed: int, steps: int) -> None:
    feet = _footprints(seed, 12)
    phase = [0] * BS
    for f in feet:
        phase[phase_of(f - steps, BS)] += 1
    for k in (0, 1, 5, 15, 16, 17, 40, 100):
        assert blocks_needed(phase, steps, k) == _brute_blocks(feet, k)


@pytest.mark.parametrize("seed", range(5))
def test_max_decode_steps_is_the_largest_fitting_run(seed: int) -> None:
    feet = _footprints(seed, 9)
    steps = 3
    phase = [0] * BS
    for f in feet:
        phase[phase_of(f - steps, BS)] += 1
    for free in (0, 1, 4, 9, 10, 30):
        for limit in (1, 20, 500):
            k = max_decode_steps(phase, len(feet), steps, free, limit)
            assert k <= limit
            assert _brute_blocks(feet, k) <= free
            if k < limit:
                assert _brute_blocks(feet, k + 1) > free


@pytest.mark.parametrize("n,ctx", [(1, 10), (8, 5000), (64, 100_000)])
def test_decode_run_steps_by_inverts_decode_run_time(n: int, ctx: int) -> None:
    run = DecodeRun(WITH_CTX, n, ctx, 10_000)
    for dt in (0.0, 0.001, 0.05, 0.5, 3.0):
        j = run.steps_by(dt)
        assert WITH_CTX.decode_run_time(j, n, ctx) <= dt
        assert WITH_CTX.decode_run_time(j + 1, n, ctx) > dt
    assert DecodeRun(WITH_CTX, n, ctx, 7).steps_by(100.0) == 7
