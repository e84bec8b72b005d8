"""Co-saliency and static functional network connectivity (Lewis et al. 2023 §2.8, §3.3, Figs. 7–8).

Lewis et al. 2023, §2.8: "we computed the pairwise correlation of the processed saliency maps, which we
call 'co-saliency', using Pearson correlation" — per subject, the correlation between features of
the stabilized attribution timecourses (time × features). §3.3 / Fig. 7 compares the classes with
t-values "masked by the FDR corrected significance, where α = .01", side by side with the same
analysis of the static functional network connectivity (sFNC, the correlation of the input
timecourses), and shows each class's mean matrix.

What the seed leaves open, and what is done here (all named parameters):

- **averaging and testing scale**: correlations are Fisher z-transformed (``arctanh``, with ``r``
  clipped to ``±(1 - 1e-7)``) before averaging and testing; the class mean is the mean z
  back-transformed with ``tanh``. This is the convention of GIFT's FNC analyses, the toolbox the
  seed's ICA timecourses come from (§2.1).
- **test**: two-sample Student t-test per edge (:func:`scipy.stats.ttest_ind`, ``equal_var=True``:
  the seed names a "2-sample t-test" (Table 1) and no unequal-variance correction), ``t`` is
  ``classes[1]`` minus ``classes[0]`` as for Cohen's d; Benjamini–Hochberg FDR over the tested
  edges (:func:`statsmodels.stats.multitest.multipletests`, ``method="fdr_bh"``), ``alpha``
  default 0.01 as in the seed. With more than two classes no t-test is made (n/a).
- **repeated subjects**: the z values of a subject's runs are averaged, so each subject counts
  once.
- **constant timecourses**: a feature whose timecourse is constant (zero variance, e.g. an
  attribution that is zero throughout) or not finite in a sample has no correlation there; those
  correlations are NaN, the sample is left out of that edge's class mean and test, edges with
  fewer than two subjects per class are not tested (``t``, ``p``, ``p_fdr`` n/a,
  ``significant`` false) and left out of the FDR correction, and the features concerned are
  listed in :attr:`ConnectivityStatistics.excluded`.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats as sps

from xaibids.stats._common import check_labels, subject_index
from xaibids.stats.communities import detect_communities

#: Correlations are clipped to ``±(1 - R_CLIP)`` before the Fisher transform.
R_CLIP = 1e-7


def correlation_edges(timecourses, max_values: int = 4_000_000):
    """Per-sample Pearson correlation between features, upper triangle (Lewis et al. 2023 §2.8).

    Parameters
    ----------
    timecourses : ndarray of shape (n_samples, n_timepoints, n_features)
        One multivariate timecourse per sample (stabilized maps, or input timecourses).
    max_values : int, default=4_000_000
        Samples are processed in batches of about this many matrix entries.

    Returns
    -------
    edges : ndarray of shape (n_samples, n_features * (n_features - 1) // 2)
        ``r`` of each feature pair ``np.triu_indices(n_features, 1)``; NaN when either feature
        is constant or not finite in that sample.
    valid : ndarray of bool, shape (n_samples, n_features)
        Whether each feature's timecourse is finite and non-constant in each sample.
    """
    x = np.asarray(timecourses, dtype=float)
    if x.ndim != 3:
        raise ValueError(
            f"correlation_edges needs timecourses of shape (n_samples, n_timepoints, "
            f"n_features), got {x.shape}."
        )
    n, t, f = x.shape
    if t < 3:
        raise ValueError(f"correlation_edges needs at least 3 time points, got {t}.")
    if f < 2:
        raise ValueError(f"correlation_edges needs at least 2 features, got {f}.")
    iu, ju = np.triu_indices(f, 1)
    edges = np.empty((n, iu.size))
    finite = np.isfinite(x).all(axis=1)
    with np.errstate(invalid="ignore"):
        valid = finite & (np.ptp(np.where(np.isfinite(x), x, 0.0), axis=1) > 0)
    step = max(1, int(max_values // (f * f)))
    for start in range(0, n, step):
        chunk = x[start:start + step]
        ok = valid[start:start + step]
        kept = np.where(ok[:, None, :], chunk, 0.0)
        centred = np.where(ok[:, None, :], kept - kept.mean(axis=1, keepdims=True), 0.0)
        norm = np.sqrt(np.einsum("btf,btf->bf", centred, centred))
        unit = centred / np.where(ok, norm, 1.0)[:, None, :]
        corr = np.clip(np.matmul(unit.transpose(0, 2, 1), unit)[:, iu, ju], -1.0, 1.0)
        corr[~(ok[:, iu] & ok[:, ju])] = np.nan
        edges[start:start + step] = corr
    return edges, valid


def fisher_z(r):
    """Fisher transform ``arctanh(r)`` with ``r`` clipped to ``±(1 - 1e-7)`` (NaN stays NaN)."""
    r = np.asarray(r, dtype=float)
    return np.arctanh(np.clip(r, -1 + R_CLIP, 1 - R_CLIP))


def edges_to_matrix(values, n_features: int, diagonal=1.0) -> np.ndarray:
    """Symmetric ``(n_features, n_features)`` matrix from upper-triangle edge values.

    Parameters
    ----------
    values : array-like of shape (n_features * (n_features - 1) // 2,)
        One value per pair, in ``np.triu_indices(n_features, 1)`` order (the row order of the
        ``edges`` tables).
    n_features : int
        Size of the matrix.
    diagonal : float or array-like of shape (n_features,), default=1.0
        Values of the diagonal.
    """
    values = np.asarray(values, dtype=float)
    iu, ju = np.triu_indices(n_features, 1)
    if values.shape != iu.shape:
        raise ValueError(f"edges_to_matrix needs {iu.size} edge values for {n_features} "
                         f"features, got shape {values.shape}.")
    matrix = np.empty((n_features, n_features))
    matrix[iu, ju] = values
    matrix[ju, iu] = values
    matrix[np.diag_indices(n_features)] = diagonal
    return matrix


@dataclass
class ConnectivityStatistics:
    """Class comparison of per-subject correlation matrices (co-saliency or sFNC).

    Attributes
    ----------
    feature_names : list of str
    classes : list of str
    matrices : dict
        Class label -> ``(n_features, n_features)`` class-mean correlation (mean Fisher z,
        back-transformed); diagonal 1, NaN rows for features never valid in that class.
    edges : pandas.DataFrame
        One row per feature pair (upper triangle order): ``feature_a``, ``feature_b``,
        ``mean_<class>`` (class-mean r), ``t``, ``p``, ``p_fdr``, ``significant``.
    excluded : pandas.DataFrame
        Features with a constant or non-finite timecourse: ``feature``, ``class``,
        ``n_excluded`` (subjects of that class where the feature has no correlation),
        ``n_subjects`` (subjects of the class).
    n_subjects : dict
        Class label -> number of subjects analysed.
    n_tested : int
        Number of edges entering the t-tests and the FDR correction.
    alpha : float
        FDR level.
    equal_var : bool
        Student (True) or Welch (False) t-test.
    communities : dict
        Class label -> :class:`~xaibids.stats.communities.Communities` of its mean matrix.
    """

    feature_names: list
    classes: list
    matrices: dict
    edges: pd.DataFrame
    excluded: pd.DataFrame
    n_subjects: dict
    n_tested: int
    alpha: float
    equal_var: bool
    communities: dict = field(default_factory=dict)

    def matrix_table(self, label) -> pd.DataFrame:
        """The mean matrix of class ``label`` as a relmat table (``node`` + one column each)."""
        table = pd.DataFrame(self.matrices[label], columns=list(self.feature_names))
        table.insert(0, "node", list(self.feature_names))
        return table

    def communities_table(self) -> pd.DataFrame:
        """``feature``, ``class``, ``community`` rows, per class in community order."""
        rows = []
        for label in self.classes:
            part = self.communities.get(label)
            if part is None:
                continue
            for i in part.order:
                rows.append((self.feature_names[i], label, int(part.labels[i])))
        return pd.DataFrame(rows, columns=["feature", "class", "community"])


def _ttests(z1, z0, equal_var):
    """t and p per column of two groups, omitting NaN; NaN where a group has < 2 values."""
    n_edges = z1.shape[1]
    t = np.full(n_edges, np.nan)
    p = np.full(n_edges, np.nan)
    f1, f0 = np.isfinite(z1), np.isfinite(z0)
    testable = (f1.sum(axis=0) >= 2) & (f0.sum(axis=0) >= 2)
    complete = testable & f1.all(axis=0) & f0.all(axis=0)
    partial = testable & ~complete
    with warnings.catch_warnings(), np.errstate(divide="ignore", invalid="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)  # zero-variance edges give NaN
        if complete.any():
            res = sps.ttest_ind(z1[:, complete], z0[:, complete], axis=0, equal_var=equal_var)
            t[complete], p[complete] = res.statistic, res.pvalue
        if partial.any():
            res = sps.ttest_ind(z1[:, partial], z0[:, partial], axis=0, equal_var=equal_var,
                                nan_policy="omit")
            t[partial], p[partial] = np.asarray(res.statistic), np.asarray(res.pvalue)
    return t, p


def connectivity_statistics(
    timecourses,
    y,
    classes,
    feature_names,
    subjects=None,
    alpha: float = 0.01,
    equal_var: bool = True,
    communities: bool = True,
    samples=None,
) -> ConnectivityStatistics:
    """Per-subject correlation matrices compared between classes (Lewis et al. 2023 §2.8, §3.3).

    Parameters
    ----------
    timecourses : ndarray of shape (n_samples, n_timepoints, n_features)
        Stabilized attribution maps (co-saliency) or input timecourses (sFNC).
    y : ndarray of shape (n_samples,)
        Class index of each sample.
    classes : list of str
        Class labels.
    feature_names : list of str
        Feature names.
    subjects : array-like of shape (n_samples,), optional
        Subject of each sample; a subject's runs are averaged (Fisher z).
    alpha : float, default=0.01
        FDR level (Lewis et al. 2023 §3.3, Fig. 7).
    equal_var : bool, default=True
        Student t-test (True, the seed's) or Welch (False).
    communities : bool, default=True
        Also detect communities of each class-mean matrix (:func:`detect_communities`).
    samples : array-like of bool or int, optional
        Samples to use (e.g. the attributed ones); all by default.

    Returns
    -------
    ConnectivityStatistics
    """
    x = np.asarray(timecourses, dtype=float)
    if x.ndim != 3:
        raise ValueError(
            f"connectivity_statistics needs timecourses of shape (n_samples, n_timepoints, "
            f"n_features), got {x.shape}."
        )
    n, _, f = x.shape
    y = check_labels(y, n, classes, "connectivity_statistics")
    if len(feature_names) != f:
        raise ValueError(f"connectivity_statistics got {f} features but "
                         f"{len(feature_names)} feature names.")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must lie strictly between 0 and 1, got {alpha!r}.")
    index = subject_index(y, subjects, "connectivity_statistics")
    rows = np.arange(n) if samples is None else np.asarray(samples)
    if rows.dtype == bool:
        if rows.shape != (n,):
            raise ValueError(f"samples mask has shape {rows.shape}, expected ({n},).")
        rows = np.flatnonzero(rows)
    if rows.size == 0:
        raise ValueError("connectivity_statistics got no sample to analyse.")

    r, valid = correlation_edges(x[rows])
    z = fisher_z(r)
    del r
    z_subj = index.aggregate(z, rows)  # (n_subjects, E), NaN-aware mean over runs
    del z
    valid_subj = index.aggregate(valid.astype(float), rows) > 0  # feature valid in some run
    present = np.zeros(len(index.subjects), dtype=bool)
    present[index.sample_subject[rows]] = True
    labels = index.y

    iu, ju = np.triu_indices(f, 1)
    names = list(feature_names)
    edges = pd.DataFrame({"feature_a": [names[i] for i in iu], "feature_b": [names[j] for j in ju]})
    matrices, n_subjects, excluded = {}, {}, []
    for k, label in enumerate(classes):
        members = present & (labels == k)
        n_subjects[label] = int(members.sum())
        zk = z_subj[members]
        counts = np.isfinite(zk).sum(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.tanh(np.where(counts > 0, np.nansum(zk, axis=0) / np.maximum(counts, 1),
                                    np.nan))
        edges[f"mean_{label}"] = mean
        diag = np.where(valid_subj[members].any(axis=0), 1.0, np.nan)
        matrices[label] = edges_to_matrix(mean, f, diag)
        bad = (~valid_subj[members]).sum(axis=0)
        for i in np.flatnonzero(bad):
            excluded.append((names[i], label, int(bad[i]), n_subjects[label]))

    t = np.full(iu.size, np.nan)
    p = np.full(iu.size, np.nan)
    if len(classes) == 2:
        t, p = _ttests(z_subj[present & (labels == 1)], z_subj[present & (labels == 0)],
                       equal_var)
    tested = np.isfinite(p)
    p_fdr = np.full(iu.size, np.nan)
    significant = np.zeros(iu.size, dtype=bool)
    if tested.any():
        # imported here so that ``import xaibids.stats`` works without statsmodels
        from statsmodels.stats.multitest import multipletests

        reject, corrected, _, _ = multipletests(p[tested], alpha=alpha, method="fdr_bh")
        p_fdr[tested] = corrected
        significant[tested] = reject
    edges["t"], edges["p"], edges["p_fdr"], edges["significant"] = t, p, p_fdr, significant
    stats = ConnectivityStatistics(
        feature_names=names, classes=list(classes), matrices=matrices, edges=edges,
        excluded=pd.DataFrame(excluded, columns=["feature", "class", "n_excluded", "n_subjects"]),
        n_subjects=n_subjects, n_tested=int(tested.sum()), alpha=float(alpha),
        equal_var=bool(equal_var),
    )
    if communities:
        stats.communities = {label: detect_communities(np.nan_to_num(matrices[label], nan=0.0))
                             for label in classes if n_subjects[label] > 0}
    return stats
