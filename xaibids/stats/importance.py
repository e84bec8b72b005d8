"""Group-level feature importance from stabilized maps (Lewis et al. 2023 §2.7, §3.2; Strock et al. 2025 Methods).

Lewis et al. 2023, §2.7: the selected saliency maps are summed along the temporal axis for each subject,
giving one value per feature, and group differences per feature are measured with Cohen's d;
§3.2 / Fig. 6 and the Discussion read the effects per functional *domain* as well (SC, AUD, SM,
VIS, CC, DMN, CB). Strock et al. 2025 (Methods, "XAI methods"): attributions are normalized by their maximum
across regions and regions with a normalized attribution of at least 0.5 are taken as the
detected ones.

Additions over the seeds (named parameters, documented here):

- repeated subjects: the time-summed importance of a subject is the mean over its runs (samples),
  so that each subject counts once (see :mod:`xaibids.stats._common`);
- a percentile bootstrap confidence interval of Cohen's d, resampling subjects with replacement
  within each class (:func:`scipy.stats.bootstrap`, ``method="percentile"``);
- domains: the importance of a domain for a subject is the sum of its features' time-summed
  importance, analysed with the same statistics as a feature.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats as sps

from xaibids.stats._common import attributed_samples, check_labels, subject_index
from xaibids.stats.selection import (
    SELECTION_THRESHOLD, SelectionRule, select_features, selection_columns, selection_sidecar,
)

#: Resamples per vectorized call of the bootstrap. Fixed, so that the interval of a feature does
#: not depend on which other features are analysed with it (the same resampled subjects serve all
#: features), and memory stays ``n_features * n_subjects * 50`` values.
BOOTSTRAP_BATCH = 50


def cohens_d(a, b, axis: int = 0):
    """Cohen's d with the pooled standard deviation (Lewis et al. 2023, §2.7).

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




def bootstrap_cohens_d_ci(a, b, n_boot: int = 1000, ci_level: float = 0.95, random_state=0):
    """Percentile bootstrap confidence interval of Cohen's d, resampling within each group.

    Each of the ``n_boot`` resamples draws ``len(a)`` observations of ``a`` and ``len(b)`` of
    ``b`` with replacement (independently, :func:`scipy.stats.bootstrap` with
    ``method="percentile"``) and computes :func:`cohens_d`; the interval is formed by the
    ``(1 - ci_level) / 2`` and ``(1 + ci_level) / 2`` quantiles of those values.

    Parameters
    ----------
    a, b : array-like of shape (n_a, ...) and (n_b, ...)
        Observations of the two groups along axis 0 (one per subject).
    n_boot : int, default=1000
        Number of bootstrap resamples (at least 1).
    ci_level : float, default=0.95
        Confidence level, in (0, 1).
    random_state : int or numpy.random.Generator, default=0
        Seed of the resampling.

    Returns
    -------
    low, high : float or ndarray
        Bounds, one per remaining element (float for 1-D input). Resamples with a zero pooled
        standard deviation (d undefined, e.g. one subject drawn repeatedly in both groups) are
        left out of the quantiles. NaN when a group has fewer than two observations or d is
        undefined in every resample.
    """
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    if int(n_boot) != n_boot or n_boot < 1:
        raise ValueError(f"n_boot must be a positive integer, got {n_boot!r}.")
    if not 0 < ci_level < 1:
        raise ValueError(f"ci_level must lie strictly between 0 and 1, got {ci_level!r}.")
    if a.shape[1:] != b.shape[1:]:
        raise ValueError(f"bootstrap_cohens_d_ci groups have incompatible shapes {a.shape} "
                         f"and {b.shape}.")
    shape = a.shape[1:]
    if len(a) < 2 or len(b) < 2:
        nan = np.full(shape, np.nan)
        return (float(nan), float(nan)) if not shape else (nan, nan)
    a2 = np.moveaxis(a.reshape(len(a), -1), 0, -1)  # (k, n_a)
    b2 = np.moveaxis(b.reshape(len(b), -1), 0, -1)
    rng = (random_state if isinstance(random_state, np.random.Generator)
           else np.random.default_rng(random_state))
    with warnings.catch_warnings(), np.errstate(divide="ignore", invalid="ignore"):
        warnings.simplefilter("ignore")  # degenerate (NaN) resamples are handled below
        res = sps.bootstrap(
            (a2, b2), lambda x, z, axis: cohens_d(x, z, axis=axis), n_resamples=int(n_boot),
            batch=BOOTSTRAP_BATCH, vectorized=True, axis=-1, confidence_level=ci_level,
            method="percentile", rng=rng,
        )
        # scipy's percentile interval is the linear quantile of this distribution; taking it
        # with nanquantile drops degenerate resamples (zero pooled SD, likely with few subjects)
        alpha = (1 - ci_level) / 2
        bounds = np.nanquantile(res.bootstrap_distribution, [alpha, 1 - alpha], axis=-1)
    low = bounds[0].reshape(shape)
    high = bounds[1].reshape(shape)
    return (float(low), float(high)) if not shape else (low, high)


