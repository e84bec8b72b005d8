"""Score xaibids attribution maps against a simulated dataset's ground truth.

Two entry points share one implementation:

* :func:`score_maps` scores maps held in memory (e.g. :attr:`EnsembleResult.maps`);
* :func:`score_output` reads an xaibids ``OUTPUT_DIR`` (the per-subject
  ``sub-<l>/…_desc-<method>_attribution.tsv`` maps and ``group/desc-<method>_importance.tsv``)
  and a simulated dataset (:class:`~xaibids.validation.groundtruth.GroundTruth`).

Voxel maps (``--features t1``: ``sub-<l>/anat/…_desc-<method>_attribution.nii.gz`` with no
TSV beside them) are scored against the dataset's ``*_desc-groundtruth_mask.nii.gz`` with the
same metrics, the features being the brain's voxels (Gotsopoulos et al. 2018 §3.2 scores *voxel* accuracy,
FDR and FOR; Strock et al. 2025's ``|median over time|`` of a single volume is the voxel's
``|value|``); the ``importance_*`` rows then score the region importance table against the
regions of ``groundtruth_features.tsv``.

The result is one long table (:data:`COLUMNS`):

``metric``, ``method``
    Metric name (:data:`METRICS`) and attribution method (``ig``, …).
``subject``
    The participant (``sub-<label>``) for a per-map value; ``n/a`` (NaN) for dataset-level rows.
``value``
    The metric; for the dataset-level row of a per-subject metric, its mean over subjects.
``sd``, ``n``
    For those mean rows, the sample standard deviation over subjects and the number of
    subjects averaged (subjects with an undefined value, e.g. 0/0, are left out and counted
    out); ``n`` is 1 on per-subject rows and the number of maps behind a group-level metric.

Per-subject metrics (one row per map, plus the mean row):

- ``overlap``, ``weighted_jaccard``, ``euclidean_distance``: Lewis et al. 2023 §2.6 / Table 1, against
  the element-wise mask (only where the dataset has ``*_desc-groundtruth_mask.tsv``);
- ``roi_precision``, ``roi_recall``, ``roi_f1``: Strock et al. 2025, the features whose
  ``|median over time|`` score, max-normalized, is above 0.5, against the subject's relevant
  features (``groundtruth.tsv``);
- ``feature_accuracy``, ``feature_fdr``, ``feature_for``: Gotsopoulos et al. 2018 §3.2 rates of the same
  selection.

Group-level metrics (only where the relevant features are the same for every subject —
``groundtruth_features.tsv``, or one shared set in ``groundtruth.tsv``; not for ``boxes``):

- ``group_roi_*`` (``precision``, ``recall``, ``f1``, ``accuracy``, ``fdr``, ``for``): Strock et al. 2025's
  ROI scores of all maps averaged over subjects (every map sums to one, so each subject weighs
  the same), then max-normalized and thresholded at 0.5;
- ``importance_*`` (same six): the ``selected`` column of xaibids' own
  ``group/desc-<method>_importance.tsv`` (time-summed map averaged over subjects,
  ``importance_norm >= 0.5``) — what a user of the app reads.

- ``importance_r_precision`` and ``importance_auc``: how well the importance *ranking* recovers
  the truth, without the 0.5 threshold (see :func:`_ranking_rows`).
- ``class_<label>_roi_*`` (same six; voxel maps of datasets with per-class truth,
  ``groundtruth_class-<label>_mask.nii.gz`` as ``voxel-patterns`` writes): Gotsopoulos et al. 2018's category
  maps, the group map of each class's samples
  (``group/[space-<tpl>_]desc-<method>_class-<label>_importance.nii.gz``) max-normalized and
  thresholded at 0.5, against that class's pattern.

With the default ``--positive abs`` the maps are non-negative and Strock et al. 2025's ``|median over
time|`` is the median of the absolute values; with ``--positive none`` the maps stay signed and
it is exactly the seed's absolute value of the signed median.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd

from xaibids.errors import XaibidsError
from xaibids.grids import same_grid
from xaibids.validation import metrics as M
from xaibids.validation.groundtruth import GroundTruth, mask_on_grid

LOGGER = logging.getLogger("xaibids")

COLUMNS = ["metric", "method", "subject", "value", "sd", "n"]
_RATES = ("precision", "recall", "f1", "accuracy", "fdr", "for")
SALIENCY_METRICS = ("overlap", "weighted_jaccard", "euclidean_distance")
ROI_METRICS = ("roi_precision", "roi_recall", "roi_f1", "feature_accuracy", "feature_fdr",
               "feature_for")
GROUP_ROI_METRICS = tuple(f"group_roi_{r}" for r in _RATES)
IMPORTANCE_METRICS = tuple(f"importance_{r}" for r in _RATES) + ("importance_r_precision",
                                                                 "importance_auc")
#: Every metric name, in the order of the output table.
METRICS = SALIENCY_METRICS + ROI_METRICS + GROUP_ROI_METRICS + IMPORTANCE_METRICS
#: Metrics where lower is better (all others: higher is better).
LOWER_IS_BETTER = ("euclidean_distance", "feature_fdr", "feature_for", "group_roi_fdr",
                   "group_roi_for", "importance_fdr", "importance_for")

_ROI_NAMES = {"precision": "roi_precision", "recall": "roi_recall", "f1": "roi_f1",
              "accuracy": "feature_accuracy", "fdr": "feature_fdr", "for": "feature_for"}

_MAP_NAME = re.compile(r"_desc-([A-Za-z0-9]+)_attribution\.tsv$")
_VOLUME_NAME = re.compile(r"_desc-([A-Za-z0-9]+)_attribution\.nii\.gz$")


def _as_vector(names, feature_names: list[str]) -> np.ndarray | None:
    """Relevant features as a boolean vector: from a set of names, or given as one."""
    if names is None:
        return None
    if isinstance(names, np.ndarray):
        if names.shape != (len(feature_names),):
            raise ValueError(f"a relevance vector of shape {names.shape} for "
                             f"{len(feature_names)} features.")
        return names.astype(bool)
    return np.array([f in names for f in feature_names], dtype=bool)


def score_subject(attribution: np.ndarray, mask: np.ndarray | None = None,
                  relevant: np.ndarray | None = None,
                  threshold: float = M.ROI_THRESHOLD) -> dict[str, float]:
    """Per-subject metrics of one ``(time, features)`` map.

    ``mask`` (same shape, boolean) gives the Lewis et al. 2023 metrics, ``relevant`` (boolean per
    feature) the Strock et al. 2025/004 ones; either may be None.
    """
    out: dict[str, float] = {}
    if mask is not None:
        out.update(M.saliency_quality(attribution, mask))
    if relevant is not None:
        for key, value in M.roi_detection(attribution, relevant, threshold).items():
            out[_ROI_NAMES[key]] = value
    return out


def _summary_rows(rows: list[dict], method: str) -> list[dict]:
    frame = pd.DataFrame(rows)
    out = []
    if frame.empty:
        return out
    for metric in [m for m in METRICS if m in set(frame["metric"])]:
        values = frame.loc[frame["metric"] == metric, "value"].to_numpy(dtype=float)
        finite = values[np.isfinite(values)]
        out.append({"metric": metric, "method": method, "subject": np.nan,
                    "value": float(finite.mean()) if finite.size else np.nan,
                    "sd": float(finite.std(ddof=1)) if finite.size > 1 else np.nan,
                    "n": int(finite.size)})
    return out


def _rate_rows(prefix: str, method: str, selected: np.ndarray, relevant: np.ndarray,
               n: int) -> list[dict]:
    values = {**M.precision_recall_f1(selected, relevant), **M.detection_rates(selected, relevant)}
    return [{"metric": f"{prefix}_{r}", "method": method, "subject": np.nan, "value": values[r],
             "sd": np.nan, "n": n} for r in _RATES]


def score_maps(maps, feature_names: list[str], subjects: list[str], method: str = "ig",
               masks=None, relevant=None, dataset_relevant: set[str] | None = None,
               importance: pd.DataFrame | None = None,
               threshold: float = M.ROI_THRESHOLD) -> pd.DataFrame:
    """Score in-memory maps; returns the long table described in the module docstring.

    Parameters
    ----------
    maps : sequence of ndarray of shape (n_timepoints, n_features)
        One map per subject (or run), e.g. ``EnsembleResult.maps["ig"]``. All-NaN maps
        (samples that were not attributed) are skipped.
    feature_names : list of str
        Column names of the maps.
    subjects : list of str
        Participant of each map (``sub-<label>``).
    method : str
        Attribution method, written to the ``method`` column.
    masks : sequence of (ndarray or None), optional
        Element-wise truth per map (same shape as the map), for the Lewis et al. 2023 metrics.
    relevant : sequence of (set of str, boolean ndarray or None), optional
        Relevant features per map (names, or one flag per feature), for the Strock et al. 2025/004
        metrics.
    dataset_relevant : set of str or boolean ndarray, optional
        Features relevant for every subject, for the ``group_roi_*`` and ``importance_*`` rows.
    importance : pandas.DataFrame, optional
        xaibids' group importance table (``feature``, ``selected``) for ``importance_*``.
    threshold : float
        Strock et al. 2025's threshold on max-normalized ROI scores.
    """
    n_maps = len(maps)
    if len(subjects) != n_maps:
        raise ValueError(f"{n_maps} maps but {len(subjects)} subjects.")
    for name, seq in (("masks", masks), ("relevant", relevant)):
        if seq is not None and len(seq) != n_maps:
            raise ValueError(f"{n_maps} maps but {len(seq)} {name}.")
    rows: list[dict] = []
    scores = []
    for i in range(n_maps):
        a = np.asarray(maps[i], dtype=np.float64)
        if a.ndim != 2 or a.shape[1] != len(feature_names):
            raise ValueError(f"map {i} has shape {a.shape}; expected (time, {len(feature_names)}).")
        if np.all(np.isnan(a)):
            continue
        a = np.nan_to_num(a, nan=0.0)
        mask = None if masks is None else masks[i]
        rel = None if relevant is None else _as_vector(relevant[i], feature_names)
        for metric, value in score_subject(a, mask, rel, threshold).items():
            rows.append({"metric": metric, "method": method, "subject": subjects[i],
                         "value": value, "sd": np.nan, "n": 1})
        scores.append(M.roi_scores(a))
    out = rows + _summary_rows(rows, method)
    truth = _as_vector(dataset_relevant, feature_names)
    if isinstance(dataset_relevant, set) and dataset_relevant - set(feature_names):
        LOGGER.warning("Relevant feature(s) %s are not in the maps and are not scored.",
                       sorted(set(dataset_relevant) - set(feature_names))[:5])
    if truth is not None and scores:
        group = np.nanmean(np.vstack(scores), axis=0)
        out += _rate_rows("group_roi", method, M.select_features(group, threshold), truth,
                          len(scores))
    if truth is not None and importance is not None:
        out += _importance_rows(method, importance, feature_names, truth, len(scores))
    frame = pd.DataFrame(out, columns=COLUMNS)
    frame["n"] = frame["n"].astype(int)
    return frame


def _importance_rows(method: str, importance: pd.DataFrame, feature_names: list[str],
                     truth: np.ndarray, n: int) -> list[dict]:
    """``importance_*`` rows: the ``selected`` column and the ``importance_norm`` ranking of
    xaibids' group importance table against the relevant features ``truth``."""
    table = importance.set_index(importance["feature"].astype(str))
    absent = [f for f in feature_names if f not in table.index]
    if absent:
        raise XaibidsError(f"The importance table of {method!r} lacks feature(s) {absent[:5]}.")
    selected = table.loc[feature_names, "selected"].astype(str).str.lower().isin(
        ("true", "1")).to_numpy()
    return (_rate_rows("importance", method, selected, truth, n)
            + _ranking_rows(method, table.loc[feature_names, "importance_norm"].to_numpy(float),
                            truth, n))


