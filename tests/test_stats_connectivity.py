"""Tests of co-saliency / sFNC statistics (Lewis et al. 2023 §2.8, §3.3, Fig. 7)."""

import numpy as np
import pytest
from scipy import stats as sps
from statsmodels.stats.multitest import multipletests

from xaibids.stats import connectivity_statistics, correlation_edges, edges_to_matrix, fisher_z

FEATURES = [f"f{i}" for i in range(6)]


def _planted(rng, n_per_class=20, t=60, f=6, rho=0.8):
    """Non-negative sum-normalized maps; features 1 and 3 co-vary in class 1 only."""
    x = rng.normal(size=(2 * n_per_class, t, f))
    shared = rng.normal(size=(n_per_class, t))
    x[n_per_class:, :, 1] = np.sqrt(rho) * shared + np.sqrt(1 - rho) * x[n_per_class:, :, 1]
    x[n_per_class:, :, 3] = np.sqrt(rho) * shared + np.sqrt(1 - rho) * x[n_per_class:, :, 3]
    maps = np.exp(0.5 * x)
    maps /= maps.sum(axis=(1, 2), keepdims=True)
    return maps, np.repeat([0, 1], n_per_class)


def test_correlation_edges_against_numpy():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(7, 30, 5))
    x[2, :, 4] = 3.0  # constant
    x[5, 3, 1] = np.nan  # not finite
    edges, valid = correlation_edges(x, max_values=60)  # several batches
    iu = np.triu_indices(5, 1)
    for s in range(7):
        with np.errstate(invalid="ignore", divide="ignore"):
            ref = np.corrcoef(x[s].T)[iu]
        bad = ~(valid[s][iu[0]] & valid[s][iu[1]])
        np.testing.assert_allclose(edges[s][~bad], ref[~bad], atol=1e-12)
        assert np.isnan(edges[s][bad]).all()
    assert not valid[2, 4] and not valid[5, 1] and valid.sum() == 33
    assert edges[0, 0] == pytest.approx(sps.pearsonr(x[0, :, 0], x[0, :, 1]).statistic)
    m = edges_to_matrix(edges[0], 5)
    np.testing.assert_allclose(m, np.corrcoef(x[0].T), atol=1e-12)
    with pytest.raises(ValueError, match="at least 3 time points"):
        correlation_edges(x[:, :2])


def test_planted_edge_found_and_tests_match_scipy_statsmodels():
    rng = np.random.default_rng(1)
    maps, y = _planted(rng)
    res = connectivity_statistics(maps, y, ["m", "w"], FEATURES, alpha=0.01)
    edges = res.edges
    assert list(edges.columns) == ["feature_a", "feature_b", "mean_m", "mean_w", "t", "p",
                                   "p_fdr", "significant"]
    assert len(edges) == 15 and res.n_tested == 15
    hits = edges[edges.significant]
    assert list(zip(hits.feature_a, hits.feature_b)) == [("f1", "f3")]
    assert hits.t.iloc[0] > 0  # class 1 (w) minus class 0 (m)
    # direct computation: Student t-test of Fisher z, BH over all edges
    iu = np.triu_indices(6, 1)
    z = np.arctanh(np.array([np.corrcoef(m.T)[iu] for m in maps]))
    ref = sps.ttest_ind(z[y == 1], z[y == 0], axis=0, equal_var=True)
    np.testing.assert_allclose(edges.t, ref.statistic, rtol=1e-10)
    np.testing.assert_allclose(edges.p, ref.pvalue, rtol=1e-8)
    reject, p_fdr, _, _ = multipletests(ref.pvalue, alpha=0.01, method="fdr_bh")
    np.testing.assert_allclose(edges.p_fdr, p_fdr, rtol=1e-8)
    assert edges.significant.tolist() == reject.tolist()
    # class means: mean Fisher z back-transformed; symmetric matrices with unit diagonal
    np.testing.assert_allclose(edges.mean_w, np.tanh(z[y == 1].mean(axis=0)))
    mat = res.matrices["w"]
    np.testing.assert_allclose(mat, mat.T)
    assert np.all(np.diag(mat) == 1.0) and mat[1, 3] == pytest.approx(edges.mean_w[6])
    assert mat[1, 3] > 0.5 and abs(res.matrices["m"][1, 3]) < 0.2
    welch = connectivity_statistics(maps, y, ["m", "w"], FEATURES, equal_var=False,
                                    communities=False)
    ref_w = sps.ttest_ind(z[y == 1], z[y == 0], axis=0, equal_var=False)
    np.testing.assert_allclose(welch.edges.p, ref_w.pvalue, rtol=1e-8)