def subject_importance(maps, y, classes, feature_names, subjects=None, who="group_importance"):
    """Time-summed stabilized importance per subject (Lewis et al. 2023, §2.7).

    Parameters
    ----------
    maps : ndarray of shape (n_samples, n_timepoints, n_features)
        Stabilized maps (signed maps count by magnitude); all-NaN samples (not attributed)
        are ignored.
    y : ndarray of shape (n_samples,)
        Class index of each sample.
    classes : list of str
        Class labels.
    feature_names : list of str
        Feature names.
    subjects : array-like of shape (n_samples,), optional
        Subject of each sample; the runs of one subject are averaged. Each sample is its own
        subject when omitted.

    Returns
    -------
    values : ndarray of shape (n_subjects, n_features)
        Time-summed importance (of ``|map|``) of each attributed subject.
    labels : ndarray of shape (n_subjects,)
        Class index of each of those subjects.
    """
    maps = np.asarray(maps, dtype=float)
    if maps.ndim != 3:
        raise ValueError(
            f"{who} needs maps of shape (n_samples, n_timepoints, n_features), got {maps.shape}."
        )
    n_samples, _, n_features = maps.shape
    y = check_labels(y, n_samples, classes, who)
    if len(feature_names) != n_features:
        raise ValueError(
            f"{who} got {n_features} features in the maps but {len(feature_names)} feature names."
        )
    attributed = attributed_samples(maps, who)
    index = subject_index(y, subjects, who)
    rows = np.flatnonzero(attributed)
    # (n, F): summed along time (§2.7); the magnitude, so signed maps (--positive none) do not
    # cancel -- identical for the non-negative maps of Lewis et al. 2023
    per_sample = np.nansum(np.abs(maps[rows]), axis=1)
    per_subject = index.aggregate(per_sample, rows)
    keep = np.isfinite(per_subject).any(axis=1)
    return per_subject[keep], index.y[keep]


def _effect_columns(values, labels, classes, n_boot, ci_level, random_state) -> dict:
    """Cohen's d (``classes[1]`` minus ``classes[0]``), its bootstrap CI and class means."""
    n = values.shape[1]
    nan = np.full(n, np.nan)
    d, low, high = nan, nan.copy(), nan.copy()
    if len(classes) == 2 and np.any(labels == 0) and np.any(labels == 1):
        d = cohens_d(values[labels == 1], values[labels == 0], axis=0)
        if n_boot:
            low, high = bootstrap_cohens_d_ci(values[labels == 1], values[labels == 0],
                                              n_boot, ci_level, random_state)
    columns = {"cohens_d": d, "cohens_d_ci_low": low, "cohens_d_ci_high": high}
    for index, label in enumerate(classes):
        members = labels == index
        columns[f"mean_{label}"] = values[members].mean(axis=0) if members.any() else nan
    return columns


def _check_boot(n_boot, ci_level):
    if int(n_boot) != n_boot or n_boot < 0:
        raise ValueError(f"n_boot must be a non-negative integer (0 skips the bootstrap), "
                         f"got {n_boot!r}.")
    if not 0 < ci_level < 1:
        raise ValueError(f"ci_level must lie strictly between 0 and 1, got {ci_level!r}.")