def _ranking_rows(method: str, importance: np.ndarray, relevant: np.ndarray, n: int) -> list[dict]:
    """Threshold-free rows: R-precision and ROC AUC of the importance ranking.

    R-precision is the share of relevant features among the ``k`` most important ones, ``k``
    the number of relevant features (so it equals recall at ``k``); the AUC is the probability
    that a relevant feature ranks above an irrelevant one (scikit-learn's ``roc_auc_score``).
    Both ignore the 0.5 selection threshold, which on maps spread over many features selects
    most of them.
    """
    from sklearn.metrics import roc_auc_score

    relevant = np.asarray(relevant, dtype=bool)
    ok = np.isfinite(importance)
    k = int(relevant[ok].sum())
    rows = []
    if k:
        top = np.argsort(-importance[ok], kind="stable")[:k]
        rows.append(("importance_r_precision", float(relevant[ok][top].mean())))
    if 0 < k < ok.sum():
        rows.append(("importance_auc", float(roc_auc_score(relevant[ok], importance[ok]))))
    return [{"metric": m, "method": method, "subject": np.nan, "value": v, "sd": np.nan, "n": n}
            for m, v in rows]


def find_maps(output_dir: str | os.PathLike, methods=None) -> dict[str, list[Path]]:
    """Per method, the per-subject ``*_desc-<method>_attribution.tsv`` maps in ``output_dir``."""
    found: dict[str, list[Path]] = {}
    for path in sorted(Path(output_dir).glob("sub-*/**/*_attribution.tsv")):
        match = _MAP_NAME.search(path.name)
        if match and (not methods or match.group(1) in methods):
            found.setdefault(match.group(1), []).append(path)
    return found


