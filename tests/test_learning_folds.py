"""Tests of make_folds: stratification and group separation."""

import numpy as np
import pytest

from xaibids.learning import make_folds


def test_stratified_folds_cover_every_sample_once():
    y = np.array([0] * 12 + [1] * 8)
    folds = make_folds(y, None, 4, seed=0)
    assert len(folds) == 4
    tests = np.concatenate([test for _, test in folds])
    assert sorted(tests.tolist()) == list(range(20))
    for train, test in folds:
        assert not set(train) & set(test)
        assert np.bincount(y[test]).tolist() == [3, 2]  # class proportions kept
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(folds, make_folds(y, None, 4, seed=0)))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_groups_never_span_train_and_test(seed):
    rng = np.random.default_rng(seed)
    groups = np.repeat([f"site{i}" for i in range(8)], 5)
    y = rng.integers(0, 2, size=40)
    y[:2], y[-2:] = 0, 1
    folds = make_folds(y, groups, 4, seed=seed)
    for train, test in folds:
        assert not set(groups[train]) & set(groups[test])
        assert set(np.unique(y[train])) == {0, 1}
    assert sorted(np.concatenate([t for _, t in folds]).tolist()) == list(range(40))


def test_fold_errors():
    y = np.array([0] * 10 + [1] * 3)
    with pytest.raises(ValueError, match=r"Class 'patient' has only 3 sample\(s\), fewer than the 5 folds; lower --n-folds"):
        make_folds(y, None, 5, seed=0, classes=["control", "patient"])
    with pytest.raises(ValueError, match=r"Only 2 distinct --cv-group"):
        make_folds(np.array([0, 1] * 4), np.array(["a", "b"] * 4), 3, seed=0)
    with pytest.raises(ValueError, match="All samples of class 1 are in one --cv-group"):
        make_folds(np.array([0, 0, 0, 1, 1, 0]), np.array(["a", "b", "c", "d", "d", "e"]), 2, seed=0)
    with pytest.raises(ValueError, match="at least two classes"):
        make_folds(np.zeros(6, int), None, 2, seed=0)
    with pytest.raises(ValueError, match="integer >= 2"):
        make_folds(np.array([0, 1] * 4), None, 1, seed=0)