def group_importance(
    maps: np.ndarray,
    y: np.ndarray,
    classes: list[str],
    feature_names: list[str],
    subjects=None,
    feature_groups: dict | None = None,
    n_boot: int = 1000,
    ci_level: float = 0.95,
    random_state=0,
    selection: SelectionRule | None = None,
    withheld: str | None = None,
    selection_importance: np.ndarray | None = None,
) -> pd.DataFrame:
    """Per-feature importance of a set of (stabilized, out-of-fold) maps (Lewis et al. 2023, §2.7).

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
    subjects : array-like of shape (n_samples,), optional
        Subject of each sample. The time-summed importance of a subject with several runs is
        the mean over its runs; every statistic then counts subjects. Without it each sample
        is a subject.
    feature_groups : dict, optional
        Domain of each feature (``feature -> group``, e.g. from :func:`load_feature_groups`);
        adds a ``group`` column.
    n_boot : int, default=1000
        Bootstrap resamples for the confidence interval of Cohen's d; 0 leaves it n/a.
    ci_level : float, default=0.95
        Level of that interval.
    random_state : int or numpy.random.Generator, default=0
        Seed of the bootstrap.
    selection : SelectionRule, optional
        The rule of the ``selected`` column (:mod:`xaibids.stats.selection`);
        ``empirical-null`` at FDR 0.05 when omitted.
    withheld : str, optional
        Why no feature may be selected (e.g. the classifier's verdict): ``selected`` is then
        False everywhere, the statistics are still reported.
    selection_importance : ndarray of shape (n_samples, n_features), optional
        Per-sample importance the ``empirical-null`` rule tests, e.g. the mean over the ensemble's
        models (:attr:`~xaibids.learning.ensemble.EnsembleResult.mean_model_importance`), which
        is less noisy than one stabilized map; the time-summed ``maps`` when omitted.

    Returns
    -------
    pandas.DataFrame
        One row per feature with columns

        - ``feature``: the feature name;
        - ``importance``: the map summed over time, averaged over subjects (Lewis et al. 2023, §2.7);
        - ``importance_norm``: importance divided by its maximum over features (Strock et al. 2025);
        - ``statistic`` (and for ``empirical-null`` ``share_t``, ``contrast_z``), ``p_value``,
          ``q_value``, ``selected``: the selection rule's statistics, p-value,
          Benjamini-Hochberg q-value (n/a for rules without error control) and outcome
          (:func:`xaibids.stats.selection.select_features`); the rule's description is in
          ``table.attrs["selection"]`` (sidecar entries);
        - ``cohens_d``: Cohen's d of the time-summed importance, ``classes[1]`` minus
          ``classes[0]`` (Lewis et al. 2023, §2.7); NaN when there are more than two classes;
        - ``cohens_d_ci_low``, ``cohens_d_ci_high``: percentile bootstrap interval of d
          (subjects resampled within each class);
        - ``mean_<class>``: the average time-summed importance within each class;
        - ``roi_score``, ``roi_score_norm``, ``roi_selected``: Strock et al. 2025's score
          (:func:`roi_scores`), max-normalized and thresholded at 0.5 -- the one to read for
          signed maps (``--positive none``); ``roi_score_<class>``: the same score over the
          subjects of one class (Strock et al. 2025 scores the affected class);
        - ``group``: the feature's domain, only when ``feature_groups`` is given.
    """
    _check_boot(n_boot, ci_level)
    selection = selection or SelectionRule()
    values, labels = subject_importance(maps, y, classes, feature_names, subjects)
    importance = values.mean(axis=0)
    peak = importance.max()
    norm = importance / peak if peak > 0 else np.zeros_like(importance)
    scores = roi_scores(maps, y, classes, feature_names, subjects)
    peak = np.nanmax(scores) if np.isfinite(scores).any() else 0.0
    scores_norm = scores / peak if peak > 0 else np.zeros_like(scores)
    rule_values, rule_labels = values, labels
    if selection_importance is not None:
        rule_values, rule_labels = subject_importance(
            np.asarray(selection_importance, dtype=float)[:, None, :], y, classes, feature_names,
            subjects, who="group_importance (selection_importance)")
    chosen = select_features(selection, rule_values, rule_labels, len(classes), norm,
                             scores_norm, withheld=withheld)
    table = pd.DataFrame(
        {
            "feature": list(feature_names),
            "importance": importance,
            "importance_norm": norm,
            **selection_columns(chosen),
            **_effect_columns(values, labels, classes, n_boot, ci_level, random_state),
        }
    )
    table["roi_score"] = scores
    table["roi_score_norm"] = scores_norm
    table["roi_selected"] = table["roi_score_norm"] >= SELECTION_THRESHOLD
    # Strock et al. 2025 scores the affected class alone (signed median, hyperexcitable subjects)
    y_arr = np.asarray(y)
    subj = None if subjects is None else np.asarray(subjects)
    for index, label in enumerate(classes):
        members = y_arr == index
        if members.any() and not np.all(np.isnan(maps[members])):
            table[f"roi_score_{label}"] = roi_scores(
                maps[members], y_arr[members], classes, feature_names,
                None if subj is None else subj[members])
        else:
            table[f"roi_score_{label}"] = np.nan
    if feature_groups is not None:
        groups = check_feature_groups(feature_groups, feature_names)
        table["group"] = [groups[f] for f in feature_names]
    table.attrs["selection"] = selection_sidecar(selection, chosen)
    return table


