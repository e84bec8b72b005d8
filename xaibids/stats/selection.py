"""Which features the classifier relies on: selection rules with a stated error rate.

The ``selected`` column of the importance tables answers "which features does the classifier
rely on?". Three rules (``--selection``):

``empirical-null`` (the default)
    A test of each feature's attribution across subjects against a null estimated from the
    features themselves. The per-subject importance of a feature is its share of the map summed
    over time (Lewis et al. 2023 §2.7; in the group level each model's map, averaged over the
    subject's ensemble, which is less noisy than the one stabilized map), taken as a centred
    log-ratio (``log share`` minus the subject's mean ``log share``: Aitchison's transform of
    compositional data, so that one feature's larger share does not show as smaller shares of
    all the others). A feature is selected when it passes two one-sided tests:

    - **level**: the mean over subjects of that log-ratio is larger than the bulk of features'
      (against the empirical null below): the feature stands out from the others;
    - **share**: its mean share exceeds an even share ``1 / n_features`` (one-sample t-test
      across subjects): the model gives it more than its part. A sparse model leaves the
      features it does not use near zero, so tightly that the level test alone would call
      features with a trace of weight "more than the bulk"
      (``tests/test_stats_selection.py::test_a_trace_below_an_even_share_is_not_selected``).

    A feature's p-value is the larger of the two, which is a valid p-value for "either null
    holds" (an intersection-union test, Berger 1982, Technometrics 24:295-300); no correction
    for the two tests is needed.

    The level is standardized by an *empirical null* (Efron 2004, "Large-scale simultaneous
    hypothesis testing: the choice of a null hypothesis", JASA 99:96-104): centre and scale are
    the median and the normal-consistent median absolute deviation over features, so the bulk
    of features defines the null. p-values come from Student's t with ``0.37 * n_features``
    degrees of freedom, the information the MAD carries about the scale (its efficiency under
    the normal is 37 %), so that the uncertainty of the estimated scale widens the tails (on
    200 simulated all-null datasets of 100 features, 9 of them selected anything at FDR 0.05,
    ``tests/test_stats_selection.py``). The q-values are Benjamini-Hochberg's over features,
    ``selected`` where ``q <= alpha``: the expected share of false selections among the
    selected features is at most ``alpha`` when the null features' levels follow the empirical
    null. What the rule selects is what stands out from the bulk of features; when most
    features carry the effect, it selects fewer. It is meant for sparse models such as the
    default ``region-cnn`` with its group lasso, whose attributions leave the regions it does
    not use near zero (docs/benchmarks.md, "Feature selection and the verdict at the defaults").

    The class contrast of the log-ratio (Welch's t between the two classes; more classes: a
    one-way ANOVA's p-value as a z-score), standardized by its own empirical null, is reported
    beside it (``contrast_z``: which class a feature's attribution is larger in, the effect
    Lewis et al. 2023 read with Cohen's d, §2.7, §3.2) but not tested: attributions explain the
    *true* class's logit, so the two classes' maps differ through the explained output even
    for features the model ignores, and in exploratory runs on Strock et al. 2025's grid a
    test of the contrast added nodes the affected ones drive to the selection. With fewer than :data:`MIN_EMPIRICAL_FEATURES`
    features the null cannot be estimated from them; the theoretical null is used instead (the
    level: a one-sample t-test across subjects of each feature's log-ratio against 0, the
    average feature's) and the sidecar says so.

``roi-score``
    Strock et al. 2025 (Methods, "XAI methods"): the ROI score ``|median over time|`` of the
    map, averaged over subjects, max-normalized, selected at >= 0.5. No error control.

``fixed``
    The max-normalized importance at >= 0.5 (Strock et al. 2025's threshold applied to Lewis et
    al. 2023's importance). No error control: it always selects at least one feature.

Whatever the rule, nothing is selected when the classifier is not above chance
(:mod:`xaibids.stats.verdict`): the maps then explain a model that did not learn the target.

Hand-written: the empirical null (median and MAD over features) has no maintained Python
implementation (R's ``locfdr`` fits a more elaborate version); the tests (``scipy.stats``) and
the FDR correction (``statsmodels``) are the libraries'.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
from scipy import stats as sps
from statsmodels.stats.multitest import multipletests

#: Selection rules of ``--selection``, the default first.
SELECTION_RULES = ("empirical-null", "roi-score", "fixed")
#: Threshold of the ``fixed`` and ``roi-score`` rules (Strock et al. 2025).
SELECTION_THRESHOLD = 0.5
#: Fewest features from which the empirical null is estimated.
MIN_EMPIRICAL_FEATURES = 20
#: Asymptotic efficiency of the MAD relative to the SD under the normal: the degrees of freedom
#: of the empirical null's t reference are this share of the features.
MAD_EFFICIENCY = 0.37


@dataclass(frozen=True)
class SelectionRule:
    """A selection rule and its level.

    Attributes
    ----------
    name : {"empirical-null", "roi-score", "fixed"}
        The rule (module docstring).
    alpha : float
        FDR level of ``empirical-null`` (ignored by the threshold rules).
    """

    name: str = "empirical-null"
    alpha: float = 0.05

    def __post_init__(self) -> None:
        if self.name not in SELECTION_RULES:
            raise ValueError(f"Selection rule must be one of {', '.join(SELECTION_RULES)}, "
                             f"got {self.name!r}.")
        if not 0 < self.alpha < 1:
            raise ValueError(f"Selection alpha must lie strictly between 0 and 1, got "
                             f"{self.alpha!r}.")

    @property
    def error_controlled(self) -> bool:
        """Whether the rule states an error rate (only ``empirical-null`` does)."""
        return self.name == "empirical-null"

    def describe(self) -> str:
        """One sentence on the rule, for sidecars, reports and the methods text."""
        if self.name == "empirical-null":
            return (
                "Per feature, two one-sided tests of its per-subject importance: its level "
                "(mean over subjects of the centred log-ratio) against an empirical null "
                "(median and MAD over features; Efron 2004; Student's t with 0.37 x features "
                "degrees of freedom), and its share of the map against an even share "
                "(one-sample t-test across subjects); the larger p-value (intersection-union "
                "test), Benjamini-Hochberg q-values; selected where q <= "
                f"{self.alpha:g} (false discovery rate {self.alpha:g}).")
        if self.name == "roi-score":
            return ("Strock et al. 2025's ROI score (|median over time| of the map, mean over "
                    f"subjects), max-normalized, selected at >= {SELECTION_THRESHOLD:g}; no "
                    "error control.")
        return (f"Max-normalized importance selected at >= {SELECTION_THRESHOLD:g} (Strock et "
                "al. 2025's threshold); no error control.")


@dataclass
class NullTest:
    """Statistics standardized by their null (:func:`empirical_null_test`).

    Attributes
    ----------
    z, p_value : ndarray of shape (n_features,)
        Standardized statistic and its p-value (NaN where the statistic is undefined).
    null : {"empirical", "theoretical"}
    centre, scale : float
        The null's centre and scale.
    """

    z: np.ndarray
    p_value: np.ndarray
    null: str
    centre: float
    scale: float


@dataclass
class Selection:
    """Per-feature outcome of a selection rule.

    Attributes
    ----------
    columns : dict of str to ndarray of shape (n_features,)
        The importance table's columns before ``selected``: ``statistic`` (``empirical-null``:
        the z-score of the feature's level against the empirical null; the threshold rules:
        the normalized score), ``share_t`` and ``contrast_z`` (``empirical-null`` only),
        ``p_value`` and ``q_value`` (NaN for the threshold rules and undefined statistics).
    selected : ndarray of bool
    nulls : dict of str to NullTest
        ``level`` (tested) and ``contrast`` (reported) of ``empirical-null``; empty for the
        threshold rules.
    withheld : str or None
        Why nothing is selected although the rule would (e.g. the classifier is at chance).
    """

    columns: dict
    selected: np.ndarray
    nulls: dict = field(default_factory=dict)
    withheld: str | None = None


def class_contrast(values: np.ndarray, labels: np.ndarray, n_classes: int) -> np.ndarray:
    """Per-feature class statistic of per-subject values, oriented so that large is "differs".

    Two classes: Welch's t, ``classes[1]`` minus ``classes[0]`` (signed). More classes: the
    one-way ANOVA's p-value as a z-score (``norm.isf(p)``, one-sided). NaN where undefined
    (constant values, fewer than two subjects in a class).
    """
    values = np.asarray(values, dtype=float)
    labels = np.asarray(labels)
    groups = [values[labels == k] for k in range(n_classes)]
    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # constant features give NaN
        if any(len(g) < 2 for g in groups):
            return np.full(values.shape[1], np.nan)
        if n_classes == 2:
            return sps.ttest_ind(groups[1], groups[0], equal_var=False, axis=0,
                                 nan_policy="omit").statistic.astype(float)
        p = sps.f_oneway(*groups, axis=0).pvalue
        return sps.norm.isf(np.clip(p, 1e-300, 1.0))


def log_ratio(values: np.ndarray) -> np.ndarray:
    """Centred log-ratio of each row (Aitchison): ``log v - mean(log v)`` over features, with
    shares below 1e-9 of the row's total taken as 1e-9 of it (all-zero maps give zeros)."""
    values = np.asarray(values, dtype=float)
    total = np.nansum(values, axis=1, keepdims=True)
    floor = np.where(total > 0, total, 1.0) * 1e-9
    logs = np.log(np.maximum(values, floor))
    return logs - np.nanmean(logs, axis=1, keepdims=True)