def find_volume_maps(output_dir: str | os.PathLike, methods=None) -> dict[str, list[Path]]:
    """Per method, the per-subject voxel maps ``*_desc-<method>_attribution.nii.gz`` that have
    no TSV beside them (the NIfTI maps of ROI and ICA features are painted from their TSV,
    which is what is scored)."""
    found: dict[str, list[Path]] = {}
    for path in sorted(Path(output_dir).glob("sub-*/**/*_attribution.nii.gz")):
        match = _VOLUME_NAME.search(path.name)
        if not match or path.with_name(path.name[:-len(".nii.gz")] + ".tsv").exists():
            continue
        if not methods or match.group(1) in methods:
            found.setdefault(match.group(1), []).append(path)
    return found


def _volume_domain(output_dir: Path, img) -> np.ndarray | None:
    """The brain mask of the group level's voxel grid (the voxels a map is defined on): for
    ``--features t1`` the template grid's of the run's ``--t1-resolution``, for ``trials`` the
    intersection of the runs' masks in ``output_dir``; None when it cannot be recovered for
    ``img``'s grid."""
    import nibabel as nb
    from nilearn.masking import intersect_masks

    from xaibids.config import Config
    from xaibids.features.t1 import grid_mask

    config_file = output_dir / "logs" / "config.toml"
    if not config_file.is_file():
        return None
    try:
        workflow = Config.load(config_file).workflow
        if workflow.features == "trials":
            masks = [nb.load(p) for p in sorted(output_dir.glob("sub-*/**/*_desc-brain_mask.nii.gz"))]
            masks = [m for m in masks if same_grid(m, img)]
            return (np.asarray(intersect_masks(masks, threshold=1, connected=False).dataobj) > 0
                    if masks else None)
        grid = grid_mask(workflow.t1_resolution)
    except (ValueError, OSError):
        return None
    if not same_grid(grid, img):
        return None
    return np.asarray(grid.dataobj) > 0