def roi_scores(maps, y, classes, feature_names, subjects=None) -> np.ndarray:
    """Strock et al. 2025's ROI score per feature, averaged over subjects.

    Strock et al. 2025 (Methods, "XAI methods"): "We obtain the influence of an ROI by taking the absolute
    value of the median of the xAI across time step", normalized by the maximum across ROIs and
    thresholded at 0.5. The median is taken of the *signed* map, so attributions that change
    sign over time cancel; on non-negative maps (``--positive abs``) it is the median
    magnitude. Per sample ``|median_t map[t, f]|``, the runs of a subject averaged, then the
    mean over subjects (not normalized here).
    """
    maps = np.asarray(maps, dtype=float)
    n_samples = maps.shape[0]
    y = check_labels(y, n_samples, classes, "roi_scores")
    if len(feature_names) != maps.shape[2]:
        raise ValueError(f"roi_scores got {maps.shape[2]} features but {len(feature_names)} names.")
    rows = np.flatnonzero(attributed_samples(maps, "roi_scores"))
    index = subject_index(y, subjects, "roi_scores")
    with warnings.catch_warnings():  # all-NaN feature columns give NaN, as intended
        warnings.simplefilter("ignore", RuntimeWarning)
        per_sample = np.abs(np.nanmedian(maps[rows], axis=1))
        per_subject = index.aggregate(per_sample, rows)
        return np.nanmean(per_subject, axis=0)


def domain_importance(
    maps: np.ndarray,
    y: np.ndarray,
    classes: list[str],
    feature_names: list[str],
    feature_groups: dict,
    subjects=None,
    n_boot: int = 1000,
    ci_level: float = 0.95,
    random_state=0,
) -> pd.DataFrame:
    """Importance per domain (group of features; Lewis et al. 2023 §3.2, Fig. 6 and Discussion).

    The importance of a domain for a subject is the sum over its features of the time-summed
    stabilized importance (maps are sum-normalized, so it is the share of the map falling in
    the domain); it is then analysed exactly like a feature in :func:`group_importance`.

    Parameters
    ----------
    maps, y, classes, feature_names, subjects, n_boot, ci_level, random_state
        As in :func:`group_importance`.
    feature_groups : dict
        Domain of each feature (``feature -> group``).

    Returns
    -------
    pandas.DataFrame
        One row per domain, in order of first appearance along ``feature_names``, with columns
        ``group``, ``n_features``, ``importance``, ``importance_norm`` (max-normalized over
        domains), ``cohens_d``, ``cohens_d_ci_low``, ``cohens_d_ci_high``, ``mean_<class>``.
    """
    _check_boot(n_boot, ci_level)
    groups = check_feature_groups(feature_groups, feature_names)
    values, labels = subject_importance(maps, y, classes, feature_names, subjects,
                                        who="domain_importance")
    names = list(dict.fromkeys(groups[f] for f in feature_names))
    member = np.array([[groups[f] == g for g in names] for f in feature_names], dtype=float)
    domain_values = values @ member  # (n_subjects, n_domains)
    importance = domain_values.mean(axis=0)
    peak = importance.max()
    return pd.DataFrame(
        {
            "group": names,
            "n_features": member.sum(axis=0).astype(int),
            "importance": importance,
            "importance_norm": importance / peak if peak > 0 else np.zeros_like(importance),
            **_effect_columns(domain_values, labels, classes, n_boot, ci_level, random_state),
        }
    )


