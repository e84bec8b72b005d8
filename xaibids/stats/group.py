"""All group statistics of one attribution method, computed and written (Lewis et al. 2023 §2.7–2.8, §3).

:func:`compute_group_statistics` runs, on the stabilized out-of-fold maps of one method and the
input timecourses:

1. feature (and domain) importance with Cohen's d and its bootstrap interval
   (:mod:`xaibids.stats.importance`; Lewis et al. 2023 §2.7, §3.2);
2. co-saliency — correlations of the attribution timecourses — and static FNC — correlations
   of the input timecourses — compared between classes with FDR-corrected t-tests
   (:mod:`xaibids.stats.connectivity`; Lewis et al. 2023 §2.8, §3.3, Fig. 7);
3. Clauset–Newman–Moore communities and modularity of each class-mean matrix
   (:mod:`xaibids.stats.communities`; Lewis et al. 2023 §3.3, Fig. 8).

:func:`write_group_statistics` writes them as tab-separated tables (``n/a`` for missing values)
with JSON sidecars under the group folder. sFNC does not depend on the attribution method: its
files are identical whichever method writes them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from xaibids.fileio import write_table
from xaibids.stats._common import attributed_samples, check_labels, class_entities
from xaibids.stats.connectivity import ConnectivityStatistics, connectivity_statistics
from xaibids.stats.importance import (
    _check_boot,
    check_feature_groups,
    domain_importance,
    group_importance,
    load_feature_groups,
)

#: ``measure`` of the sFNC rows of ``desc-modularity_metrics.tsv`` and its file ``desc-`` value.
SFNC = "sFNC"


@dataclass
class GroupStatistics:
    """Group statistics of one attribution method.

    Attributes
    ----------
    classes : list of str
    feature_names : list of str
    importance : pandas.DataFrame
        :func:`~xaibids.stats.importance.group_importance` table.
    domains : pandas.DataFrame or None
        :func:`~xaibids.stats.importance.domain_importance` table (with feature groups only).
    cosaliency : ConnectivityStatistics
        Co-saliency of the stabilized maps (Lewis et al. 2023 §2.8).
    sfnc : ConnectivityStatistics
        Static FNC of the input timecourses.
    parameters : dict
        Parameters and counts, recorded in the sidecars.
    """

    classes: list
    feature_names: list
    importance: pd.DataFrame
    domains: pd.DataFrame | None
    cosaliency: ConnectivityStatistics
    sfnc: ConnectivityStatistics
    parameters: dict

    def modularity_table(self, method: str) -> pd.DataFrame:
        """``measure``, ``class``, ``modularity``, ``n_communities`` for both matrices."""
        rows = []
        for measure, conn in ((f"{method}Cosaliency", self.cosaliency), (SFNC, self.sfnc)):
            for label in self.classes:
                part = conn.communities.get(label)
                if part is not None:
                    rows.append((measure, label, part.modularity, part.n_communities))
        return pd.DataFrame(rows, columns=["measure", "class", "modularity", "n_communities"])


def compute_group_statistics(
    maps,
    X,
    y,
    classes,
    feature_names,
    subjects=None,
    feature_groups=None,
    alpha: float = 0.01,
    n_boot: int = 1000,
    random_state=0,
    ci_level: float = 0.95,
    equal_var: bool = True,
    selection=None,
    withheld: str | None = None,
    selection_importance=None,
) -> GroupStatistics:
    """Compute every group statistic of one attribution method (Lewis et al. 2023 §2.7–2.8, §3).

    Parameters
    ----------
    maps : ndarray of shape (n_samples, n_timepoints, n_features)
        Non-negative, sum-normalized stabilized maps; all-NaN samples (not attributed) are
        left out of the importance and co-saliency.
    X : ndarray of shape (n_samples, n_timepoints, n_features)
        Input timecourses (for sFNC; all samples are used, so sFNC is the same for every
        method).
    y : ndarray of shape (n_samples,)
        Class index of each sample.
    classes : list of str
        Class labels (Cohen's d and t are ``classes[1]`` minus ``classes[0]``; with more than
        two classes they are n/a).
    feature_names : list of str
        Feature names.
    subjects : array-like of shape (n_samples,), optional
        Subject of each sample. Several runs of a subject are averaged into one value per
        subject (time-summed importance: mean; correlations: mean Fisher z) before any class
        statistic, so each subject counts once. Each sample is a subject when omitted.
    feature_groups : dict or path, optional
        ``feature -> domain`` mapping, or a TSV with columns ``feature`` and ``group``
        (:func:`~xaibids.stats.importance.load_feature_groups`); adds the domain table.
    alpha : float, default=0.01
        FDR level of the edge tests (Lewis et al. 2023 §3.3).
    n_boot : int, default=1000
        Bootstrap resamples for the interval of Cohen's d (0 skips it).
    random_state : int, default=0
        Seed of the bootstrap.
    ci_level : float, default=0.95
        Level of the bootstrap interval.
    equal_var : bool, default=True
        Student (True, as the seed) or Welch (False) t-tests.
    selection : SelectionRule, optional
        Rule of the importance table's ``selected`` column (:mod:`xaibids.stats.selection`;
        ``empirical-null`` at FDR 0.05 when omitted).
    withheld : str, optional
        Why no feature may be selected (the classifier's verdict), recorded in the sidecar.
    selection_importance : ndarray of shape (n_samples, n_features), optional
        Per-sample importance the selection rule tests
        (:func:`~xaibids.stats.importance.group_importance`).

    Returns
    -------
    GroupStatistics
    """
    maps = np.asarray(maps, dtype=float)
    X = np.asarray(X, dtype=float)
    if maps.ndim != 3:
        raise ValueError(f"compute_group_statistics needs maps of shape (n_samples, "
                         f"n_timepoints, n_features), got {maps.shape}.")
    if X.shape != maps.shape:
        raise ValueError(f"compute_group_statistics needs X of the maps' shape {maps.shape}, "
                         f"got {X.shape}.")
    if len(feature_names) != maps.shape[2]:
        raise ValueError(f"compute_group_statistics got {maps.shape[2]} features but "
                         f"{len(feature_names)} feature names.")
    if len(set(map(str, feature_names))) != len(feature_names):
        raise ValueError("compute_group_statistics needs distinct feature names.")
    y = check_labels(y, maps.shape[0], classes, "compute_group_statistics")
    class_entities(classes)  # fail early on labels that cannot name files
    _check_boot(n_boot, ci_level)
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must lie strictly between 0 and 1, got {alpha!r}.")
    groups = None
    if feature_groups is not None:
        groups = (load_feature_groups(feature_groups, feature_names)
                  if isinstance(feature_groups, (str, Path))
                  else check_feature_groups(feature_groups, feature_names))
    attributed = attributed_samples(maps, "compute_group_statistics")
    common = dict(subjects=subjects, n_boot=n_boot, ci_level=ci_level, random_state=random_state)
    importance = group_importance(maps, y, classes, feature_names, feature_groups=groups,
                                  selection=selection, withheld=withheld,
                                  selection_importance=selection_importance, **common)
    domains = (domain_importance(maps, y, classes, feature_names, groups, **common)
               if groups is not None else None)
    conn = dict(subjects=subjects, alpha=alpha, equal_var=equal_var)
    cosaliency = connectivity_statistics(maps, y, classes, feature_names, samples=attributed,
                                         **conn)
    sfnc = connectivity_statistics(X, y, classes, feature_names, **conn)
    subject_ids = (np.arange(len(y)) if subjects is None
                   else np.asarray(subjects, dtype=object).astype(str))
    parameters = {
        "Alpha": float(alpha),
        "NBoot": int(n_boot),
        "CILevel": float(ci_level),
        "RandomState": random_state if isinstance(random_state, (int, np.integer)) else None,
        "EqualVariance": bool(equal_var),
        "Selection": importance.attrs["selection"],
        "NSamples": int(len(y)),
        "NSamplesAttributed": int(attributed.sum()),
        "NSubjects": {label: int(len(np.unique(subject_ids[y == k])))
                      for k, label in enumerate(classes)},
        "NSubjectsAttributed": {label: int(len(np.unique(subject_ids[attributed & (y == k)])))
                                for k, label in enumerate(classes)},
        "RepeatedSubjects": ("Samples of the same subject are averaged into one value per "
                             "subject before class statistics (importance: mean of the "
                             "time-summed maps; correlations: mean Fisher z)."),
    }
    return GroupStatistics(classes=list(classes), feature_names=[str(f) for f in feature_names],
                           importance=importance, domains=domains, cosaliency=cosaliency,
                           sfnc=sfnc, parameters=parameters)


def check_method(method: str) -> str:
    """Validate an attribution map key for a ``desc-`` entity (letters and digits)."""
    if not isinstance(method, str) or not re.fullmatch(r"[A-Za-z0-9]+", method):
        raise ValueError(f"method must be an alphanumeric map key like 'ig', 'igMean' or 'deeplift', "
                         f"got {method!r}.")
    return method


def _importance_sidecar(stats: GroupStatistics, method: str, domains: bool) -> dict:
    p = stats.parameters
    c0, c1 = stats.classes[0], stats.classes[1]
    d_text = (f"Cohen's d (pooled SD) of the per-subject {'domain' if domains else 'feature'} "
              f"importance, {c1} minus {c0} (Lewis et al. 2023 §2.7); n/a with more than two classes or "
              "zero variance.")
    sidecar = {
        "Description": (
            (f"Importance of each domain (group of features) in the stabilized {method} maps: "
             "per subject, the sum over the domain's features of the time-summed map, then the "
             "statistics of the feature table (Lewis et al. 2023 §3.2).") if domains else
            (f"Importance of each feature in the stabilized {method} maps: per subject the map "
             "summed over time, averaged over subjects (Lewis et al. 2023 §2.7); max-normalized; "
             "selected by the rule in SelectionDescription.")),
        "Method": method,
        **{k: p[k] for k in ("NBoot", "CILevel", "RandomState", "NSubjectsAttributed",
                             "RepeatedSubjects")},
        "Bootstrap": ("Percentile bootstrap of Cohen's d: subjects resampled with replacement "
                      "within each class (scipy.stats.bootstrap, method='percentile'); "
                      "resamples with a zero pooled SD (d undefined) are left out of the "
                      "quantiles."),
    }
    if domains:
        sidecar["group"] = {"Description": "Domain (group of features)."}
        sidecar["n_features"] = {"Description": "Number of features in the domain."}
    else:
        sidecar["feature"] = {"Description": "Feature name."}
    sidecar.update({
        "importance": {"Description": "Time-summed stabilized attribution (magnitude), mean "
                                      "over subjects."},
        "importance_norm": {"Description": "importance divided by its maximum over rows."},
    })
    if not domains:
        sidecar.update(p["Selection"])
    sidecar.update({
        "cohens_d": {"Description": d_text},
        "cohens_d_ci_low": {"Description": f"Lower bound of the {p['CILevel']:.0%} percentile "
                                           f"bootstrap interval of cohens_d ({p['NBoot']} "
                                           "resamples)."},
        "cohens_d_ci_high": {"Description": f"Upper bound of the {p['CILevel']:.0%} percentile "
                                            "bootstrap interval of cohens_d."},
    })
    for label in stats.classes:
        sidecar[f"mean_{label}"] = {"Description": f"Mean per-subject importance in class {label}."}
    if not domains:
        sidecar.update({
            "roi_score": {"Description": "Strock et al. 2025's ROI score: |median over time| of each "
                                         "subject's stabilized map, mean over subjects."},
            "roi_score_norm": {"Description": "roi_score divided by its maximum over features."},
            "roi_selected": {"Description": "roi_score_norm >= 0.5 (Strock et al. 2025)."},
        })
        for label in stats.classes:
            sidecar[f"roi_score_{label}"] = {"Description": f"roi_score over the subjects of "
                                                            f"class {label} only."}
    if not domains and "group" in stats.importance.columns:
        sidecar["group"] = {"Description": "Domain of the feature."}
    if not domains and "reference_region" in stats.importance.columns:
        sidecar["reference_region"] = {
            "Description": "Harvard-Oxford region (xaibids' bundled maxprob-thr25 atlas) holding "
                           "the most voxels of this region, after nearest-neighbour resampling "
                           "to the atlas grid."}
        sidecar["reference_share"] = {
            "Description": "Fraction of this region's voxels lying in reference_region."}
    return sidecar


def _connectivity_files(conn: ConnectivityStatistics, folder: Path, desc: str, what: str,
                        entities: list[str]) -> list[Path]:
    written = []
    base = {
        "Measure": desc,
        "Averaging": ("Per-subject Pearson correlations are Fisher z-transformed (r clipped to "
                      "+-(1 - 1e-7)), averaged over a subject's runs, then over the subjects of "
                      "the class, and back-transformed with tanh."),
    }
    for label, entity in zip(conn.classes, entities):
        sidecar = {
            "Description": (f"Class-mean {what} matrix of class {label}: one row and one column "
                            "per feature, in the order of the 'node' column (Lewis et al. 2023 §2.8, "
                            "Fig. 7). Diagonal 1; n/a for features never defined in the class."),
            **base,
            "Class": label,
            "NSubjects": conn.n_subjects[label],
            "node": {"Description": "Feature of the row; the other columns are features too."},
        }
        written += write_table(conn.matrix_table(label), folder,
                               f"desc-{desc}_class-{entity}_relmat", sidecar)
    ttest = "Student" if conn.equal_var else "Welch"
    excluded = conn.excluded.to_dict(orient="records")
    c0, c1 = conn.classes[0], conn.classes[1]
    sidecar = {
        "Description": (f"Per-edge comparison of the per-subject {what} between classes: "
                        f"two-sample {ttest} t-test of the Fisher z values (scipy.stats.ttest_ind, "
                        "t = " f"{c1} minus {c0}), Benjamini-Hochberg FDR over the tested edges "
                        "(statsmodels multipletests, fdr_bh) (Lewis et al. 2023 §3.3, Fig. 7). Rows follow "
                        "the upper triangle of the matrices, row by row."),
        **base,
        "Alpha": conn.alpha,
        "Test": f"{ttest} two-sample t-test",
        "Correction": "fdr_bh",
        "NSubjects": conn.n_subjects,
        "NEdges": int(len(conn.edges)),
        "NEdgesTested": conn.n_tested,
        "ExcludedFeatures": excluded,
        "ExcludedFeaturesDescription": (
            "Features whose timecourse is constant or not finite in some subjects: their "
            "correlations are undefined there and those subjects are left out of the edge's "
            "mean and test; edges with fewer than two subjects per class are not tested (n/a) "
            "and left out of the FDR correction."),
        "feature_a": {"Description": "First feature of the pair."},
        "feature_b": {"Description": "Second feature of the pair."},
        **{f"mean_{label}": {"Description": f"Class-mean correlation in class {label}."}
           for label in conn.classes},
        "t": {"Description": f"t statistic, {c1} minus {c0}; n/a when not tested."},
        "p": {"Description": "Two-sided p-value."},
        "p_fdr": {"Description": "Benjamini-Hochberg adjusted p-value."},
        "significant": {"Description": f"p_fdr <= {conn.alpha} (FDR-corrected)."},
    }
    written += write_table(conn.edges, folder, f"desc-{desc}_edges", sidecar)
    sidecar = {
        "Description": (
            f"Communities of each class-mean {what} matrix by Clauset-Newman-Moore greedy "
            "modularity maximization (networkx greedy_modularity_communities; Lewis et al. 2023 §3.3, "
            "Fig. 8). Graph: one node per feature, edges weighted by the positive class-mean "
            "correlations (negative and undefined entries and the diagonal left out). Rows of a "
            "class list its features in community order, to reorder matrices for plots."),
        "Resolution": 1.0,
        "Modularity": {label: part.modularity for label, part in conn.communities.items()},
        "feature": {"Description": "Feature name."},
        "class": {"Description": "Class whose mean matrix was partitioned."},
        "community": {"Description": "Community number, 1 = largest (ties by first feature)."},
    }
    written += write_table(conn.communities_table(), folder, f"desc-{desc}_communities", sidecar)
    return written


def write_group_statistics(stats: GroupStatistics, group_dir, method: str) -> list[Path]:
    """Write the group statistics of one method under ``group_dir``.

    Files (tab-separated, ``n/a`` for missing values, each with a JSON sidecar):

    - ``desc-<method>_importance.tsv``: feature, importance, importance_norm, selected,
      cohens_d, cohens_d_ci_low, cohens_d_ci_high, mean_<class>…[, group];
    - ``desc-<method>_domains.tsv`` (with feature groups): group, n_features, importance,
      importance_norm, cohens_d, cohens_d_ci_low, cohens_d_ci_high, mean_<class>…;
    - ``desc-<method>Cosaliency_class-<class>_relmat.tsv`` and
      ``desc-sFNC_class-<class>_relmat.tsv``: node, then one column per feature;
    - ``desc-<method>Cosaliency_edges.tsv`` and ``desc-sFNC_edges.tsv``: feature_a, feature_b,
      mean_<class>…, t, p, p_fdr, significant;
    - ``desc-<method>Cosaliency_communities.tsv`` and ``desc-sFNC_communities.tsv``: feature,
      class, community;
    - ``desc-modularity_metrics.tsv``: measure, class, modularity, n_communities. This file is
      shared by all methods: rows of the measures written now replace earlier rows of the same
      measure, rows of other measures (other methods) are kept.

    ``<class>`` in file names is the class label reduced to letters and digits.

    Parameters
    ----------
    stats : GroupStatistics
        From :func:`compute_group_statistics`.
    group_dir : str or Path
        Destination folder (created when missing).
    method : str
        Lowercase alphanumeric attribution key (``ig``, ``deeplift``, …).

    Returns
    -------
    list of Path
        Every file written (TSVs and JSON sidecars).
    """
    check_method(method)
    folder = Path(group_dir)
    folder.mkdir(parents=True, exist_ok=True)
    entities = class_entities(stats.classes)
    written = write_table(stats.importance, folder, f"desc-{method}_importance",
                          _importance_sidecar(stats, method, domains=False))
    if stats.domains is not None:
        written += write_table(stats.domains, folder, f"desc-{method}_domains",
                               _importance_sidecar(stats, method, domains=True))
    written += _connectivity_files(stats.cosaliency, folder, f"{method}Cosaliency",
                                   f"co-saliency (correlation of the stabilized {method} "
                                   "attribution timecourses)", entities)
    written += _connectivity_files(stats.sfnc, folder, SFNC,
                                   "static functional network connectivity (correlation of the "
                                   "input timecourses)", entities)
    new = stats.modularity_table(method)
    path = folder / "desc-modularity_metrics.tsv"
    if path.is_file():
        old = pd.read_csv(path, sep="\t", dtype={"measure": str, "class": str},
                          na_values=["n/a"], keep_default_na=False)
        if list(old.columns) == list(new.columns):
            old = old[~old["measure"].isin(new["measure"])]
            new = pd.concat([old, new], ignore_index=True) if len(old) else new
    new = new.sort_values("measure", kind="stable").reset_index(drop=True)
    sidecar = {
        "Description": ("Newman modularity of the Clauset-Newman-Moore communities of each "
                        "class-mean co-saliency and sFNC matrix (networkx modularity on the "
                        "positive-weight graph; Lewis et al. 2023 §3.3, Fig. 8). One file for all "
                        "attribution methods."),
        "Resolution": 1.0,
        "measure": {"Description": "<method>Cosaliency (attribution timecourses of that method) "
                                   "or sFNC (input timecourses)."},
        "class": {"Description": "Class whose mean matrix was partitioned."},
        "modularity": {"Description": "Modularity of the partition; n/a for a graph without "
                                      "positive edges."},
        "n_communities": {"Description": "Number of communities, singletons included."},
    }
    written += write_table(new, folder, "desc-modularity_metrics", sidecar)
    return written
