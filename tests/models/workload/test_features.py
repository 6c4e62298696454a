from __future__ import annotations

import numpy as np
import pytest

from models.workload.features import make_samples, reference_level


def _z(n: int = 40, c: int = 3, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, c))


def test_reference_level_is_a_normalised_ewma_over_the_history_only() -> None:
    z = _z()
    origins = np.array([9, 20])
    np.testing.assert_allclose(reference_level(z, origins, 10, 1.0), z[origins])  # alpha 1: the origin window
    w = 0.5 ** np.arange(10)[::-1]
    np.testing.assert_allclose(reference_level(z, origins, 10, 0.5)[1], (z[11:21] * w[:, None]).sum(0) / w.sum())
    far = z.copy()
    far[:11] += 100.0  # before origin 20's history: must not move its reference
    np.testing.assert_allclose(reference_level(far, origins, 10, 0.5)[1], reference_level(z, origins, 10, 0.5)[1])


@pytest.mark.parametrize("alpha", [1.0, 0.5])
def test_samples_are_relative_to_the_reference_and_add_back_exactly(alpha: float) -> None:
    z = _z()
    inputs = np.concatenate([z, np.ones((len(z), 4))], axis=1).astype(np.float32)
    x, y, origins = make_samples(inputs, z, 8, 3, level_alpha=alpha)
    ref = reference_level(z, origins, 8, alpha)
    np.testing.assert_allclose(y + ref[:, None, :], z[origins[:, None] + np.arange(1, 4)], atol=1e-5)
    np.testing.assert_allclose(x[:, :, :3] + ref[:, None, :], z[origins[:, None] + np.arange(-7, 1)], atol=1e-5)
    np.testing.assert_array_equal(x[:, :, 3:], 1.0)  # calendar channels are not shifted
    if alpha == 1.0:
        np.testing.assert_allclose(x[:, -1, :3], 0.0, atol=1e-6)
    # a constant shift of the whole series leaves the samples unchanged: the network never sees the level
    x2, y2, _ = make_samples(inputs + np.r_[[5.0] * 3, [0.0] * 4].astype(np.float32), z + 5.0, 8, 3, level_alpha=alpha)
    np.testing.assert_allclose(x2, x, atol=1e-4)
    np.testing.assert_allclose(y2, y, atol=1e-5)


def test_memory_channels_put_the_previous_day_ahead_of_each_step() -> None:
    from models.workload.features import make_samples

    n, period, horizon, history = 60, 10, 3, 12
    z = np.arange(n, dtype=float)[:, None].repeat(3, 1)  # z[t] = t
    valid = np.ones(n, bool)
    valid[30] = False
    inputs = np.concatenate([z, np.zeros((n, 4))], 1)
    x, y, o = make_samples(inputs, z, history, horizon, np.array([5, 40]), valid=valid, memory=(period, 2))
    assert x.shape == (2, history, 3 + 4 + 1 + 3 * 2)
    # origin 5: the first 6 steps are padding (flag 0, zeros); the last step's density channel is 0 (relative)
    assert (x[0, :6] == 0).all() and (x[0, 6:, 7] == 1).all() and x[0, -1, 0] == 0
    # origin 40, last step s = 40: day 1 lag = z[40 + 3 - 10] - z[40] = -7, day 2 lag = z[23] - z[40] = -17
    assert x[1, -1, 8] == -7 and x[1, -1, 11] == -17
    # step s = 37 reads z[30] one day back, a gap: 0; the flag marks the gap step s = 30 itself
    assert x[1, -4, 8] == 0 and x[1, -11, 7] == 0
    assert (y[1, :, 0] == [1, 2, 3]).all()
