"""Atlas ranking of voxel-wise attribution maps (Kan et al. 2020, Results, Table 2).

Kan et al. 2020: "For each region of each brain atlas, we estimated fractions of voxels of this region
included into the mask [...]. We normalized these fractions, so the values for all regions would
sum up to 1. The top-5 scored regions of each atlas with the largest values are presented in
Table 2." The mask is the map thresholded at ``t`` ("t = 0.65 [...] for Grad CAM and Meaningful
Perturbations masks and t = 0.04 for Guided Backpropagation").

Here:

- a 4D map (x, y, z, time) is first reduced to 3D by summing over its last axis (the time-summed
  importance of Lewis et al. 2023 §2.7);
- the mask is ``map >= threshold`` — by default on the map divided by its maximum absolute
  value (``relative=True``), so ``threshold`` is a fraction of the peak; with ``relative=False``
  the threshold is in the map's own units (as for Kan et al. 2020's guided backpropagation);
- ``measure="region_fraction"`` (default, the seed's): per region, the fraction of its voxels in
  the mask, then normalized to sum to 1 over regions. ``measure="mask_fraction"``: the fraction
  of the mask's atlas-labelled voxels lying in each region (large regions weigh more);
- the atlas is resampled to the map's grid with nearest-neighbour interpolation when the grids
  differ (:func:`nilearn.image.resample_to_img`), so labels stay labels.
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nb
import numpy as np
import pandas as pd

from xaibids.grids import on_grid

#: Default relative threshold (Kan et al. 2020, Grad-CAM and Meaningful Perturbations masks).
REGION_THRESHOLD = 0.65


def _region_names(labels) -> pd.DataFrame:
    """``index``/``name`` table from a DataFrame, a dict ``index -> name`` or a TSV path."""
    if isinstance(labels, (str, Path)):
        path = Path(labels)
        if not path.is_file():
            raise ValueError(f"Atlas labels file {path} does not exist; give a TSV with columns "
                             "'index' and 'name'.")
        labels = pd.read_csv(path, sep="\t")
        source = f"Atlas labels file {path}"
    else:
        source = "Atlas labels"
    if isinstance(labels, dict):
        labels = pd.DataFrame({"index": list(labels), "name": list(labels.values())})
    if not isinstance(labels, pd.DataFrame) or not {"index", "name"} <= set(labels.columns):
        raise ValueError(f"{source} must have columns 'index' (the value in the atlas image) and "
                         "'name' (or be a dict index -> name).")
    table = labels[["index", "name"]].copy()
    try:
        table["index"] = table["index"].astype(int)
    except (TypeError, ValueError):
        raise ValueError(f"{source} has non-integer values in its 'index' column.") from None
    if table["index"].duplicated().any():
        raise ValueError(f"{source} lists some index twice; keep one row per region.")
    table["name"] = table["name"].astype(str)
    return table[table["index"] != 0].reset_index(drop=True)


def rank_regions(
    stat_map,
    atlas,
    labels,
    threshold: float = REGION_THRESHOLD,
    relative: bool = True,
    measure: str = "region_fraction",
    top: int | None = None,
) -> pd.DataFrame:
    """Rank atlas regions by the share of a thresholded map they hold (Kan et al. 2020, Table 2).

    Parameters
    ----------
    stat_map : nibabel image, path or ndarray
        3D map, or 4D with time last (summed over time). An array must already be on the
        atlas grid.
    atlas : nibabel image, path or ndarray
        3D integer labels image (0 is background). Resampled (nearest) to the map's grid when
        the two images differ in shape or affine.
    labels : pandas.DataFrame, dict or path
        Region names: columns ``index`` and ``name``, a dict ``index -> name``, or a TSV with
        those columns. Every non-zero value of the atlas needs a row; rows of regions absent from
        the (resampled) atlas get share 0.
    threshold : float, default=0.65
        Mask threshold, a fraction of the peak (``relative=True``) or in map units.
    relative : bool, default=True
        Divide the map by its maximum absolute value before thresholding.
    measure : {"region_fraction", "mask_fraction"}, default="region_fraction"
        Kan et al. 2020's fraction of each region in the mask, or the fraction of the mask in each
        region; either is normalized to sum to 1.
    top : int, optional
        Keep only the ``top`` best-ranked regions.

    Returns
    -------
    pandas.DataFrame
        Columns ``region`` (name), ``index`` (atlas value), ``share`` (sums to 1 over all
        regions; 0 everywhere if the mask misses every region), ``rank`` (1 = largest share, ties
        by atlas index), sorted by rank.
    """
    if measure not in ("region_fraction", "mask_fraction"):
        raise ValueError(f"measure must be 'region_fraction' or 'mask_fraction', got {measure!r}.")
    if top is not None and (int(top) != top or top < 1):
        raise ValueError(f"top must be a positive integer, got {top!r}.")
    names = _region_names(labels)
    data, labels_data = _on_same_grid(stat_map, atlas)
    if not np.isfinite(threshold):
        raise ValueError(f"threshold must be a finite number, got {threshold!r}.")
    data = np.nan_to_num(data, nan=0.0)
    if relative:
        peak = np.abs(data).max()
        if peak == 0:
            raise ValueError("rank_regions got a map that is zero everywhere; nothing to rank.")
        data = data / peak
    mask = data >= threshold
    atlas_values = labels_data.astype(int)
    unknown = sorted(set(np.unique(atlas_values).tolist()) - set(names["index"]) - {0})
    if unknown:
        raise ValueError(f"The atlas image has value(s) {unknown[:5]} without a name in its "
                         "labels; add rows for them to the labels table.")
    idx = names["index"].to_numpy()
    size_lookup = np.bincount(atlas_values.ravel(), minlength=idx.max() + 1)
    hit_lookup = np.bincount(atlas_values[mask].ravel(), minlength=idx.max() + 1)
    sizes, hits = size_lookup[idx].astype(float), hit_lookup[idx].astype(float)
    if measure == "region_fraction":
        raw = np.divide(hits, sizes, out=np.zeros_like(hits), where=sizes > 0)
    else:
        raw = hits
    total = raw.sum()
    share = raw / total if total > 0 else np.zeros_like(raw)
    table = pd.DataFrame({"region": names["name"], "index": idx, "share": share})
    table = table.sort_values(["share", "index"], ascending=[False, True], kind="stable")
    table["rank"] = np.arange(1, len(table) + 1)
    table = table.reset_index(drop=True)
    return table.head(top) if top is not None else table


def _on_same_grid(stat_map, atlas):
    """Map data (3D) and atlas label data on the map's grid."""
    map_img = _load(stat_map, "stat_map")
    atlas_img = _load(atlas, "atlas")
    if isinstance(map_img, np.ndarray) != isinstance(atlas_img, np.ndarray):
        raise ValueError("rank_regions needs both the map and the atlas as images (to compare "
                         "their grids) or both as arrays on the same grid.")
    if isinstance(map_img, np.ndarray):
        data, labels = map_img, atlas_img
        if data.ndim == 4:
            data = data.sum(axis=3)
        if data.shape != labels.shape:
            raise ValueError(f"The map (shape {data.shape}) and the atlas (shape {labels.shape}) "
                             "are arrays on different grids; pass NIfTI images to resample.")
    else:
        if len(map_img.shape) == 4:
            map_img = nb.Nifti1Image(np.asanyarray(map_img.dataobj, dtype=float).sum(axis=3),
                                     map_img.affine)
        if len(atlas_img.shape) != 3:
            raise ValueError(f"The atlas must be a 3D labels image, got shape {atlas_img.shape}.")
        atlas_img, _ = on_grid(atlas_img, map_img, "nearest")
        data = np.asanyarray(map_img.dataobj, dtype=float)
        labels = np.asanyarray(atlas_img.dataobj)
    if data.ndim != 3:
        raise ValueError(f"rank_regions needs a 3D or 4D map, got shape {data.shape}.")
    if labels.ndim != 3:
        raise ValueError(f"The atlas must be a 3D labels image, got shape {labels.shape}.")
    if not np.allclose(labels, np.round(labels)) or np.nanmin(labels) < 0:
        raise ValueError("The atlas must hold non-negative integer labels.")
    return data, np.round(labels)


