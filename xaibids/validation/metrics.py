"""Map-versus-ground-truth metrics of the seed papers, as plain NumPy functions.

Three families, each defined exactly as its seed defines it (section references are to the
files in ``shared/seeds``):

Saliency quality against an element-wise mask (Lewis et al. 2023, §2.6 and Table 1)
    :func:`overlap_fraction`, :func:`weighted_jaccard`, :func:`euclidean_distance`. The seed
    represents each sample's truth "as a binary matrix in which only the elements within the
    perturbed regions are ones", passes every map "through an absolute function", and uses "both
    of the similarity metrics" of input-cell attention ([7], Ismail et al. 2019, NeurIPS):
    Euclidean distance and weighted Jaccard similarity, plus "the sum of all salient values within
    the window over the sum of the entire map" (the overlap; Figure 4-5 captions). The seed gives
    no formula for the two metrics of [7]; [7]'s reference implementation
    (``Scripts/BoxStat.py`` and ``Scripts/accuracyMethods.py`` of
    github.com/ayaabdelsalam91/Input-Cell-Attention) defines them, and we follow it:

    * the map is rescaled to [0, 1] over all its elements (``sklearn.preprocessing.minmax_scale``
      of the flattened map: ``(a - min) / (max - min)``) — here after the absolute value of
      Lewis et al. 2023; the mask stays binary;
    * weighted Jaccard ``J = sum(min(M, A)) / sum(max(M, A))``;
    * Euclidean distance ``||M - A||_2 / ||M||_2`` (divided by the norm of the mask, so an
      all-zero map scores 1 and a perfect one 0).

    The overlap is scale-free, so it is computed on ``|a|`` directly; the sum normalization of
    the stabilized maps (Lewis et al. 2023, §2.4) changes none of the three metrics. This reading puts
    Table 1's values on the right scale (e.g. boxes: Euclidean 1.24 for the LSTM); a binary
    mask against a sum-normalized map would give distances near ``sqrt(150) ≈ 12`` instead.

ROI detection (Strock et al. 2025, Methods, "XAI methods")
    :func:`roi_scores`, :func:`normalize_max`, :func:`select_features`,
    :func:`precision_recall_f1`: "We obtain the influence of an ROI by taking the absolute value
    of the median of the xAI across time step. To evaluate the performance of the attribution
    method we normalize the attribution by dividing it by the maximum [...] across ROI, and
    compare ROI with attribution above 0.5 with ROI affected [...] using standard recall,
    precision and F1 metrics."

Voxel (feature) detection (Gotsopoulos et al. 2018, §2.9 and §3.2)
    :func:`detection_rates`: for a thresholded map, "voxel accuracy [...] (i.e. the percentage of
    correctly defined voxels as important or not) as well as False Discovery Rate (FDR) and False
    Omission Rate (FOR)". Here a voxel is a feature (region or component).

Undefined ratios (0 / 0: e.g. precision when nothing is selected) are NaN, never a silent 0 or 1;
the scorer averages over subjects ignoring NaN and reports how many subjects entered.
"""

from __future__ import annotations

import numpy as np

#: Strock et al. 2025's threshold on max-normalized ROI scores.
ROI_THRESHOLD = 0.5


def _pair(attribution, mask) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(attribution, dtype=np.float64)
    m = np.asarray(mask)
    if a.shape != m.shape:
        raise ValueError(f"map of shape {a.shape} and mask of shape {m.shape} differ.")
    if a.size == 0:
        raise ValueError("the map is empty.")
    if not np.all(np.isfinite(a)):
        raise ValueError("the map holds NaN or infinite values.")
    if m.dtype != bool:
        if not np.all(np.isin(m, (0, 1))):
            raise ValueError("the ground-truth mask must hold only 0 and 1.")
        m = m.astype(bool)
    return a, m


def _ratio(num: float, den: float) -> float:
    return float(num) / float(den) if den else float("nan")


def minmax_rescale(attribution) -> np.ndarray:
    """``(a - min) / (max - min)`` over all elements ([7]'s ``rescale_``); a constant map → 0."""
    a = np.asarray(attribution, dtype=np.float64)
    lo, hi = a.min(), a.max()
    if hi > lo:
        return (a - lo) / (hi - lo)
    return np.zeros_like(a)


def overlap_fraction(attribution, mask) -> float:
    """Share of the absolute map inside the mask (Lewis et al. 2023, §2.6, Figures 4-5).

    ``sum(|a| [M = 1]) / sum(|a|)``: "the sum of all salient values within the window over the
    sum of the entire map". NaN for an all-zero map. Higher is better (Table 1: 0.33 boxes,
    0.56 VAR for LSTM + attention).
    """
    a, m = _pair(attribution, mask)
    a = np.abs(a)
    return _ratio(a[m].sum(), a.sum())


def weighted_jaccard(attribution, mask) -> float:
    """Weighted Jaccard similarity of the rescaled absolute map and the mask (Lewis et al. 2023, §2.6).

    ``sum(min(M, A)) / sum(max(M, A))`` with ``A`` = :func:`minmax_rescale` of ``|a|`` and
    ``M`` the binary mask (definition of [7]; see the module docstring). In [0, 1], higher is
    better (Table 1: 0.22 boxes, 0.10 VAR).
    """
    a, m = _pair(attribution, mask)
    scaled = minmax_rescale(np.abs(a))
    truth = m.astype(np.float64)
    return _ratio(np.minimum(truth, scaled).sum(), np.maximum(truth, scaled).sum())


