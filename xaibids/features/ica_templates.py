"""ICA templates: spatial maps of components with their names and, optionally, their domains
(networks), as a 4D NIfTI with a TSV beside it (``index``, ``name``, optional ``domain`` or
``group``), e.g. the Neuromark_fMRI_1.0 template of Du et al., 2020, NeuroImage Clin 28:102375;
and the names xaibids gives components without a template. Used by template (spatially
constrained) mode and by group ICA's outputs (:mod:`xaibids.features.ica`).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import nibabel as nb
import numpy as np
import pandas as pd

from xaibids.features.timeseries import ExtractionError

LOGGER = logging.getLogger("xaibids")


class IcaError(ExtractionError):
    """ICA inputs or options that cannot be used; the message names the file and the fix."""


def default_component_names(n_components: int) -> list[str]:
    """``IC01``, ``IC02``, … (zero-padded to at least two digits)."""
    if n_components < 1:
        raise IcaError(f"n_components must be at least 1, got {n_components}.")
    width = max(2, len(str(n_components)))
    return [f"IC{i:0{width}d}" for i in range(1, n_components + 1)]


@dataclass
class IcaTemplate:
    """Spatial maps of a template, with one row of ``labels`` per volume, in volume order.

    ``labels`` has columns ``index`` (1-based volume number after sorting), ``name`` and
    ``domain`` (``None`` where not given).
    """

    img: nb.Nifti1Image
    labels: pd.DataFrame
    path: str
    labels_path: str | None = None
    space: str | None = None

    @property
    def names(self) -> list[str]:
        return self.labels["name"].tolist()

    @property
    def n_components(self) -> int:
        return int(self.img.shape[3])


def template_sidecar(path: str | Path, extension: str) -> Path:
    """The file beside a NIfTI with the same stem: ``maps.nii.gz`` → ``maps.tsv``."""
    path = Path(path)
    stem = path.name[: -len(".nii.gz")] if path.name.endswith(".nii.gz") else path.stem
    return path.with_name(stem + extension)


def _read_labels(tsv: Path, n_components: int) -> pd.DataFrame:
    try:
        table = pd.read_csv(tsv, sep="\t", dtype=str, na_values=["n/a", ""], keep_default_na=False)
    except Exception as err:  # pandas raises several kinds
        raise IcaError(f"{tsv} is not a readable TSV ({err}).") from None
    if "name" not in table.columns:
        raise IcaError(
            f"{tsv} has columns {list(table.columns)}; it needs 'name' (and 'index', the volume "
            "of each component in the 4D template, 1-based), optionally 'domain'."
        )
    if len(table) != n_components:
        raise IcaError(
            f"{tsv} has {len(table)} row(s) but the template beside it has {n_components} "
            "volume(s); give one row per volume (component)."
        )
    if "index" in table.columns:
        try:
            index = table["index"].astype(int).to_numpy()
        except (TypeError, ValueError):
            raise IcaError(
                f"{tsv}: the 'index' column must hold integers (volume numbers)."
            ) from None
        for base in (1, 0):
            if sorted(index.tolist()) == list(range(base, base + n_components)):
                break
        else:
            raise IcaError(
                f"{tsv}: 'index' must number the {n_components} volumes 1..{n_components} "
                f"(or 0..{n_components - 1}) once each; found {sorted(index.tolist())[:10]}…"
            )
        order = np.argsort(index - base)
        table = table.iloc[order].reset_index(drop=True)
    names = table["name"]
    if names.isna().any() or (names.str.strip() == "").any():
        raise IcaError(f"{tsv}: every component needs a non-empty 'name'.")
    names = names.str.strip()
    duplicated = sorted(set(names[names.duplicated()]))
    if duplicated:
        raise IcaError(f"{tsv}: component names must be unique; repeated: {duplicated[:5]}.")
    bad = [n for n in names if any(c in n for c in "\t\n\r")]
    if bad:
        raise IcaError(f"{tsv}: component names cannot hold tabs or line breaks: {bad[:3]}.")
    domain_col = next((c for c in ("domain", "group") if c in table.columns), None)
    domains = (table[domain_col].str.strip() if domain_col
               else pd.Series([None] * n_components, dtype=object))
    return pd.DataFrame({"index": np.arange(1, n_components + 1), "name": names.tolist(),
                         "domain": [None if pd.isna(d) else str(d) for d in domains]})


def load_ica_template(path: str | Path, labels: str | Path | None = None) -> IcaTemplate:
    """Read a template of spatial maps and its component names.

    Parameters
    ----------
    path
        4D NIfTI, one spatial map per volume (e.g. Neuromark's 53 components).
    labels
        TSV of component names; default: the TSV beside ``path`` with the same stem
        (``maps.nii.gz`` → ``maps.tsv``) when it exists, else names ``IC01``, ``IC02``, …
        Columns: ``name`` (required), ``index`` (volume number, 1-based or 0-based; rows are
        put in volume order), ``domain`` or ``group`` (optional, e.g. Neuromark's seven
        domains). A JSON beside the NIfTI may give the template ``Space``.
    """
    path = Path(path)
    if not path.is_file():
        raise IcaError(f"The ICA template {path} does not exist; give a 4D NIfTI of spatial maps.")
    try:
        img = nb.load(path)
        data = np.asarray(img.dataobj, dtype=np.float32)
    except Exception as err:
        raise IcaError(f"Could not read the ICA template {path}: {err}.") from None
    if data.ndim == 5 and data.shape[3] == 1:  # some tools write maps as (x, y, z, 1, k)
        data = data[:, :, :, 0, :]
    if data.ndim != 4:
        raise IcaError(
            f"The ICA template {path} has shape {data.shape}; it must be 4D, one spatial map per "
            "volume (a single 3D map: add a fourth axis, e.g. nilearn.image.concat_imgs([img]))."
        )
    if not np.isfinite(data).all():
        raise IcaError(f"The ICA template {path} holds NaN or infinite values; set them to 0.")
    empty = [i + 1 for i in range(data.shape[3]) if not np.any(data[..., i])]
    if empty:
        raise IcaError(f"The ICA template {path} has all-zero volume(s) {empty[:10]}; remove them.")
    img = nb.Nifti1Image(data, img.affine)
    labels_path = Path(labels) if labels else template_sidecar(path, ".tsv")
    if labels and not labels_path.is_file():
        raise IcaError(f"The component table {labels_path} does not exist.")
    if labels_path.is_file():
        table = _read_labels(labels_path, data.shape[3])
    else:
        labels_path = None
        table = pd.DataFrame({"index": np.arange(1, data.shape[3] + 1),
                              "name": default_component_names(data.shape[3]),
                              "domain": [None] * data.shape[3]})
    space = None
    sidecar = template_sidecar(path, ".json")
    if sidecar.is_file():
        try:
            space = json.loads(sidecar.read_text()).get("Space")
        except (json.JSONDecodeError, AttributeError):
            LOGGER.warning("%s is not a JSON object; its template space is ignored.", sidecar)
    return IcaTemplate(img=img, labels=table, path=str(path),
                       labels_path=str(labels_path) if labels_path else None, space=space)


def _labels_table(labels) -> pd.DataFrame:
    if isinstance(labels, IcaTemplate):
        return labels.labels
    if isinstance(labels, (str, Path)):
        table = pd.read_csv(labels, sep="\t", dtype=str, na_values=["n/a", ""],
                            keep_default_na=False)
        if "domain" not in table.columns and "group" in table.columns:
            table = table.rename(columns={"group": "domain"})
        return table
    return labels


def component_domains(labels) -> dict[str, str]:
    """``{component name: domain}`` for the components that have a domain.

    ``labels`` is an :class:`IcaTemplate`, a components TSV (``name`` and ``domain`` or
    ``group`` columns, as written by :func:`write_component_maps` or beside a template) or such
    a DataFrame. Components without a domain are left out (empty dict: no domains given).
    """
    table = _labels_table(labels)
    if "domain" not in table.columns:
        return {}
    return {str(n): str(d) for n, d in zip(table["name"], table["domain"])
            if d is not None and not pd.isna(d) and str(d).strip()}