def _load(obj, who):
    if isinstance(obj, (str, Path)):
        if not Path(obj).is_file():
            raise ValueError(f"The {who} file {obj} does not exist.")
        return nb.load(str(obj))
    if isinstance(obj, np.ndarray):
        return np.asarray(obj, dtype=float)
    if hasattr(obj, "affine") and hasattr(obj, "dataobj"):
        return obj
    raise ValueError(f"The {who} must be a NIfTI image, a path to one, or an array; got "
                     f"{type(obj).__name__}.")


def reference_regions(atlas, atlas_labels, reference, reference_labels) -> pd.DataFrame:
    """Name each region of an atlas after the region of a reference atlas that holds most of it.

    Parcellations such as CC200 number their regions; to say where an important parcel lies,
    its voxels vote: the reference region (e.g. Harvard-Oxford's) with the most of the parcel's
    voxels names it, and ``reference_share`` is the fraction of the parcel's voxels in that
    region (voxels outside every reference region count in the denominator, so a parcel
    mostly in white matter has a small share). The reference is resampled to the atlas grid
    with nearest-neighbour interpolation. Hand-written: a majority vote over voxels.

    Parameters
    ----------
    atlas, reference : NIfTI image or path
        3D label images.
    atlas_labels, reference_labels : DataFrame, dict or path
        ``index`` and ``name`` of each region (as for :func:`rank_regions`).

    Returns
    -------
    pandas.DataFrame
        One row per region of ``atlas_labels``: ``name``, ``reference_region`` (``n/a``, i.e.
        NaN, when none of its voxels lies in a reference region) and ``reference_share``.
    """
    regions = _region_names(atlas_labels)
    names = _region_names(reference_labels).set_index("index")["name"]
    atlas_img = _load(atlas, "atlas")
    if isinstance(atlas_img, np.ndarray):
        raise ValueError("reference_regions needs the atlas as a NIfTI image (its grid).")
    _, ref = _on_same_grid(nb.Nifti1Image(np.zeros(atlas_img.shape[:3]), atlas_img.affine),
                           reference)
    labels = np.round(np.asanyarray(atlas_img.dataobj)).astype(int)
    ref = ref.astype(int)
    rows = []
    for index, name in zip(regions["index"], regions["name"]):
        inside = ref[labels == index]
        voted = inside[inside > 0]
        if not inside.size or not voted.size:
            rows.append((name, np.nan, 0.0))
            continue
        values, counts = np.unique(voted, return_counts=True)
        best = int(np.argmax(counts))  # ties: the smaller label, np.unique's order
        rows.append((name, names.get(int(values[best]), str(values[best])),
                     float(counts[best] / inside.size)))
    return pd.DataFrame(rows, columns=["name", "reference_region", "reference_share"])