def score_volume_maps(paths: list[Path], truth: GroundTruth, method: str,
                      domain: np.ndarray | None = None, importance: pd.DataFrame | None = None,
                      threshold: float = M.ROI_THRESHOLD) -> pd.DataFrame:
    """Score per-subject voxel maps against the dataset's NIfTI ground-truth masks.

    Each map (a run's single-trial maps, ``--features trials``: their mean absolute value over
    the trials) and its subject's mask (resampled to the map's grid, nearest neighbour) are
    restricted to ``domain`` (the grid's brain mask; without it, every voxel of the grid) and
    scored by :func:`score_maps` as one time point over voxels. The
    group rows use the voxels that are relevant in every subject's mask; ``importance`` (the
    region table) is scored against the regions of ``groundtruth_features.tsv``.
    """
    import nibabel as nb

    maps, masks, subjects, voxels = [], [], [], None
    for path in paths:
        subject = path.name.split("_")[0]
        img = nb.load(path)
        mask = truth.read_volume_mask(path, img)
        if mask is None:
            LOGGER.warning("No ground-truth mask for %s; it is not scored.", path.name)
            continue
        data = np.asarray(img.dataobj, dtype=np.float64)
        if data.ndim == 4:  # a run's single-trial maps: their mean absolute value
            data = np.abs(data).mean(axis=3)
        if voxels is None:
            voxels = domain if domain is not None else np.ones(data.shape, dtype=bool)
        if data.shape != voxels.shape:
            raise XaibidsError(f"{path} is on another grid than the first {method!r} map; score "
                               "maps of one run at a time.")
        maps.append(data[voxels][None, :])
        masks.append(mask[voxels][None, :])
        subjects.append(subject)
    if not maps:
        raise XaibidsError(f"None of the {method!r} voxel maps has a ground-truth mask "
                           f"(*_desc-groundtruth_mask.nii.gz) in {truth.root}.")
    names = [str(i) for i in range(maps[0].shape[1])]
    shared = np.logical_and.reduce([m[0] for m in masks])
    table = score_maps(maps, names, subjects, method, masks=masks,
                       relevant=[m[0] for m in masks],
                       dataset_relevant=shared if shared.any() else None, threshold=threshold)
    regions = truth.dataset_relevant()
    if importance is not None and regions:
        features = importance["feature"].astype(str).tolist()
        extra = _importance_rows(method, importance, features,
                                 _as_vector(regions, features), len(maps))
        table = pd.concat([table, pd.DataFrame(extra, columns=COLUMNS)], ignore_index=True)
    return table


