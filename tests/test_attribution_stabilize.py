"""Tests of the Lewis et al. 2023 stabilization (§2.4) against direct computations."""

import numpy as np
import pytest

from xaibids.attribution.stabilize import stabilize


def direct_closest(maps, losses):
    mean = maps.mean(axis=0)
    scores = []
    for m in range(maps.shape[0]):
        distance = np.sqrt(((maps[m] - mean) ** 2).sum())
        scores.append(losses[m] * distance)
    return int(np.argmin(scores))


@pytest.mark.parametrize("seed", range(5))
def test_closest_matches_direct_computation(seed):
    rng = np.random.default_rng(seed)
    maps = rng.normal(size=(6, 4, 3))
    losses = rng.uniform(0.1, 2.0, size=6)
    result, selected = stabilize(maps, losses, how="closest", positive="abs")
    expected_index = direct_closest(maps, losses)
    assert selected == expected_index
    expected = np.abs(maps[expected_index]) / np.abs(maps[expected_index]).sum()
    np.testing.assert_allclose(result, expected)
    assert result.sum() == pytest.approx(1.0)


def test_loss_weighting_prefers_the_better_model():
    # model 0 is nearest to the mean but has a high loss; model 1 is a bit farther, low loss
    mean_target = np.zeros((2, 2))
    maps = np.stack([mean_target + 0.1, mean_target - 0.3, mean_target + 0.2])
    # mean = 0.0; distances 0.2, 0.6, 0.4
    assert stabilize(maps, np.array([1.0, 1.0, 1.0]))[1] == 0
    assert stabilize(maps, np.array([5.0, 0.5, 5.0]))[1] == 1  # 1.0, 0.3, 2.0
    assert stabilize(maps, np.array([5.0, 5.0, 0.1]))[1] == 2  # 1.0, 3.0, 0.04
    assert stabilize(maps, np.array([0.0, 0.0, 0.0]))[1] == 0  # all tie at 0: smallest distance
    assert stabilize(maps, np.array([1.0, 0.0, 0.0]))[1] == 2  # tie at 0: 0.4 beats 0.6


def test_variants_and_positive():
    maps = np.array([[[1.0, -2.0]], [[3.0, -4.0]], [[-5.0, 0.0]]])
    mean, sel = stabilize(maps, None, how="mean", positive="abs")
    assert sel is None
    np.testing.assert_allclose(mean, np.array([[1 / 3, 2.0]]) / (1 / 3 + 2.0))
    median, _ = stabilize(maps, None, how="median", positive="relu")
    np.testing.assert_allclose(median, [[1.0, 0.0]])  # median [1, -2] -> relu [1, 0]
    first, sel = stabilize(maps, None, how="none", positive="relu")
    assert sel == 0
    np.testing.assert_allclose(first, [[1.0, 0.0]])
    zeros, _ = stabilize(-np.abs(maps), np.ones(3), positive="relu")
    np.testing.assert_array_equal(zeros, 0.0)  # nothing positive: all-zero map, no NaN


def test_errors():
    maps = np.zeros((2, 3, 3))
    with pytest.raises(ValueError, match="needs the per-model losses"):
        stabilize(maps, None)
    with pytest.raises(ValueError, match="one loss per model"):
        stabilize(maps, np.ones(3))
    with pytest.raises(ValueError, match="non-negative"):
        stabilize(maps, np.array([1.0, -1.0]))
    with pytest.raises(ValueError, match="how must be"):
        stabilize(maps, np.ones(2), how="max")
    with pytest.raises(ValueError, match="positive must be"):
        stabilize(maps, np.ones(2), positive="square")
    with pytest.raises(ValueError, match="NaN"):
        stabilize(np.full((2, 1, 1), np.nan), np.ones(2))


def test_signed_maps_keep_their_sign_and_unit_magnitude():
    rng = np.random.default_rng(0)
    maps = rng.normal(size=(4, 6, 3))
    out, _ = stabilize(maps, np.ones(4), how="mean", positive="none")
    expected = maps.mean(axis=0)
    np.testing.assert_allclose(out, expected / np.abs(expected).sum())
    assert (out < 0).any() and np.isclose(np.abs(out).sum(), 1.0)
