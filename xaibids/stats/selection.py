"""Which features the classifier relies on: selection rules with a stated error rate.

The ``selected`` column of the importance tables answers "which features does the classifier
rely on?". Three rules (``--selection``):

``empirical-null`` (the default)
    Two tests of each feature's attribution across subjects, each against a null estimated from
    the features themselves, combined. The per-subject importance of a feature is its share of
    the map summed over time (Lewis et al. 2023 §2.7; in the group level each model's map,
    averaged over the subject's ensemble, which is less noisy than the one stabilized map),
    taken as a centred log-ratio
    (``log share`` minus the subject's mean ``log share``: Aitchison's transform of
    compositional data, so that one feature's larger share does not show as smaller shares of
    all the others).

    - **level**: the mean over subjects of that log-ratio, one-sided (larger than the bulk of
      features): features the model leans on in every class, such as a region whose mean
      signal differs between the groups;
    - **class contrast**: Welch's t of the log-ratio between the two classes (more classes: a
      one-way ANOVA's p-value as a z-score), two-sided: features whose attribution differs
      between the classes, the effect Lewis et al. 2023 read with Cohen's d (§2.7, §3.2).

    Each statistic is standardized by an *empirical null* (Efron 2004, "Large-scale
    simultaneous hypothesis testing: the choice of a null hypothesis", JASA 99:96-104): centre
    and scale are the median and the normal-consistent median absolute deviation over features,
    so the bulk of features defines the null. p-values come from Student's t with
    ``0.37 * n_features`` degrees of freedom, the information the MAD carries about the scale
    (its efficiency under the normal is 37 %), so that the uncertainty of the estimated scale
    widens the tails (on 200 simulated all-null datasets of 100 features, 9 of them selected
    anything at FDR 0.05, ``tests/test_stats_selection.py``).
    A feature's p-value is twice the smaller of its two (Bonferroni over the two tests), the
    q-values Benjamini-Hochberg over features, ``selected`` where ``q <= alpha``: the expected
    share of false selections among the selected features is at most ``alpha`` when the null
    features' statistics follow the empirical null. What the rule selects is what stands out
    from the bulk of features; when most features carry the effect, it selects fewer.

    Why not the tests' own (theoretical) nulls: attributions explain the *true* class's logit,
    so the two classes' maps differ through the explained output even for a feature the model
    ignores, and the test subjects of a fold share their models: on such features the t-test's
    own null selects many features, the empirical null none
    (``tests/test_stats_selection.py``). With fewer than :data:`MIN_EMPIRICAL_FEATURES` features the null cannot
    be estimated from them; the theoretical null is used instead and the sidecar says so.

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
                "Per feature, the centred log-ratio of its per-subject importance tested for "
                "its level (mean over subjects, one-sided) and its class contrast (Welch's t, "
                "two-sided; with more classes a one-way ANOVA), each standardized by an "
                "empirical null (median and MAD over features; Efron 2004) with p-values from "
                "Student's t with 0.37 x features degrees of freedom; the smaller p doubled "
                f"(Bonferroni), Benjamini-Hochberg q-values; selected where q <= {self.alpha:g} "
                f"(false discovery rate {self.alpha:g}).")
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
        the z-score of the test that gave the feature's p-value; the threshold rules: the
        normalized score), ``level_z`` and ``contrast_z`` (``empirical-null`` only),
        ``p_value`` and ``q_value`` (NaN for the threshold rules and undefined statistics).
    selected : ndarray of bool
    nulls : dict of str to NullTest
        ``level`` and ``contrast`` (``empirical-null``; empty for the threshold rules).
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
        contrast = empirical_null_test(class_contrast(ratios, labels, n_classes),
                                       two_sided=n_classes == 2)
        both = np.stack([level.p_value, contrast.p_value])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            p = np.minimum(1.0, 2 * np.nanmin(both, axis=0))  # Bonferroni over the two tests
        use_level = np.nan_to_num(level.p_value, nan=2.0) <= np.nan_to_num(contrast.p_value,
                                                                             nan=2.0)
        q = benjamini_hochberg(p)
        result = Selection(
            columns={"statistic": np.where(use_level, level.z, contrast.z),
                     "level_z": level.z, "contrast_z": contrast.z, "p_value": p, "q_value": q},
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
            "z-score (against its null) of the test, level or class contrast, that gave the "
            "feature's p-value." if selection.nulls else "The normalized score the rule "
                                                          "thresholds.")},
        "p_value": {"Description": "Twice the smaller p-value of the two tests (Bonferroni); "
                                   "n/a for rules without error control."},
        "q_value": {"Description": "Benjamini-Hochberg adjusted p_value over features."},
        "selected": {"Description": rule.describe()},
    }
    if selection.nulls:
        sidecar["level_z"] = {"Description": (
            "Mean over subjects of the feature's centred log-ratio importance, standardized by "
            "the empirical null over features (positive: more important than the bulk).")}
        sidecar["contrast_z"] = {"Description": (
            "Class contrast (Welch's t, or the ANOVA's z with more classes) of the centred "
            "log-ratio importance, standardized by the empirical null over features.")}
    if any(t.null == "theoretical" for t in selection.nulls.values()):
        sidecar["SelectionWarning"] = (
            f"Fewer than {MIN_EMPIRICAL_FEATURES} features with a defined statistic (or no "
            "spread among them): the theoretical null was used, which can select features "
            "the model does not rely on.")
    if selection.withheld:
        sidecar["SelectionWithheld"] = selection.withheld
        sidecar["selected"] = {"Description": f"False for every feature: {selection.withheld}"}
    return sidecar