def score_class_maps(group_dir: Path, truth: GroundTruth, method: str,
                     domain: np.ndarray | None = None, threshold: float = M.ROI_THRESHOLD,
                     n: int = 0) -> pd.DataFrame:
    """``class_<label>_roi_*`` rows: each class's group voxel map against the class's pattern.

    Reads ``group/…desc-<method>_class-<label>_importance.nii.gz`` and the truth's
    ``groundtruth_class-<label>_mask.nii.gz`` (resampled nearest-neighbour onto the map's grid),
    restricted to ``domain``; the map's absolute values, max-normalized, select the voxels at or
    above ``threshold`` (Strock et al. 2025's rule). An empty table when either file is missing.
    """
    import nibabel as nb

    rows = []
    for path in sorted(Path(group_dir).glob(f"*desc-{method}_class-*_importance.nii.gz")):
        label = re.search(r"_class-([A-Za-z0-9]+)_importance", path.name).group(1)
        truth_path = truth.root / f"groundtruth_class-{label}_mask.nii.gz"
        if not truth_path.is_file():
            continue
        img = nb.load(path)
        truth_mask = mask_on_grid(truth_path, img)
        voxels = domain if domain is not None else np.ones(img.shape[:3], dtype=bool)
        values = np.abs(np.asarray(img.dataobj, dtype=float))[voxels]
        peak = values.max()
        selected = values >= threshold * peak if peak > 0 else np.zeros_like(values, bool)
        rows += _rate_rows(f"class_{label}_roi", method, selected,
                           truth_mask[voxels], n)
    return pd.DataFrame(rows, columns=COLUMNS)