def empirical_null_test(statistic: np.ndarray, two_sided: bool = True,
                        min_features: int = MIN_EMPIRICAL_FEATURES) -> NullTest:
    """p-values of statistics against their empirical null (Efron 2004).

    The null's centre is the median of the finite statistics, its scale the median absolute
    deviation times 1.4826 (consistent for the normal); ``z = (statistic - centre) / scale``,
    p-values (two-sided or upper tail) from Student's t with ``MAD_EFFICIENCY * n`` degrees of
    freedom for ``n`` finite statistics. With fewer than ``min_features`` finite statistics, or
    a zero MAD, the theoretical null (centre 0, scale 1, the standard normal) is used.
    """
    statistic = np.asarray(statistic, dtype=float)
    finite = np.isfinite(statistic)
    centre, scale, null, reference = 0.0, 1.0, "theoretical", sps.norm
    if finite.sum() >= min_features:
        mad = float(sps.median_abs_deviation(statistic[finite], scale="normal"))
        if mad > 0:
            centre, scale, null = float(np.median(statistic[finite])), mad, "empirical"
            reference = sps.t(df=MAD_EFFICIENCY * finite.sum())
    z = (statistic - centre) / scale
    p = np.full(statistic.shape, np.nan)
    p[finite] = 2 * reference.sf(np.abs(z[finite])) if two_sided else reference.sf(z[finite])
    return NullTest(z=z, p_value=p, null=null, centre=centre, scale=scale)