def euclidean_distance(attribution, mask) -> float:
    """Euclidean distance of the rescaled absolute map to the mask (Lewis et al. 2023, §2.6).

    ``||M - A||_2 / ||M||_2`` with ``A`` = :func:`minmax_rescale` of ``|a|`` (definition of [7];
    see the module docstring). 0 for a perfect map, 1 for an all-zero map; lower is better
    (Table 1: 1.24 boxes, 4.57 VAR). NaN for an empty mask.
    """
    a, m = _pair(attribution, mask)
    truth = m.astype(np.float64)
    return _ratio(np.linalg.norm(truth - minmax_rescale(np.abs(a))), np.linalg.norm(truth))


def saliency_quality(attribution, mask) -> dict[str, float]:
    """The three metrics of Lewis et al. 2023's Table 1 for one map: ``overlap``, ``weighted_jaccard``,
    ``euclidean_distance``."""
    return {
        "overlap": overlap_fraction(attribution, mask),
        "weighted_jaccard": weighted_jaccard(attribution, mask),
        "euclidean_distance": euclidean_distance(attribution, mask),
    }


def roi_scores(attribution) -> np.ndarray:
    """Strock et al. 2025's influence of each ROI: ``|median over time|`` of a ``(time, features)`` map.

    NaN entries (time points a feature lacks) are ignored by the median; a feature with no value
    at all scores NaN.
    """
    a = np.asarray(attribution, dtype=np.float64)
    if a.ndim != 2:
        raise ValueError(f"roi_scores needs a (time, features) map, got shape {a.shape}.")
    with np.errstate(all="ignore"):
        missing = np.all(np.isnan(a), axis=0)
        med = np.nanmedian(np.where(missing[None, :], 0.0, a), axis=0)
    med = np.abs(med)
    med[missing] = np.nan
    return med


def normalize_max(scores) -> np.ndarray:
    """Divide non-negative scores by their maximum (Strock et al. 2025); all-zero or all-NaN → zeros."""
    s = np.asarray(scores, dtype=np.float64)
    if np.any(s[np.isfinite(s)] < 0):
        raise ValueError("normalize_max needs non-negative scores.")
    peak = np.nanmax(s) if np.any(np.isfinite(s)) else 0.0
    if peak > 0:
        return s / peak
    return np.where(np.isnan(s), np.nan, 0.0)


def select_features(scores, threshold: float = ROI_THRESHOLD) -> np.ndarray:
    """Strock et al. 2025's selection: max-normalized score *above* ``threshold`` (strictly; NaN → not).

    xaibids' own ``group/desc-<method>_importance.tsv`` marks ``importance_norm >= 0.5``; the two
    differ only for a score of exactly half the maximum.
    """
    norm = normalize_max(scores)
    return np.nan_to_num(norm, nan=-np.inf) > threshold


def confusion_counts(selected, relevant) -> dict[str, int]:
    """``tp``, ``fp``, ``fn``, ``tn`` of boolean selections against boolean truth."""
    sel = np.asarray(selected, dtype=bool).ravel()
    rel = np.asarray(relevant, dtype=bool).ravel()
    if sel.shape != rel.shape:
        raise ValueError(f"selection of {sel.size} elements and truth of {rel.size} differ.")
    return {"tp": int(np.sum(sel & rel)), "fp": int(np.sum(sel & ~rel)),
            "fn": int(np.sum(~sel & rel)), "tn": int(np.sum(~sel & ~rel))}


def precision_recall_f1(selected, relevant) -> dict[str, float]:
    """Standard precision ``tp/(tp+fp)``, recall ``tp/(tp+fn)`` and F1 ``2tp/(2tp+fp+fn)``
    (Strock et al. 2025, Methods). F1 equals the harmonic mean of precision and recall wherever both are
    defined, and is 0 (not NaN) when relevant features exist but none was selected."""
    c = confusion_counts(selected, relevant)
    return {
        "precision": _ratio(c["tp"], c["tp"] + c["fp"]),
        "recall": _ratio(c["tp"], c["tp"] + c["fn"]),
        "f1": _ratio(2 * c["tp"], 2 * c["tp"] + c["fp"] + c["fn"]),
    }


def detection_rates(selected, relevant) -> dict[str, float]:
    """Gotsopoulos et al. 2018 (§3.2): ``accuracy`` ``(tp+tn)/n``, ``fdr`` ``fp/(fp+tp)`` and ``for``
    ``fn/(fn+tn)`` of a thresholded map against the truth."""
    c = confusion_counts(selected, relevant)
    n = c["tp"] + c["fp"] + c["fn"] + c["tn"]
    return {
        "accuracy": _ratio(c["tp"] + c["tn"], n),
        "fdr": _ratio(c["fp"], c["fp"] + c["tp"]),
        "for": _ratio(c["fn"], c["fn"] + c["tn"]),
    }


def roi_detection(attribution, relevant, threshold: float = ROI_THRESHOLD) -> dict[str, float]:
    """Strock et al. 2025 and Gotsopoulos et al. 2018 scores of one ``(time, features)`` map against relevant features.

    ``relevant`` is a boolean vector over features. Returns ``precision``, ``recall``, ``f1``
    (Strock et al. 2025) and ``accuracy``, ``fdr``, ``for`` (Gotsopoulos et al. 2018) of the features whose
    :func:`roi_scores`, max-normalized, lie above ``threshold``.
    """
    selected = select_features(roi_scores(attribution), threshold)
    return {**precision_recall_f1(selected, relevant), **detection_rates(selected, relevant)}
