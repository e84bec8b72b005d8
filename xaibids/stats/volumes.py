"""Group statistics of voxel-wise attribution maps (``--features t1`` and ``trials``, Kan et al. 2020).

Voxel maps have no time axis, so the co-saliency and sFNC of timecourses (Lewis et al. 2023 §2.8) do not
apply. What is computed instead:

- **region importance**: each subject's stabilized map averaged within every atlas region (the
  atlas resampled onto the map grid with nearest-neighbour interpolation; a mean, not a sum,
  so that regions do not rank by their size, as Kan et al. 2020's ranking divides by it), then the per-feature
  importance, class means and Cohen's d with its bootstrap interval of Lewis et al. 2023 §2.7
  (:func:`xaibids.stats.importance.group_importance`) with the regions as features;
- **group map**: the mean of the subjects' stabilized maps (each subject once), written as a
  NIfTI image in the template space;
- **region ranking** of the group map: Kan et al. 2020's share of the thresholded map per region
  (Results, Table 2; :func:`xaibids.stats.regions.rank_regions`);
- **class maps**: the group map of each class's samples, Gotsopoulos et al. 2018's category importance maps
  (:func:`class_mean_maps`).

On a grid in no template space (single trials of raw BOLD) only the group and class maps are
written (:func:`write_group_mean_map`). Where classes vary within subjects (single trials), a
subject's samples of one class are one unit (:func:`xaibids.stats._common.statistical_units`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import nibabel as nb
import numpy as np
import pandas as pd

from xaibids.stats._common import attributed_samples, subject_index
from xaibids.stats.importance import group_importance
from xaibids.stats.regions import REGION_THRESHOLD, rank_regions


@dataclass
class VolumeStatistics:
    """Group statistics of one method's voxel maps.

    Attributes
    ----------
    importance : pandas.DataFrame
        Per atlas region (column ``feature``): the columns of
        :func:`~xaibids.stats.importance.group_importance`.
    mean_map : ndarray of shape grid
        Mean stabilized map over subjects (NaN-free; 0 outside the brain).
    ranking : pandas.DataFrame
        :func:`~xaibids.stats.regions.rank_regions` of ``mean_map``.
    parameters : dict
        What was used (threshold, atlas, numbers of subjects), for the sidecars.
    """

    importance: pd.DataFrame
    mean_map: np.ndarray
    ranking: pd.DataFrame
    parameters: dict


def region_means(maps: np.ndarray, labels: np.ndarray, indices) -> np.ndarray:
    """Each sample's map averaged within each region: shape ``(n_samples, 1, n_regions)``.

    ``maps`` is ``(n_samples, 1, n_voxels)`` (NaN rows stay NaN), ``labels`` the atlas value
    of each voxel (``n_voxels``), ``indices`` the atlas values of the regions in order.
    """
    maps = np.asarray(maps, dtype=float)
    labels = np.asarray(labels).ravel()
    if maps.ndim != 3 or maps.shape[1] != 1 or maps.shape[2] != labels.size:
        raise ValueError(f"region_means needs maps of shape (n, 1, {labels.size}), got {maps.shape}.")
    out = np.empty((maps.shape[0], 1, len(indices)))
    for j, index in enumerate(indices):
        out[:, 0, j] = maps[:, 0, labels == index].mean(axis=1)
    return out


def compute_volume_statistics(maps, y, classes, grid, atlas_labels: np.ndarray,
                              regions: pd.DataFrame, subjects=None, n_boot: int = 1000,
                              ci_level: float = 0.95, random_state=0,
                              threshold: float = REGION_THRESHOLD, selection=None,
                              withheld: str | None = None,
                              selection_importance=None) -> VolumeStatistics:
    """Region importance, group map and region ranking of one method's voxel maps.

    Parameters
    ----------
    maps : ndarray of shape (n_samples, 1, X * Y * Z)
        Stabilized, sum-normalized maps (all-NaN rows: samples not attributed).
    y, classes, subjects, n_boot, ci_level, random_state
        As :func:`xaibids.stats.compute_group_statistics`.
    grid : tuple of int
        ``(X, Y, Z)``.
    atlas_labels : ndarray of shape grid
        Atlas values on the map grid (0: background).
    regions : pandas.DataFrame
        ``index`` and ``name`` of the atlas regions.
    threshold : float, default=0.65
        Relative threshold of the region ranking (Kan et al. 2020).
    selection, withheld
        The rule of the regions' ``selected`` column and why nothing may be selected, as
        :func:`xaibids.stats.compute_group_statistics`.
    selection_importance : ndarray of shape (n_samples, X * Y * Z), optional
        Per-sample voxel importance the rule tests (averaged within each region first).
    """
    grid = tuple(int(v) for v in grid)
    atlas_labels = np.asarray(atlas_labels).astype(int)
    if atlas_labels.shape != grid:
        raise ValueError(f"compute_volume_statistics needs the atlas on the map grid {grid}, "
                         f"got {atlas_labels.shape}.")
    regions = regions[regions["index"] != 0]
    present = regions[regions["index"].isin(np.unique(atlas_labels))]
    if present.empty:
        raise ValueError("No atlas region lies on the map grid; the atlas and the images are in "
                         "different spaces.")
    maps = np.asarray(maps, dtype=float)
    attributed = attributed_samples(maps, "compute_volume_statistics")
    means = region_means(maps, atlas_labels.ravel(), present["index"].tolist())
    names = present["name"].astype(str).tolist()
    rule_means = None
    if selection_importance is not None:
        rule_means = region_means(np.asarray(selection_importance, dtype=float)[:, None, :],
                                  atlas_labels.ravel(), present["index"].tolist())[:, 0, :]
    importance = group_importance(means, y, classes, names, subjects=subjects, n_boot=n_boot,
                                  ci_level=ci_level, random_state=random_state,
                                  selection=selection, withheld=withheld,
                                  selection_importance=rule_means)
    mean_map, n_subjects = _subject_mean(maps, attributed, y, subjects)
    mean_map = mean_map.reshape(grid)
    ranking = rank_regions(mean_map, atlas_labels, present[["index", "name"]],
                           threshold=threshold)
    parameters = {"Threshold": float(threshold), "Relative": True, "Measure": "region_fraction",
                  "NSamplesAttributed": int(attributed.sum()),
                  "NSubjects": n_subjects, "Selection": importance.attrs["selection"]}
    return VolumeStatistics(importance=importance, mean_map=mean_map, ranking=ranking,
                            parameters=parameters)


def _subject_mean(maps, attributed, y, subjects) -> tuple[np.ndarray, int]:
    # each subject once: average its samples first, then over subjects
    index = subject_index(np.asarray(y)[attributed],
                          None if subjects is None else np.asarray(subjects)[attributed],
                          who="volume group map")
    per_subject = index.aggregate(maps[attributed, 0])
    return np.nan_to_num(per_subject.mean(axis=0)), int(per_subject.shape[0])


def subject_mean_map(maps, y, subjects=None) -> np.ndarray:
    """The group map: each subject's samples averaged first, then the subjects (flat voxels).

    ``maps`` is ``(n_samples, 1, n_voxels)``; all-NaN rows (samples not attributed) are left
    out.
    """
    maps = np.asarray(maps, dtype=float)
    return _subject_mean(maps, attributed_samples(maps, "subject_mean_map"), y, subjects)[0]


def class_mean_maps(maps, y, n_classes: int, units=None) -> np.ndarray:
    """Gotsopoulos et al. 2018's category importance maps: per class, the mean stabilized map of its samples.

    Each unit's samples of the class are averaged first (``units`` as for
    :func:`subject_mean_map`), then the units; a class without attributed samples gets a map of
    zeros. Returns ``(n_classes, n_voxels)``. Gotsopoulos et al. 2018 (§2.8) derives one importance map per
    category from the classifier; with maps explaining each sample's true class, the maps of a
    class's samples are that category's evidence.
    """
    maps = np.asarray(maps, dtype=float)
    y = np.asarray(y, int)
    attributed = attributed_samples(maps, "class_mean_maps")
    out = np.zeros((n_classes, maps.shape[2]))
    for c in range(n_classes):
        rows = attributed & (y == c)
        if rows.any():
            out[c] = _subject_mean(maps, rows, y, units)[0]
    return out


def write_class_maps(class_maps: np.ndarray, classes, group_dir, method: str, affine, grid,
                     space: str | None, mask=None) -> list[Path]:
    """``[space-<tpl>_]desc-<method>_class-<c>_importance.nii.gz`` (+ ``.json``) of every class
    (:func:`class_mean_maps`), on the maps' grid, 0 outside ``mask``."""
    import json

    from xaibids.fileio import atomic_path, atomic_write_text
    from xaibids.stats._common import class_entities
    from xaibids.stats.group import check_method

    check_method(method)
    written = []
    for values, label, entity in zip(class_maps, classes, class_entities(classes)):
        stem = f"{'space-' + space + '_' if space else ''}desc-{method}_class-{entity}_importance"
        path = Path(group_dir) / f"{stem}.nii.gz"
        with atomic_path(path, suffix=".nii.gz") as tmp:
            volume_image(values.reshape(tuple(grid)), affine, mask, template=bool(space)).to_filename(tmp)
        atomic_write_text(path.with_name(f"{stem}.json"), json.dumps({
            "Description": f"Mean stabilized {method} map of the samples of class {label!r} "
                           "(each subject's samples of the class averaged first), the "
                           "category importance map of Gotsopoulos et al. 2018; 0 outside the brain mask.",
            "Class": str(label)}, indent=2) + "\n")
        written.append(path)
    return written