def benjamini_hochberg(p: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg q-values of the finite p-values (NaN stays NaN)."""
    q = np.full(np.shape(p), np.nan)
    finite = np.isfinite(p)
    if finite.any():
        q[finite] = multipletests(np.asarray(p)[finite], method="fdr_bh")[1]
    return q


def select_features(rule: SelectionRule, values: np.ndarray, labels: np.ndarray,
                    n_classes: int, importance_norm: np.ndarray, roi_score_norm: np.ndarray,
                    withheld: str | None = None) -> Selection:
    """Apply ``rule`` to one method's per-subject importance.

    Parameters
    ----------
    rule : SelectionRule
    values : ndarray of shape (n_subjects, n_features)
        Per-subject importance (shares of the map; e.g. :func:`xaibids.stats.importance.
        subject_importance`).
    labels : ndarray of shape (n_subjects,)
        Class index of each subject.
    n_classes : int
    importance_norm, roi_score_norm : ndarray of shape (n_features,)
        The max-normalized scores of the ``fixed`` and ``roi-score`` rules.
    withheld : str, optional
        Reason to select nothing (the statistics are still reported).

    Returns
    -------
    Selection
    """
    if rule.name == "empirical-null":
        ratios = log_ratio(values)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN features give NaN
            level = empirical_null_test(np.nanmean(ratios, axis=0), two_sided=False)
            if level.null == "theoretical":
                # too few features for an empirical null: each level against that of the
                # average feature (0 by construction), a one-sample t across subjects
                level = empirical_null_test(
                    sps.ttest_1samp(ratios, 0.0, axis=0, nan_policy="omit").statistic,
                    two_sided=False, min_features=np.inf)
            share = values / np.nansum(values, axis=1, keepdims=True)
            share_test = sps.ttest_1samp(share, 1.0 / values.shape[1], axis=0,
                                         nan_policy="omit", alternative="greater")
        contrast = empirical_null_test(class_contrast(ratios, labels, n_classes),
                                       two_sided=n_classes == 2)
        # intersection-union test (Berger 1982): a feature stands out from the bulk *and*
        # takes more than an even share; the larger p-value is valid for the union of the nulls
        p = np.fmax(level.p_value, np.asarray(share_test.pvalue, dtype=float))
        p[~np.isfinite(level.p_value)] = np.nan
        q = benjamini_hochberg(p)
        result = Selection(
            columns={"statistic": level.z, "share_t": np.asarray(share_test.statistic, float),
                     "contrast_z": contrast.z, "p_value": p, "q_value": q},
            selected=np.nan_to_num(q, nan=1.0) <= rule.alpha,
            nulls={"level": level, "contrast": contrast})
    else:
        score = np.asarray(importance_norm if rule.name == "fixed" else roi_score_norm,
                           dtype=float)
        nan = np.full(score.shape, np.nan)
        result = Selection(columns={"statistic": score, "p_value": nan, "q_value": nan.copy()},
                           selected=np.nan_to_num(score) >= SELECTION_THRESHOLD)
    if withheld:
        result.selected = np.zeros_like(result.selected)
        result.withheld = withheld
    return result


def selection_columns(selection: Selection) -> dict[str, np.ndarray]:
    """The importance table's columns of a :class:`Selection`."""
    return {**selection.columns, "selected": selection.selected}


def selection_sidecar(rule: SelectionRule, selection: Selection) -> dict:
    """Sidecar entries describing the rule, its nulls and any withholding."""
    sidecar = {
        "SelectionRule": rule.name,
        "SelectionAlpha": rule.alpha if rule.error_controlled else None,
        "SelectionDescription": rule.describe(),
        "SelectionNull": {name: {"Null": t.null, "Centre": t.centre, "Scale": t.scale}
                          for name, t in selection.nulls.items()},
        "statistic": {"Description": (
            "z-score of the feature's level (mean over subjects of its centred log-ratio "
            "importance) against the empirical null over features (positive: more important "
            "than the bulk)." if selection.nulls else "The normalized score the rule "
                                                      "thresholds.")},
        "p_value": {"Description": "The larger of the one-sided p-values of the level's "
                                   "z-score and of share_t (intersection-union test); n/a "
                                   "for rules without error control."},
        "q_value": {"Description": "Benjamini-Hochberg adjusted p_value over features."},
        "selected": {"Description": rule.describe()},
    }
    if selection.nulls:
        sidecar["share_t"] = {"Description": (
            "One-sample t statistic, across subjects, of the feature's share of the map minus "
            "an even share (1 / number of features); positive: more than its part.")}
        sidecar["contrast_z"] = {"Description": (
            "Class contrast (Welch's t, classes[1] minus classes[0], or the ANOVA's z with "
            "more classes) of the centred log-ratio importance, standardized by the empirical "
            "null over features; descriptive, not part of the selection.")}
    if any(t.null == "theoretical" for t in selection.nulls.values()):
        sidecar["SelectionWarning"] = (
            f"Fewer than {MIN_EMPIRICAL_FEATURES} features with a defined statistic (or no "
            "spread among them): the theoretical null was used, which can select features "
            "the model does not rely on.")
    if selection.withheld:
        sidecar["SelectionWithheld"] = selection.withheld
        sidecar["selected"] = {"Description": f"False for every feature: {selection.withheld}"}
    return sidecar