def score_output(output_dir: str | os.PathLike, ground_truth: str | os.PathLike | GroundTruth,
                 methods=None, threshold: float = M.ROI_THRESHOLD) -> pd.DataFrame:
    """Score every attribution map of an xaibids ``OUTPUT_DIR`` against a simulated dataset.

    ``ground_truth`` is a :class:`GroundTruth` or a path for :meth:`GroundTruth.load`.
    ``methods`` limits the scoring to these attribution methods (default: all found).
    Returns the table of :func:`score_maps` for all methods, one after the other.
    """
    from xaibids.fileio import read_timeseries_tsv

    output_dir = Path(output_dir)
    truth = (ground_truth if isinstance(ground_truth, GroundTruth)
             else GroundTruth.load(ground_truth))
    found = find_maps(output_dir, methods)
    volumes = find_volume_maps(output_dir, methods)
    if not found and not volumes:
        what = f" of method(s) {', '.join(methods)}" if methods else ""
        raise XaibidsError(f"No attribution maps (sub-*/…_desc-<method>_attribution.tsv or "
                           f".nii.gz){what} in {output_dir}; run `xaibids … group` first.")
    dataset_relevant = truth.dataset_relevant()
    tables = []
    for method, paths in found.items():
        maps, subjects, masks, relevant, names = [], [], [], [], None
        n_masks = 0
        for path in paths:
            subject = path.name.split("_")[0]
            rel = truth.relevant_features(subject)
            if rel is None:
                LOGGER.warning("%s is not in %s; %s is not scored.", subject,
                               truth.root / "groundtruth.tsv", path.name)
                continue
            frame = read_timeseries_tsv(path)
            if names is None:
                names = [str(c) for c in frame.columns]
            elif [str(c) for c in frame.columns] != names:
                raise XaibidsError(f"{path} has other features than the first map of {method!r}.")
            data = frame.to_numpy()
            mask = truth.read_mask(path, names, len(data))
            n_masks += mask is not None
            maps.append(data)
            subjects.append(subject)
            masks.append(mask)
            relevant.append(rel)
        if not maps:
            raise XaibidsError(f"None of the {method!r} maps in {output_dir} belongs to a "
                               f"participant of {truth.root / 'groundtruth.tsv'}.")
        if 0 < n_masks < len(maps):
            LOGGER.warning("Only %d of %d %s maps have a ground-truth mask.", n_masks, len(maps),
                           method)
        imp_path = output_dir / "group" / f"desc-{method}_importance.tsv"
        importance = pd.read_csv(imp_path, sep="\t") if imp_path.is_file() else None
        tables.append(score_maps(
            maps, names, subjects, method, masks=masks, relevant=relevant,
            dataset_relevant=dataset_relevant, importance=importance, threshold=threshold))
    domain = None
    for method, paths in volumes.items():
        if method in found:
            continue
        if domain is None:
            import nibabel as nb

            domain = _volume_domain(output_dir, nb.load(paths[0]))
        imp_path = output_dir / "group" / f"desc-{method}_importance.tsv"
        importance = pd.read_csv(imp_path, sep="\t") if imp_path.is_file() else None
        tables.append(score_volume_maps(paths, truth, method, domain, importance, threshold))
        classes = score_class_maps(output_dir / "group", truth, method, domain, threshold,
                                   n=len(paths))
        if len(classes):
            tables.append(classes)
    table = pd.concat(tables, ignore_index=True)
    return table


