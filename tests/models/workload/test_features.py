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
