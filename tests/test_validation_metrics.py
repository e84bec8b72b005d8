"""Validation metrics against independent direct computations on small arrays (to 1e-6)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial import distance
from sklearn.metrics import confusion_matrix, f1_score, precision_score, recall_score
from sklearn.preprocessing import minmax_scale

from xaibids.validation import metrics as M

TOL = 1e-6


@pytest.fixture
def pair():
    rng = np.random.default_rng(3)
    a = rng.normal(size=(12, 7))
    mask = np.zeros((12, 7), dtype=int)
    mask[4:8, 2:5] = 1
    return a, mask


def _loop_scaled(a):
    """|a| rescaled to [0, 1] element by element (Ismail et al.'s normalizeAtoB)."""
    b = np.abs(a)
    lo, hi = b.min(), b.max()
    out = np.empty_like(b)
    for i in range(b.shape[0]):
        for j in range(b.shape[1]):
            out[i, j] = (b[i, j] - lo) / (hi - lo)
    return out


def test_overlap_fraction_direct(pair):
    a, mask = pair
    inside = total = 0.0
    for i in range(a.shape[0]):
        for j in range(a.shape[1]):
            total += abs(a[i, j])
            if mask[i, j]:
                inside += abs(a[i, j])
    assert M.overlap_fraction(a, mask) == pytest.approx(inside / total, abs=TOL)
    # scale-free, as the sum normalization of Lewis et al. 2023 §2.4 must not matter
    assert M.overlap_fraction(np.abs(a) / np.abs(a).sum(), mask) == pytest.approx(
        inside / total, abs=TOL)


def test_minmax_matches_sklearn(pair):
    a, _ = pair
    expected = minmax_scale(np.abs(a).ravel()).reshape(a.shape)
    np.testing.assert_allclose(M.minmax_rescale(np.abs(a)), expected, atol=TOL)
    np.testing.assert_allclose(M.minmax_rescale(np.full((3, 2), 4.0)), 0.0)


def test_weighted_jaccard_direct(pair):
    a, mask = pair
    scaled = _loop_scaled(a)
    num = sum(min(m, s) for m, s in zip(mask.ravel(), scaled.ravel()))
    den = sum(max(m, s) for m, s in zip(mask.ravel(), scaled.ravel()))
    assert M.weighted_jaccard(a, mask) == pytest.approx(num / den, abs=TOL)
    # sum-normalized (stabilized) maps give the same value
    assert M.weighted_jaccard(np.abs(a) / np.abs(a).sum(), mask) == pytest.approx(num / den,
                                                                                  abs=TOL)


def test_euclidean_distance_direct(pair):
    a, mask = pair
    scaled = _loop_scaled(a)
    expected = distance.euclidean(mask.ravel(), scaled.ravel()) / np.sqrt(mask.sum())
    assert M.euclidean_distance(a, mask) == pytest.approx(expected, abs=TOL)


def test_saliency_metrics_extremes():
    mask = np.zeros((10, 4), dtype=bool)
    mask[2:5, 1:3] = True
    perfect = mask * 0.7
    assert M.overlap_fraction(perfect, mask) == pytest.approx(1.0)
    assert M.weighted_jaccard(perfect, mask) == pytest.approx(1.0)
    assert M.euclidean_distance(perfect, mask) == pytest.approx(0.0)
    zero = np.zeros(mask.shape)
    assert np.isnan(M.overlap_fraction(zero, mask))
    assert M.weighted_jaccard(zero, mask) == 0.0
    assert M.euclidean_distance(zero, mask) == pytest.approx(1.0)
    # negative attributions count by magnitude (Lewis et al. 2023 passes maps through |.|)
    assert M.overlap_fraction(-perfect, mask) == pytest.approx(1.0)
    assert M.saliency_quality(perfect, mask) == {
        "overlap": pytest.approx(1.0), "weighted_jaccard": pytest.approx(1.0),
        "euclidean_distance": pytest.approx(0.0)}


def test_saliency_metrics_reject_bad_input():
    with pytest.raises(ValueError, match="differ"):
        M.overlap_fraction(np.ones((3, 2)), np.ones((2, 3)))
    with pytest.raises(ValueError, match="only 0 and 1"):
        M.weighted_jaccard(np.ones((2, 2)), np.full((2, 2), 2))
    with pytest.raises(ValueError, match="NaN"):
        M.euclidean_distance(np.full((2, 2), np.nan), np.ones((2, 2)))


def test_roi_scores_direct():
    rng = np.random.default_rng(5)
    a = rng.normal(size=(9, 6))
    expected = [abs(sorted(a[:, j])[4]) for j in range(6)]  # odd length: the middle value
    np.testing.assert_allclose(M.roi_scores(a), expected, atol=TOL)
    b = a.copy()
    b[0, 1] = np.nan
    b[:, 3] = np.nan
    scores = M.roi_scores(b)
    assert scores[1] == pytest.approx(abs(np.median(a[1:, 1])))
    assert np.isnan(scores[3])


def test_selection_is_strictly_above_half_the_max():
    scores = np.array([1.0, 0.5, 0.51, 2.0, np.nan, 0.0])
    norm = M.normalize_max(scores)
    np.testing.assert_allclose(norm[:4], [0.5, 0.25, 0.255, 1.0])
    np.testing.assert_array_equal(M.select_features([2.0, 1.0, 1.02, 0.0]),
                                  [True, False, True, False])
    np.testing.assert_array_equal(M.select_features(scores), [False] * 3 + [True] + [False] * 2)
    assert not M.select_features(np.zeros(3)).any()
    with pytest.raises(ValueError, match="non-negative"):
        M.normalize_max([-1.0, 2.0])


def test_precision_recall_f1_match_sklearn():
    rng = np.random.default_rng(11)
    for _ in range(20):
        sel = rng.random(25) < 0.3
        rel = rng.random(25) < 0.2
        if not sel.any() or not rel.any():
            continue
        got = M.precision_recall_f1(sel, rel)
        assert got["precision"] == pytest.approx(precision_score(rel, sel), abs=TOL)
        assert got["recall"] == pytest.approx(recall_score(rel, sel), abs=TOL)
        assert got["f1"] == pytest.approx(f1_score(rel, sel), abs=TOL)


def test_detection_rates_match_confusion_matrix():
    rng = np.random.default_rng(12)
    sel = rng.random(40) < 0.4
    rel = rng.random(40) < 0.3
    tn, fp, fn, tp = confusion_matrix(rel, sel, labels=[False, True]).ravel()
    got = M.detection_rates(sel, rel)
    assert got["accuracy"] == pytest.approx((tp + tn) / 40, abs=TOL)
    assert got["fdr"] == pytest.approx(fp / (fp + tp), abs=TOL)
    assert got["for"] == pytest.approx(fn / (fn + tn), abs=TOL)
    assert M.confusion_counts(sel, rel) == {"tp": tp, "fp": fp, "fn": fn, "tn": tn}


def test_undefined_ratios_are_nan():
    nothing = np.zeros(5, dtype=bool)
    rel = np.array([1, 0, 0, 0, 0], dtype=bool)
    prf = M.precision_recall_f1(nothing, rel)
    assert np.isnan(prf["precision"]) and prf["recall"] == 0.0 and prf["f1"] == 0.0
    rates = M.detection_rates(nothing, rel)
    assert np.isnan(rates["fdr"]) and rates["for"] == pytest.approx(0.2)
    everything = np.ones(5, dtype=bool)
    assert np.isnan(M.detection_rates(everything, rel)["for"])


def test_roi_detection_perfect_and_partial():
    T, F = 20, 8
    rng = np.random.default_rng(0)
    a = np.abs(rng.normal(0, 0.05, (T, F)))
    a[:, [2, 5]] += 1.0
    relevant = np.zeros(F, dtype=bool)
    relevant[[2, 5]] = True
    got = M.roi_detection(a, relevant)
    assert got == {"precision": 1.0, "recall": 1.0, "f1": 1.0, "accuracy": 1.0, "fdr": 0.0,
                   "for": 0.0}
    a[:, 5] -= 0.8  # below half the maximum: missed
    got = M.roi_detection(a, relevant)
    assert got["precision"] == 1.0 and got["recall"] == 0.5
    assert got["f1"] == pytest.approx(2 / 3) and got["for"] == pytest.approx(1 / 7)