def write_metrics(table: pd.DataFrame, output_dir: str | os.PathLike,
                  ground_truth_root: str | os.PathLike | None = None) -> Path:
    """Write ``OUTPUT_DIR/group/desc-validation_metrics.tsv`` and its JSON sidecar."""
    import json

    from xaibids.fileio import atomic_write_text

    path = Path(output_dir) / "group" / "desc-validation_metrics.tsv"
    atomic_write_text(path, table[COLUMNS].to_csv(sep="\t", index=False, na_rep="n/a",
                                                  float_format="%.6g"))
    sidecar = {
        "Description": "Attribution maps scored against the simulated ground truth "
                       "(xaibids-validate).",
        "GroundTruth": None if ground_truth_root is None else str(Path(ground_truth_root)),
        "metric": {"Description": "Metric name.", "Levels": METRIC_DESCRIPTIONS},
        "method": {"Description": "Attribution method (desc entity of the maps)."},
        "subject": {"Description": "Participant of a per-map value; n/a for dataset-level "
                                   "rows (means over subjects and group-level metrics)."},
        "value": {"Description": "The metric; on dataset-level rows of per-subject metrics, "
                                 "the mean over subjects."},
        "sd": {"Description": "Sample standard deviation over subjects (dataset-level rows of "
                              "per-subject metrics only)."},
        "n": {"Description": "Number of maps behind the value (subjects with an undefined "
                             "value, e.g. 0/0, are not counted)."},
    }
    atomic_write_text(path.with_suffix(".json"), json.dumps(sidecar, indent=2) + "\n")
    return path


_RATE_TEXT = {
    "precision": "precision tp/(tp+fp)", "recall": "recall tp/(tp+fn)",
    "f1": "F1 2tp/(2tp+fp+fn)", "accuracy": "accuracy (tp+tn)/n (Gotsopoulos et al. 2018 §3.2)",
    "fdr": "false discovery rate fp/(fp+tp) (Gotsopoulos et al. 2018 §3.2)",
    "for": "false omission rate fn/(fn+tn) (Gotsopoulos et al. 2018 §3.2)",
}
METRIC_DESCRIPTIONS = {
    "overlap": "Lewis et al. 2023 §2.6: share of the absolute map inside the ground-truth mask "
               "(higher is better; Table 1: boxes 0.33, VAR 0.56).",
    "weighted_jaccard": "Lewis et al. 2023 §2.6 / [7]: sum(min(M, A)) / sum(max(M, A)), A = min-max "
                        "rescaled |map| (higher is better; Table 1: boxes 0.22, VAR 0.10).",
    "euclidean_distance": "Lewis et al. 2023 §2.6 / [7]: ||M - A|| / ||M||, A = min-max rescaled |map| "
                          "(lower is better; Table 1: boxes 1.24, VAR 4.57).",
    **{_ROI_NAMES[r]: f"Strock et al. 2025: {_RATE_TEXT[r]} of the features whose |median over time| "
                      "score, max-normalized, is above 0.5, against the subject's relevant "
                      "features." for r in _RATES},
    **{f"group_roi_{r}": f"Strock et al. 2025: {_RATE_TEXT[r]} of the features whose ROI score averaged "
                         "over subjects, max-normalized, is above 0.5, against the dataset's "
                         "relevant features." for r in _RATES},
    **{f"importance_{r}": f"{_RATE_TEXT[r]} of the features marked selected in "
                          "group/desc-<method>_importance.tsv, against the dataset's relevant "
                          "features." for r in _RATES},
    "importance_r_precision": "Share of the dataset's relevant features among the k features "
                              "of highest importance_norm, k the number of relevant features "
                              "(threshold-free; 1 is perfect).",
    "importance_auc": "ROC AUC of importance_norm for telling relevant from irrelevant "
                      "features (threshold-free; 0.5 is chance, 1 perfect).",
}
