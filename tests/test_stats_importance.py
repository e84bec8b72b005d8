"""Tests of Cohen's d (Lewis et al. 2023 §2.7) and group importance (Strock et al. 2025 threshold)."""

import numpy as np
import pandas as pd
import pytest

from scipy import stats as sps

from xaibids.stats import (
    SelectionRule,
    bootstrap_cohens_d_ci,
    cohens_d,
    domain_importance,
    group_importance,
    load_feature_groups,
)


def test_cohens_d_against_formula():
    a = np.array([2.0, 4.0, 7.0, 5.0])
    b = np.array([1.0, 3.0, 2.0])
    s = np.sqrt((3 * np.var(a, ddof=1) + 2 * np.var(b, ddof=1)) / 5)
    assert cohens_d(a, b) == pytest.approx((a.mean() - b.mean()) / s)
    assert cohens_d(b, a) == pytest.approx(-(a.mean() - b.mean()) / s)
    assert isinstance(cohens_d(a, b), float)
    # Student t of scipy relates to d through the group sizes: d = t * sqrt(1/n_a + 1/n_b)
    t = sps.ttest_ind(a, b, equal_var=True).statistic
    assert cohens_d(a, b) == pytest.approx(t * np.sqrt(1 / 4 + 1 / 3))


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
    table = group_importance(maps, y, ["control", "patient"], ["a", "b", "c"],
                             selection=SelectionRule("fixed"))
    assert list(table.columns) == ["feature", "importance", "importance_norm", "statistic",
                                   "p_value", "q_value", "selected", "cohens_d", "cohens_d_ci_low", "cohens_d_ci_high",
                                   "mean_control", "mean_patient", "roi_score",
                                   "roi_score_norm", "roi_selected", "roi_score_control",
                                   "roi_score_patient"]
    np.testing.assert_allclose(table.importance, maps.sum(axis=1).mean(axis=0))
    np.testing.assert_allclose(table.importance_norm, table.importance / table.importance.max())
    assert table.selected.tolist() == [True, True, False]  # b: 0.4075 / 0.8 >= 0.5
    np.testing.assert_allclose(table.statistic, table.importance_norm)
    assert table.p_value.isna().all() and table.attrs["selection"]["SelectionRule"] == "fixed"
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


def test_bootstrap_ci_matches_scipy_and_covers_true_effect():
    rng = np.random.default_rng(3)
    # 60 independent replicates (columns) of a normal pair with a true d of 0.5
    n, reps, true_d = 60, 60, 0.5
    a = rng.normal(true_d, 1.0, size=(n, reps))
    b = rng.normal(0.0, 1.0, size=(n, reps))
    low, high = bootstrap_cohens_d_ci(a, b, n_boot=400, ci_level=0.95, random_state=7)
    d = cohens_d(a, b)
    assert np.all(low < d) and np.all(d < high)
    coverage = np.mean((low <= true_d) & (true_d <= high))
    assert 0.85 <= coverage <= 1.0
    # width close to the normal approximation 2 * 1.96 * se(d)
    se = np.sqrt(2 / n + true_d**2 / (4 * n))
    assert np.median(high - low) == pytest.approx(2 * 1.96 * se, rel=0.2)
    # one replicate: same interval as scipy.stats.bootstrap with the same generator
    ref = sps.bootstrap((a[:, 0], b[:, 0]), lambda x, z, axis: cohens_d(x, z, axis=axis),
                        n_resamples=400, batch=50, vectorized=True, method="percentile",
                        rng=np.random.default_rng(7))
    lo0, hi0 = bootstrap_cohens_d_ci(a[:, 0], b[:, 0], n_boot=400, random_state=7)
    assert isinstance(lo0, float)
    assert lo0 == pytest.approx(ref.confidence_interval.low)
    assert hi0 == pytest.approx(ref.confidence_interval.high)
    # a feature's interval does not depend on the other features analysed with it
    assert low[0] == pytest.approx(lo0) and high[0] == pytest.approx(hi0)
    narrow = bootstrap_cohens_d_ci(a[:, 0], b[:, 0], n_boot=400, ci_level=0.5, random_state=7)
    assert lo0 < narrow[0] < narrow[1] < hi0
    assert np.isnan(bootstrap_cohens_d_ci([1.0], [2.0, 3.0])[0])
    with pytest.raises(ValueError, match="ci_level"):
        bootstrap_cohens_d_ci(a, b, ci_level=95)
    with pytest.raises(ValueError, match="n_boot"):
        bootstrap_cohens_d_ci(a, b, n_boot=0)


def _maps(rng, n, t=5, f=3):
    maps = rng.uniform(size=(n, t, f))
    return maps / maps.sum(axis=(1, 2), keepdims=True)


