"""Read the ground truth of a dataset made by ``xaibids-simulate``.

What a simulated dataset provides (see its README and :mod:`xaibids.simulate.write`):

``groundtruth.tsv`` (every kind)
    One row per participant: ``participant_id``, ``group``, ``onset``, ``duration`` and
    ``relevant_features`` (``;``-separated feature names).
``*_desc-groundtruth_mask.tsv`` (``boxes``, ``var``, ``rnn-ei``)
    Per subject and run, the element-wise truth: same rows (time) and columns (features) as the
    timeseries, 1 where the element carries class information.
``groundtruth_features.tsv`` (``rnn-ei``, ``bold``, ``t1-atrophy``)
    The dataset-level truth: ``feature`` and ``relevant`` (1 = affected region).
``*_desc-groundtruth_mask.nii.gz`` (``t1-atrophy``, ``voxel-patterns``)
    Per subject, the voxel truth in template space (1 = voxel of an affected region).

``GROUND_TRUTH_DIR`` may be the folder holding ``groundtruth.tsv`` (e.g.
``derivatives/timeseries`` or ``derivatives/fmriprep``) or the simulated raw dataset above it.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from xaibids.errors import XaibidsError

#: Entities that differ between a map and its mask while naming the same run.
_IGNORED_ENTITIES = ("desc", "stat", "space", "res", "den")
_ENTITY = re.compile(r"([A-Za-z0-9]+)-([A-Za-z0-9+]+)")


def run_key(filename: str) -> frozenset:
    """The entities of a BIDS file name that identify its run (``sub``, ``ses``, ``task``,
    ``run``, ``atlas``, …), without ``desc``/``stat``/``space`` and the suffix."""
    stem = Path(filename).name.split(".")[0]
    pairs = [m.groups() for part in stem.split("_") if (m := _ENTITY.fullmatch(part))]
    return frozenset((k, v) for k, v in pairs if k not in _IGNORED_ENTITIES)


def find_groundtruth_root(path: str | os.PathLike) -> Path:
    """The folder of ``groundtruth.tsv``: ``path`` itself or one of its ``derivatives/*``."""
    path = Path(path)
    if not path.is_dir():
        raise XaibidsError(f"GROUND_TRUTH_DIR {path} is not a folder.")
    if (path / "groundtruth.tsv").is_file():
        return path
    found = sorted(path.glob("derivatives/*/groundtruth.tsv"))
    if len(found) == 1:
        return found[0].parent
    if not found:
        raise XaibidsError(
            f"No groundtruth.tsv in {path} or in its derivatives/*/ folders. Pass a dataset made "
            "by xaibids-simulate (or the derivatives folder inside it that holds groundtruth.tsv)."
        )
    raise XaibidsError(
        f"Several ground truths under {path} ({', '.join(str(p.parent) for p in found)}); pass "
        "the one that matches the analysed data."
    )