def write_region_ranking(table: pd.DataFrame, group_dir, method: str,
                         parameters=None) -> list[Path]:
    """Write ``desc-<method>_regions.tsv`` and its JSON sidecar under ``group_dir``.

    Parameters
    ----------
    table : pandas.DataFrame
        Output of :func:`rank_regions`.
    group_dir : str or Path
        Destination folder (created when missing).
    method : str
        Lowercase alphanumeric attribution key (``ig``, ``gradcam``, …).
    parameters : dict, optional
        Parameters to record in the sidecar, e.g. ``{"Threshold": 0.65, "Relative": True,
        "Measure": "region_fraction", "Atlas": "aal"}``.

    Returns
    -------
    list of Path
        The TSV and the JSON written.
    """
    from xaibids.fileio import write_table
    from xaibids.stats.group import check_method

    check_method(method)
    missing = {"region", "index", "share", "rank"} - set(table.columns)
    if missing:
        raise ValueError(f"write_region_ranking needs the columns of rank_regions; missing "
                         f"{sorted(missing)}.")
    sidecar = {
        "Description": (f"Atlas regions ranked by their share of the thresholded {method} "
                        "attribution map: per region the fraction of its voxels inside the mask "
                        "(or of the mask inside it), normalized to sum to 1 (Kan et al. 2020, Table 2)."),
        **(parameters or {}),
        "region": {"Description": "Region name from the atlas labels."},
        "index": {"Description": "Value of the region in the atlas image."},
        "share": {"Description": "Normalized share of the thresholded map; sums to 1 over all "
                                 "regions of the atlas."},
        "rank": {"Description": "Rank by share, 1 = largest (ties by atlas index)."},
    }
    return write_table(table[["region", "index", "share", "rank"]], Path(group_dir),
                       f"desc-{method}_regions", sidecar)
