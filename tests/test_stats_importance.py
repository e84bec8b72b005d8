"""Tests of Cohen's d (seed 000 §2.7) and group importance (seed 001 threshold)."""

import numpy as np
import pandas as pd
import pytest

from xaibids.stats import cohens_d, group_importance


def test_cohens_d_against_formula():
    a = np.array([2.0, 4.0, 7.0, 5.0])
    b = np.array([1.0, 3.0, 2.0])
    s = np.sqrt((3 * np.var(a, ddof=1) + 2 * np.var(b, ddof=1)) / 5)
    assert cohens_d(a, b) == pytest.approx((a.mean() - b.mean()) / s)
    assert cohens_d(b, a) == pytest.approx(-(a.mean() - b.mean()) / s)
    assert isinstance(cohens_d(a, b), float)


def test_cohens_d_vectorized_and_degenerate():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(10, 4)), rng.normal(1.0, size=(12, 4))
    d = cohens_d(a, b)
    assert d.shape == (4,)
    for j in range(4):
        assert d[j] == pytest.approx(cohens_d(a[:, j], b[:, j]))
    assert np.isnan(cohens_d(np.ones(3), np.ones(4)))
    assert np.isnan(cohens_d([1.0], [2.0]))
    with pytest.raises(ValueError, match="at least one observation"):
        cohens_d([], [1.0, 2.0])


def test_group_importance_columns_and_values():
    maps = np.zeros((4, 2, 3))
    maps[:, :, 0] = 0.4  # time-sum 0.8 for everyone
    maps[:2, :, 1] = 0.05  # class 0: 0.1
    maps[2:, :, 1] = 0.35  # class 1: 0.7
    maps[0, 0, 1] += 0.01  # some spread
    maps[3, 1, 1] += 0.02
    y = np.array([0, 0, 1, 1])
    table = group_importance(maps, y, ["control", "patient"], ["a", "b", "c"])
    assert list(table.columns) == ["feature", "importance", "importance_norm", "selected",
                                   "cohens_d", "mean_control", "mean_patient"]
    np.testing.assert_allclose(table.importance, maps.sum(axis=1).mean(axis=0))
    np.testing.assert_allclose(table.importance_norm, table.importance / table.importance.max())
    assert table.selected.tolist() == [True, True, False]  # b: 0.4075 / 0.8 >= 0.5
    per = maps.sum(axis=1)
    assert table.cohens_d[1] == pytest.approx(cohens_d(per[2:, 1], per[:2, 1]))
    assert table.cohens_d[1] > 0  # class 1 (patient) minus class 0
    assert np.isnan(table.cohens_d[2])  # zero variance
    np.testing.assert_allclose(table.mean_patient, per[2:].mean(axis=0))


def test_group_importance_more_classes_and_errors():
    rng = np.random.default_rng(1)
    maps = rng.uniform(size=(6, 3, 2))
    table = group_importance(maps, np.array([0, 1, 2, 0, 1, 2]), ["a", "b", "c"], ["x", "y"])
    assert table.cohens_d.isna().all()
    assert {"mean_a", "mean_b", "mean_c"} <= set(table.columns)
    with pytest.raises(ValueError, match="feature names"):
        group_importance(maps, np.zeros(6, int), ["a", "b"], ["x"])
    with pytest.raises(ValueError, match="labels of shape"):
        group_importance(maps, np.zeros(5, int), ["a", "b"], ["x", "y"])
    assert isinstance(table, pd.DataFrame)