@dataclass
class GroundTruth:
    """The ground truth of one simulated dataset.

    Attributes
    ----------
    root : Path
        Folder holding ``groundtruth.tsv``.
    participants : pandas.DataFrame
        ``groundtruth.tsv``, indexed by ``participant_id``.
    features : pandas.DataFrame or None
        ``groundtruth_features.tsv`` (``feature``, ``relevant``, …) when the dataset has one.
    masks : dict
        :func:`run_key` of each ``*_desc-groundtruth_mask.tsv`` → its path.
    volume_masks : dict
        :func:`run_key` of each ``*_desc-groundtruth_mask.nii.gz`` → its path.
    """

    root: Path
    participants: pd.DataFrame
    features: pd.DataFrame | None = None
    masks: dict = field(default_factory=dict)
    volume_masks: dict = field(default_factory=dict)
    _volume_cache: dict = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def load(cls, path: str | os.PathLike) -> GroundTruth:
        """Read the ground truth at ``path`` (see :func:`find_groundtruth_root`)."""
        root = find_groundtruth_root(path)
        table = pd.read_csv(root / "groundtruth.tsv", sep="\t", dtype=str,
                            keep_default_na=False)
        missing = {"participant_id", "relevant_features"} - set(table.columns)
        if missing:
            raise XaibidsError(f"{root / 'groundtruth.tsv'} lacks column(s) {sorted(missing)}.")
        features = None
        if (root / "groundtruth_features.tsv").is_file():
            features = pd.read_csv(root / "groundtruth_features.tsv", sep="\t")
            if not {"feature", "relevant"} <= set(features.columns):
                raise XaibidsError(f"{root / 'groundtruth_features.tsv'} needs the columns "
                                   "'feature' and 'relevant'.")
            features["feature"] = features["feature"].astype(str)
        masks = {run_key(p.name): p
                 for p in sorted(root.glob("sub-*/**/*_desc-groundtruth_mask.tsv"))}
        volume_masks = {run_key(p.name): p
                        for p in sorted(root.glob("sub-*/**/*_desc-groundtruth_mask.nii.gz"))}
        return cls(root=root, participants=table.set_index("participant_id"), features=features,
                   masks=masks, volume_masks=volume_masks)

    def relevant_features(self, participant_id: str) -> set[str] | None:
        """The subject's relevant features (``groundtruth.tsv``), or None if not listed."""
        if participant_id not in self.participants.index:
            return None
        text = str(self.participants.loc[participant_id, "relevant_features"])
        return {name for name in text.split(";") if name and name.lower() != "n/a"}

    def dataset_relevant(self) -> set[str] | None:
        """Features relevant for the whole dataset: ``groundtruth_features.tsv`` when present,
        else the subjects' common set when all subjects share one; None when it differs between
        subjects (``boxes``: the relevant half of the features depends on the class)."""
        if self.features is not None:
            return set(self.features.loc[self.features["relevant"].astype(int) == 1, "feature"])
        sets = {frozenset(self.relevant_features(p)) for p in self.participants.index}
        return set(next(iter(sets))) if len(sets) == 1 else None

    def mask_path(self, map_path: str | os.PathLike) -> Path | None:
        """The ground-truth mask of the run a map was computed from, or None."""
        return self.masks.get(run_key(Path(map_path).name))

    def read_mask(self, map_path: str | os.PathLike, feature_names: list[str],
                  n_timepoints: int) -> np.ndarray | None:
        """The element-wise truth aligned with a map: columns in the map's feature order, the
        first ``n_timepoints`` rows (the group level crops runs of different lengths to the
        shortest). None when the dataset has no mask for that run."""
        path = self.mask_path(map_path)
        if path is None:
            return None
        mask = pd.read_csv(path, sep="\t")
        absent = [f for f in feature_names if f not in mask.columns]
        if absent:
            raise XaibidsError(f"The ground-truth mask {path} lacks the map's feature(s) "
                               f"{absent[:5]}: is it the dataset that was analysed?")
        if len(mask) < n_timepoints:
            raise XaibidsError(f"The ground-truth mask {path} has {len(mask)} rows, fewer than "
                               f"the {n_timepoints} time points of its map.")
        return mask[list(feature_names)].to_numpy()[:n_timepoints].astype(bool)

    def read_volume_mask(self, map_path: str | os.PathLike, map_img) -> np.ndarray | None:
        """The voxel truth of a map's subject on the map's grid (nearest-neighbour resampling
        of ``*_desc-groundtruth_mask.nii.gz``), as booleans; None when the dataset has none."""
        path = self.volume_masks.get(run_key(Path(map_path).name))
        if path is None:
            return None
        # simulators write the same mask for many subjects (t1-atrophy: one for all): resample
        # each distinct mask once per grid
        key = (hashlib.sha1(Path(path).read_bytes()).hexdigest(), tuple(map_img.shape[:3]),
               np.round(np.asarray(map_img.affine, dtype=float), 4).tobytes())
        if key not in self._volume_cache:
            self._volume_cache[key] = mask_on_grid(path, map_img)
        return self._volume_cache[key].copy()


def mask_on_grid(path: str | os.PathLike, map_img) -> np.ndarray:
    """A truth mask image on ``map_img``'s 3D grid (nilearn's nearest-neighbour resampling where
    the grids differ), as booleans."""
    import nibabel as nb

    from xaibids.grids import on_grid

    mask, _ = on_grid(nb.load(path), map_img, "nearest")
    return np.asarray(mask.dataobj) > 0