def check_feature_groups(feature_groups, feature_names, source: str = "feature_groups") -> dict:
    """Validate a ``feature -> group`` mapping against ``feature_names``.

    Features of the mapping that are not in ``feature_names`` are ignored (a mapping may cover
    a whole atlas); every feature must have a non-empty group.

    Returns
    -------
    dict
        ``feature -> group`` (str) for exactly the features in ``feature_names``, in order.
    """
    if not isinstance(feature_groups, dict):
        raise ValueError(
            f"{source} must map each feature name to its group (a dict), got "
            f"{type(feature_groups).__name__}."
        )
    missing = [f for f in feature_names if f not in feature_groups]
    if missing:
        raise ValueError(
            f"{source} gives no group for {len(missing)} of the {len(feature_names)} features "
            f"(e.g. {', '.join(map(str, missing[:5]))}); add a row for each of them."
        )
    empty = [f for f in feature_names if str(feature_groups[f]).strip() in ("", "n/a", "nan")]
    if empty:
        raise ValueError(
            f"{source} has an empty group for feature(s) {', '.join(map(str, empty[:5]))}; "
            "give each feature a group name."
        )
    return {f: str(feature_groups[f]).strip() for f in feature_names}


def load_feature_groups(path, feature_names) -> dict:
    """Read the domain of each feature from a TSV with columns ``feature`` and ``group``.

    Parameters
    ----------
    path : str or Path
        Tab-separated file, one row per feature, columns ``feature`` (the feature name as in
        the timeseries TSV header) and ``group`` (its domain, e.g. ``VIS``). Further columns
        are ignored; rows of features not in ``feature_names`` are ignored.
    feature_names : list of str
        The features to map.

    Returns
    -------
    dict
        ``feature -> group`` for every feature of ``feature_names``.

    Raises
    ------
    ValueError
        Naming the file and how to fix it: missing file or columns, duplicated features with
        different groups, empty groups, features without a row.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"Feature-group file {path} does not exist; give a TSV with columns "
                         "'feature' and 'group'.")
    try:
        table = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise ValueError(f"Feature-group file {path} is not a readable TSV ({err}); write it "
                         "tab-separated with a header row 'feature<TAB>group'.") from None
    table.columns = [str(c).strip() for c in table.columns]
    absent = [c for c in ("feature", "group") if c not in table.columns]
    if absent:
        raise ValueError(
            f"Feature-group file {path} lacks column(s) {', '.join(absent)} (it has "
            f"{', '.join(table.columns) or 'none'}); its header must name 'feature' and 'group' "
            "and be tab-separated."
        )
    table = table.assign(feature=table["feature"].str.strip(), group=table["group"].str.strip())
    conflicts = table.groupby("feature")["group"].nunique()
    conflicts = conflicts[conflicts > 1].index.tolist()
    if conflicts:
        raise ValueError(f"Feature-group file {path} gives several groups for feature(s) "
                         f"{', '.join(conflicts[:5])}; keep one row per feature.")
    mapping = dict(zip(table["feature"], table["group"]))
    if not set(feature_names) & set(mapping):
        raise ValueError(
            f"Feature-group file {path} names none of the {len(feature_names)} features (e.g. "
            f"{', '.join(map(str, list(feature_names)[:3]))}); its 'feature' column must hold the "
            "feature names of the timeseries header."
        )
    return check_feature_groups(mapping, feature_names, source=f"Feature-group file {path}")