def test_group_importance_ci_columns_and_repeated_subjects():
    rng = np.random.default_rng(4)
    maps = _maps(rng, 12)
    maps[:, :, 1] += np.r_[np.zeros(6), np.full(6, 0.05)][:, None]  # class 1 higher on b
    maps[11] = np.nan  # not attributed: ignored
    y = np.repeat([0, 1], 6)
    subjects = ["s1", "s1", "s2", "s3", "s4", "s5", "s6", "s6", "s7", "s8", "s9", "s10"]
    table = group_importance(maps, y, ["c0", "c1"], ["a", "b", "c"], subjects=subjects,
                             n_boot=200, random_state=1)
    per = np.nansum(maps, axis=1)
    subj = np.vstack([per[:2].mean(0), per[2:6], per[6:8].mean(0), per[8:11]])
    labels = np.r_[np.zeros(5), np.ones(4)]
    np.testing.assert_allclose(table.importance, subj.mean(axis=0))
    np.testing.assert_allclose(table.cohens_d, cohens_d(subj[labels == 1], subj[labels == 0]))
    np.testing.assert_allclose(table.mean_c0, subj[labels == 0].mean(axis=0))
    low, high = bootstrap_cohens_d_ci(subj[labels == 1], subj[labels == 0], 200, 0.95, 1)
    np.testing.assert_allclose(table.cohens_d_ci_low, low)
    np.testing.assert_allclose(table.cohens_d_ci_high, high)
    assert table.cohens_d[1] > 0 and table.cohens_d_ci_low[1] > 0
    # same input, same seed: same interval; n_boot=0 leaves it n/a
    again = group_importance(maps, y, ["c0", "c1"], ["a", "b", "c"], subjects=subjects,
                             n_boot=200, random_state=1)
    pd.testing.assert_frame_equal(table, again)
    assert group_importance(maps, y, ["c0", "c1"], ["a", "b", "c"],
                            n_boot=0).cohens_d_ci_low.isna().all()
    with pytest.raises(ValueError, match="different classes"):
        group_importance(maps, y, ["c0", "c1"], ["a", "b", "c"], subjects=["s"] * 12)


def test_domain_importance_sums_features():
    rng = np.random.default_rng(5)
    maps = _maps(rng, 10, f=4)
    y = np.repeat([0, 1], 5)
    groups = {"a": "VIS", "b": "DMN", "c": "VIS", "d": "DMN", "unused": "CB"}
    table = group_importance(maps, y, ["x", "z"], list("abcd"), feature_groups=groups, n_boot=50)
    assert list(table.columns)[-1] == "group"
    assert table.group.tolist() == ["VIS", "DMN", "VIS", "DMN"]
    dom = domain_importance(maps, y, ["x", "z"], list("abcd"), groups, n_boot=50)
    assert list(dom.columns) == ["group", "n_features", "importance", "importance_norm",
                                 "cohens_d", "cohens_d_ci_low", "cohens_d_ci_high",
                                 "mean_x", "mean_z"]
    per = maps.sum(axis=1)
    vis, dmn = per[:, [0, 2]].sum(axis=1), per[:, [1, 3]].sum(axis=1)
    assert dom.group.tolist() == ["VIS", "DMN"]
    np.testing.assert_allclose(dom.importance, [vis.mean(), dmn.mean()])
    assert dom.importance.sum() == pytest.approx(1.0)  # sum-normalized maps
    assert dom.cohens_d[1] == pytest.approx(cohens_d(dmn[5:], dmn[:5]))
    with pytest.raises(ValueError, match="no group for 1"):
        domain_importance(maps, y, ["x", "z"], list("abcd"), {"a": "V", "b": "V", "c": "V"})


def test_load_feature_groups(tmp_path):
    path = tmp_path / "groups.tsv"
    path.write_text("feature\tgroup\tnote\na\tVIS\t\nb\tDMN\tx\nzz\tCB\t\n")
    assert load_feature_groups(path, ["a", "b"]) == {"a": "VIS", "b": "DMN"}
    with pytest.raises(ValueError, match=r"nothere.tsv does not exist"):
        load_feature_groups(tmp_path / "nothere.tsv", ["a"])
    with pytest.raises(ValueError, match=r"no group for 1 .*add a row"):
        load_feature_groups(path, ["a", "b", "c"])
    bad = tmp_path / "bad.tsv"
    bad.write_text("name,domain\na,VIS\n")
    with pytest.raises(ValueError, match=r"bad.tsv lacks column\(s\) feature, group"):
        load_feature_groups(bad, ["a"])
    dup = tmp_path / "dup.tsv"
    dup.write_text("feature\tgroup\na\tVIS\na\tDMN\n")
    with pytest.raises(ValueError, match="several groups"):
        load_feature_groups(dup, ["a"])
    empty = tmp_path / "empty.tsv"
    empty.write_text("feature\tgroup\na\t\n")
    with pytest.raises(ValueError, match="empty group"):
        load_feature_groups(empty, ["a"])
    none = tmp_path / "none.tsv"
    none.write_text("feature\tgroup\nq\tVIS\n")
    with pytest.raises(ValueError, match="names none"):
        load_feature_groups(none, ["a"])


def test_roi_score_is_strock2025_abs_median_over_time():
    """Strock et al. 2025: |median over time| per subject (signed maps cancel), mean over subjects."""
    from xaibids.stats.importance import group_importance, roi_scores

    rng = np.random.default_rng(3)
    maps = rng.normal(size=(6, 20, 4))
    maps[:, :, 2] += 2.0  # a consistently signed feature
    y = np.array([0, 1] * 3)
    expected = np.abs(np.median(maps, axis=1)).mean(axis=0)
    np.testing.assert_allclose(roi_scores(maps, y, ["a", "b"], list("wxyz")), expected)
    table = group_importance(maps, y, ["a", "b"], list("wxyz"), n_boot=0)
    assert table.loc[table["roi_score_norm"].idxmax(), "feature"] == "y"
    assert table["roi_selected"].tolist() == [False, False, True, False]
    np.testing.assert_allclose(table["roi_score_b"],
                               np.abs(np.median(maps[y == 1], axis=1)).mean(axis=0))
