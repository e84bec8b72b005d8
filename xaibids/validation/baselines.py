"""The simple baselines a user tries first, on the folds of an xaibids run.

Every benchmark on simulated or real data reports them next to xaibids, in the same run and
on the same cross-validation folds (DEVELOPERS.md: losing to them is a defect):

* **classification**: a logistic regression (scikit-learn, standardized features) on each
  region's standard deviation over time, and on the vectorized correlation matrix
  (nilearn's :class:`~nilearn.connectome.ConnectivityMeasure`, as in Abraham et al. 2017);
* **which regions**: a two-sample t-test per region (scipy) of the regions' standard
  deviations and of their means, with Benjamini-Hochberg FDR (statsmodels) at ``alpha``.

Nothing here is new science; the module only assembles the libraries' tools so that every
benchmark computes the same baselines the same way.
"""

from __future__ import annotations

import numpy as np

#: Per-region summaries of a timecourse that the baselines use, ``(samples, time, regions)`` in,
#: ``(samples, regions)`` out.
SUMMARIES = {"sd": lambda X: X.std(axis=1), "mean": lambda X: X.mean(axis=1)}


def out_of_fold_predictions(features: np.ndarray, y: np.ndarray, folds) -> np.ndarray:
    """Out-of-fold class predictions of a standardized logistic regression on ``features``."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    pred = np.empty_like(y)
    for train, test in folds:
        model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
        pred[test] = model.fit(features[train], y[train]).predict(features[test])
    return pred


def classification_baselines(X: np.ndarray, y: np.ndarray, folds) -> dict[str, float]:
    """Balanced accuracy of a logistic regression on the regions' SD and on the connectome.

    ``X`` is ``(samples, time, regions)``, ``folds`` the ``(train, test)`` index pairs of the
    xaibids run. Keys ``logreg_sd_balanced_accuracy``, ``logreg_connectome_balanced_accuracy``.
    """
    from nilearn.connectome import ConnectivityMeasure
    from sklearn.metrics import balanced_accuracy_score

    connectome = ConnectivityMeasure(kind="correlation", vectorize=True, discard_diagonal=True)
    features = {"sd": SUMMARIES["sd"](X), "connectome": connectome.fit_transform(list(X))}
    return {f"logreg_{name}_balanced_accuracy":
            float(balanced_accuracy_score(y, out_of_fold_predictions(values, y, folds)))
            for name, values in features.items()}


def region_tests(X: np.ndarray, y: np.ndarray, alpha: float = 0.05) -> dict[str, dict]:
    """Per region, a t-test between the two classes of its SD and of its mean, with BH FDR.

    Returns ``{"sd": {"t", "p_value", "q_value", "selected"}, "mean": {...}}`` with one value
    per region in each array.
    """
    from scipy import stats
    from statsmodels.stats.multitest import multipletests

    classes = np.unique(y)
    if len(classes) != 2:
        raise ValueError(f"the t-test baseline needs two classes, got {len(classes)}.")
    out = {}
    for name, summary in SUMMARIES.items():
        values = summary(X)
        t, p = stats.ttest_ind(values[y == classes[1]], values[y == classes[0]])
        p = np.nan_to_num(p, nan=1.0)
        q = multipletests(p, method="fdr_bh")[1]
        out[name] = {"t": np.nan_to_num(t), "p_value": p, "q_value": q, "selected": q <= alpha}
    return out


def truth_ranks(statistic: np.ndarray, relevant: np.ndarray) -> list[int]:
    """1-based ranks of the ``relevant`` features when sorted by ``|statistic|``, descending."""
    order = np.argsort(-np.abs(np.asarray(statistic, dtype=float)), kind="stable")
    return sorted(int(r) + 1 for r in np.flatnonzero(np.asarray(relevant, bool)[order]))