def write_group_mean_map(mean_map: np.ndarray, group_dir, method: str, affine,
                         mask=None) -> Path:
    """``desc-<method>_importance.nii.gz``: the group map of voxel maps on a grid in no
    template space (no atlas regions; :func:`write_volume_statistics` otherwise)."""
    import json

    from xaibids.fileio import atomic_path, atomic_write_text
    from xaibids.stats.group import check_method

    check_method(method)
    path = Path(group_dir) / f"desc-{method}_importance.nii.gz"
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path, suffix=".nii.gz") as tmp:
        volume_image(mean_map, affine, mask, template=False).to_filename(tmp)
    atomic_write_text(path.with_name(path.name.replace(".nii.gz", ".json")), json.dumps({
        "Description": f"Mean stabilized {method} map: each subject's maps averaged, then the "
                       "subjects; 0 outside the brain mask. The grid is in no template space, "
                       "so no atlas region statistics were computed."}, indent=2) + "\n")
    return path


def volume_image(values: np.ndarray, affine: np.ndarray, mask: np.ndarray | None = None,
                 template: bool = True) -> nb.Nifti1Image:
    """A float32 image of ``values`` (grid-shaped) with the grid's true affine (qform/sform
    code 4, a template space; 1, scanner, when ``template`` is False), 0 outside ``mask``."""
    data = np.asarray(values, dtype=np.float32)
    if mask is not None:
        data = np.where(np.asarray(mask, dtype=bool), data, 0).astype(np.float32)
    img = nb.Nifti1Image(data, np.asarray(affine, dtype=float))
    img.header.set_xyzt_units("mm")
    img.header.set_qform(affine, code=4 if template else 1)
    img.header.set_sform(affine, code=4 if template else 1)
    return img


