"""Group-level feature importance from stabilized maps (seed 000 §2.7; seed 001 Methods).

Seed 000, §2.7: the selected saliency maps are summed along the temporal axis for each subject,
giving one value per feature, and group differences per feature are measured with Cohen's d.
Seed 001 (Methods, "XAI methods"): attributions are normalized by their maximum across regions and
regions with a normalized attribution of at least 0.5 are taken as the detected ones.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

SELECTION_THRESHOLD = 0.5


def cohens_d(a, b, axis: int = 0):
    """Cohen's d with the pooled standard deviation (seed 000, §2.7).

    ``d = (mean(a) - mean(b)) / s_pooled`` with
    ``s_pooled = sqrt(((n_a - 1) var_a + (n_b - 1) var_b) / (n_a + n_b - 2))`` and unbiased
    (``ddof=1``) variances.

    Parameters
    ----------
    a, b : array-like
        Samples of the two groups; observations along ``axis``, the other dimensions are
        compared element-wise (e.g. ``(n_subjects, n_features)`` gives one d per feature).
    axis : int, default=0
        Observation axis.

    Returns
    -------
    float or ndarray
        A float for 1-D input, else an array of the remaining shape. NaN where the pooled
        standard deviation is zero or there are fewer than 3 observations in all.
    """
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError("cohens_d needs arrays of observations, not scalars.")
    n_a, n_b = a.shape[axis], b.shape[axis]
    if n_a == 0 or n_b == 0:
        raise ValueError(f"cohens_d needs at least one observation per group, got {n_a} and {n_b}.")
    if np.delete(np.array(a.shape), axis % a.ndim).tolist() != np.delete(
        np.array(b.shape), axis % b.ndim
    ).tolist():
        raise ValueError(f"cohens_d groups have incompatible shapes {a.shape} and {b.shape}.")
    diff = a.mean(axis=axis) - b.mean(axis=axis)
    if n_a + n_b < 3:
        d = np.full(np.shape(diff), np.nan)
    else:
        var_a = a.var(axis=axis, ddof=1) if n_a > 1 else np.zeros(np.shape(diff))
        var_b = b.var(axis=axis, ddof=1) if n_b > 1 else np.zeros(np.shape(diff))
        pooled = np.sqrt(((n_a - 1) * var_a + (n_b - 1) * var_b) / (n_a + n_b - 2))
        with np.errstate(divide="ignore", invalid="ignore"):
            d = np.where(pooled > 0, diff / np.where(pooled > 0, pooled, 1.0), np.nan)
    return float(d) if np.ndim(d) == 0 else d


def group_importance(
    maps: np.ndarray, y: np.ndarray, classes: list[str], feature_names: list[str]
) -> pd.DataFrame:
    """Per-feature importance of a set of (stabilized, out-of-fold) maps.

    Parameters
    ----------
    maps : ndarray of shape (n_samples, n_timepoints, n_features)
        Non-negative stabilized maps, one per sample (:attr:`EnsembleResult.maps`).
        Samples whose map is all-NaN (not attributed) are ignored.
    y : ndarray of shape (n_samples,)
        Class index of each sample.
    classes : list of str
        Class label of each index.
    feature_names : list of str
        Name of each feature.

    Returns
    -------
    pandas.DataFrame
        One row per feature with columns

        - ``feature``: the feature name;
        - ``importance``: the map summed over time, averaged over samples (seed 000, §2.7);
        - ``importance_norm``: importance divided by its maximum over features (seed 001);
        - ``selected``: ``importance_norm >= 0.5`` (seed 001's threshold);
        - ``cohens_d``: Cohen's d of the time-summed importance, ``classes[1]`` minus
          ``classes[0]`` (seed 000, §2.7); NaN when there are more than two classes;
        - ``mean_<class>``: the average time-summed importance within each class.
    """
    maps = np.asarray(maps, dtype=float)
    y = np.asarray(y)
    if maps.ndim != 3:
        raise ValueError(
            f"group_importance needs maps of shape (n_samples, n_timepoints, n_features), got {maps.shape}."
        )
    n_samples, _, n_features = maps.shape
    if y.shape != (n_samples,):
        raise ValueError(f"group_importance got {n_samples} maps but labels of shape {y.shape}.")
    if len(feature_names) != n_features:
        raise ValueError(
            f"group_importance got {n_features} features in the maps but {len(feature_names)} feature names."
        )
    if len(classes) < 2:
        raise ValueError(f"group_importance needs at least two classes, got {classes!r}.")
    if n_samples and (y.min() < 0 or y.max() >= len(classes)):
        raise ValueError(f"group_importance labels must index {len(classes)} classes, got {np.unique(y)}.")
    attributed = ~np.all(np.isnan(maps), axis=(1, 2))
    if not attributed.any():
        raise ValueError("group_importance got no attributed sample (all maps are NaN).")
    per_sample = np.nansum(maps[attributed], axis=1)  # (n, F): summed along time (§2.7)
    labels = y[attributed]
    importance = per_sample.mean(axis=0)
    peak = importance.max()
    norm = importance / peak if peak > 0 else np.zeros_like(importance)
    if len(classes) == 2 and np.any(labels == 0) and np.any(labels == 1):
        d = cohens_d(per_sample[labels == 1], per_sample[labels == 0], axis=0)
    else:
        d = np.full(n_features, np.nan)
    table = pd.DataFrame(
        {
            "feature": list(feature_names),
            "importance": importance,
            "importance_norm": norm,
            "selected": norm >= SELECTION_THRESHOLD,
            "cohens_d": d,
        }
    )
    for index, label in enumerate(classes):
        members = labels == index
        table[f"mean_{label}"] = per_sample[members].mean(axis=0) if members.any() else np.nan
    return table