def test_constant_timecourses_excluded_and_reported():
    rng = np.random.default_rng(2)
    maps, y = _planted(rng, n_per_class=8)
    maps[0, :, 2] = 0.0  # one class-0 subject: f2 constant
    maps[y == 1, :, 5] = 0.01  # f5 constant in every class-1 subject
    maps[3] = np.nan  # not attributed
    res = connectivity_statistics(maps, y, ["a", "b"], FEATURES,
                                  samples=~np.isnan(maps).all(axis=(1, 2)))
    assert res.n_subjects == {"a": 7, "b": 8}
    excl = res.excluded.set_index(["feature", "class"])
    assert excl.loc[("f2", "a"), "n_excluded"] == 1 and excl.loc[("f2", "a"), "n_subjects"] == 7
    assert excl.loc[("f5", "b"), "n_excluded"] == 8 and len(excl) == 2
    e = res.edges.set_index(["feature_a", "feature_b"])
    # f5 edges cannot be tested: n/a, not significant, not in the FDR family
    f5 = e.xs("f5", level="feature_b")
    assert f5.t.isna().all() and f5.p_fdr.isna().all() and not f5.significant.any()
    assert f5.mean_b.isna().all() and f5.mean_a.notna().all()
    assert res.n_tested == 15 - 5
    assert np.isnan(res.matrices["b"][5]).sum() == 6  # row of f5, diagonal included
    # f2 edges are tested without the constant subject
    iu = np.triu_indices(6, 1)
    keep = np.setdiff1d(np.arange(16), [0, 3])
    z = fisher_z(np.array([np.corrcoef(maps[s].T)[iu] for s in keep]))
    yk = y[keep]
    k = list(zip(*iu)).index((1, 2))
    ref = sps.ttest_ind(z[yk == 1, k], z[yk == 0, k])
    assert e.loc[("f1", "f2"), "p"] == pytest.approx(ref.pvalue, rel=1e-8)
    tested = res.edges.p.notna()
    _, p_fdr, _, _ = multipletests(res.edges.p[tested], alpha=0.01, method="fdr_bh")
    np.testing.assert_allclose(res.edges.p_fdr[tested], p_fdr)


def test_repeated_subjects_average_fisher_z():
    rng = np.random.default_rng(3)
    maps, y = _planted(rng, n_per_class=6)
    subjects = np.array([f"s{i // 2}" for i in range(12)])  # two runs per subject
    res = connectivity_statistics(maps, y, ["a", "b"], FEATURES, subjects=subjects,
                                  communities=False)
    assert res.n_subjects == {"a": 3, "b": 3}
    iu = np.triu_indices(6, 1)
    z = fisher_z(np.array([np.corrcoef(m.T)[iu] for m in maps]))
    zs = z.reshape(6, 2, -1).mean(axis=1)
    ys = y[::2]
    ref = sps.ttest_ind(zs[ys == 1], zs[ys == 0])
    np.testing.assert_allclose(res.edges.p, ref.pvalue, rtol=1e-8)
    np.testing.assert_allclose(res.edges.mean_a, np.tanh(zs[ys == 0].mean(axis=0)))


def test_more_classes_and_errors():
    rng = np.random.default_rng(4)
    maps = rng.uniform(size=(9, 20, 4))
    res = connectivity_statistics(maps, np.arange(9) % 3, ["a", "b", "c"], FEATURES[:4],
                                  communities=False)
    assert res.edges.t.isna().all() and not res.edges.significant.any()
    assert {"mean_a", "mean_b", "mean_c"} <= set(res.edges.columns)
    with pytest.raises(ValueError, match="alpha"):
        connectivity_statistics(maps, np.arange(9) % 2, ["a", "b"], FEATURES[:4], alpha=1.5)
    with pytest.raises(ValueError, match="feature names"):
        connectivity_statistics(maps, np.arange(9) % 2, ["a", "b"], FEATURES)
    with pytest.raises(ValueError, match="labels must index"):
        connectivity_statistics(maps, np.arange(9), ["a", "b"], FEATURES[:4])