def write_volume_statistics(stats: VolumeStatistics, group_dir, method: str, affine, space: str,
                            mask=None, atlas: str = "") -> list[Path]:
    """Write ``desc-<method>_importance.tsv`` (regions), ``desc-<method>_regions.tsv`` and the
    group map ``space-<space>_desc-<method>_importance.nii.gz`` under ``group_dir``."""
    from xaibids.fileio import atomic_path, write_table
    from xaibids.stats.group import check_method
    from xaibids.stats.regions import write_region_ranking

    check_method(method)
    group_dir = Path(group_dir)
    group_dir.mkdir(parents=True, exist_ok=True)
    parameters = {k: v for k, v in stats.parameters.items() if k != "Selection"}
    sidecar = {
        "Description": (f"Importance of each {atlas or 'atlas'} region: every subject's "
                        f"stabilized {method} voxel map averaged within the region, then class "
                        "means and Cohen's d (Lewis et al. 2023 §2.7) with the regions as features."),
        "Atlas": atlas, **parameters, **stats.parameters["Selection"],
    }
    written = write_table(stats.importance, group_dir, f"desc-{method}_importance", sidecar)
    written += write_region_ranking(stats.ranking, group_dir, method,
                                    {**parameters, "Atlas": atlas})
    path = group_dir / f"space-{space}_desc-{method}_importance.nii.gz"
    with atomic_path(path, suffix=".nii.gz") as tmp:
        volume_image(stats.mean_map, affine, mask).to_filename(tmp)
    written.append(path)
    return written
