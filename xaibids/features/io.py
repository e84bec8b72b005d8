"""Reading and writing timeseries TSVs in XCP-D's format.

One column per feature (region or component), one row per volume, a header with the feature
names, and ``n/a`` where a feature has no value (e.g. a region outside the brain mask).
"""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

import nibabel as nb
import numpy as np
import pandas as pd

from xaibids.outputs.derivatives import atomic_path


def write_timeseries_tsv(data: np.ndarray, feature_names: list[str], path: str | os.PathLike) -> Path:
    """Write a ``(n_volumes, n_features)`` array as a BIDS timeseries TSV (NaN → ``n/a``)."""
    data = np.asarray(data, dtype=float)
    if data.ndim != 2 or data.shape[1] != len(feature_names):
        raise ValueError(
            f"timeseries of shape {data.shape} does not match {len(feature_names)} feature names"
        )
    path = Path(path)
    frame = pd.DataFrame(data, columns=list(feature_names))
    # temporary file + rename: a failed write (disk full) leaves no half-written TSV behind
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, sep="\t", index=False, na_rep="n/a", float_format="%.8g")
    return path


def read_timeseries_tsv(path: str | os.PathLike) -> pd.DataFrame:
    """Read a timeseries TSV into a float DataFrame (``n/a`` → NaN), naming the file on error."""
    path = Path(path)
    try:
        frame = pd.read_csv(path, sep="\t", na_values=["n/a"], keep_default_na=False)
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as err:
        raise ValueError(
            f"{path} is not a readable timeseries TSV ({err}). Expected a tab-separated table "
            "with one header row of feature names, one row per volume and 'n/a' for missing values."
        ) from None
    try:
        return frame.astype(float)
    except ValueError:
        bad = [c for c in frame.columns if not pd.api.types.is_numeric_dtype(frame[c])]
        raise ValueError(
            f"{path} has non-numeric values in column(s) {bad[:5]}; timeseries TSVs must hold "
            "numbers or 'n/a'."
        ) from None


def save_nifti(img: nb.Nifti1Image, path: str | os.PathLike) -> Path:
    """Save a NIfTI image; ``.nii.gz`` files get a time-stamp-free gzip header, so the same
    image gives identical bytes (reproducible outputs)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.name.endswith(".nii.gz"):
        path.write_bytes(gzip.compress(img.to_bytes(), compresslevel=6, mtime=0))
    else:
        nb.save(img, path)
    return path


#: Sidecar entries of xaibids' timeseries that record the cleaning, and the option of each.
CLEANING_SIDECAR_KEYS = {
    "ConfoundStrategy": "confounds",
    "Detrend": "detrend",
    "Standardize": "standardize",
    "HighPass": "high_pass",
    "LowPass": "low_pass",
    "CoverageThreshold": "min_coverage",
}


def recorded_cleaning(paths) -> dict | None:
    """How a set of timeseries TSVs were cleaned, read from their JSON sidecars.

    Returns the options (``confounds``, ``detrend``, ``standardize``, ``high_pass``,
    ``low_pass``, ``min_coverage``; a filter that was off is 0.0) shared by every file, or None
    when no sidecar records them (timecourses made by another tool, e.g. XCP-D).

    Raises
    ------
    ValueError
        When the files were cleaned differently (naming two of them and the fix), or only some
        of them record it: one analysis must not mix timecourses cleaned in different ways.
    """
    paths = [Path(p) for p in paths]
    found = {}
    for path in paths:
        sidecar = path.with_name(path.name.split(".")[0] + ".json")
        try:
            meta = json.loads(sidecar.read_text()) if sidecar.is_file() else {}
        except (OSError, ValueError):
            meta = {}
        if "ConfoundStrategy" in meta:
            found[path] = {option: meta.get(key) for key, option in CLEANING_SIDECAR_KEYS.items()}
            for option in ("high_pass", "low_pass"):
                found[path][option] = float(found[path][option] or 0.0)
    if not found:
        return None
    if len(found) < len(paths):
        missing = next(p for p in paths if p not in found)
        raise ValueError(
            f"Some timeseries record how they were cleaned and others do not (e.g. {missing} has "
            "no 'ConfoundStrategy' in its sidecar); analyse timecourses of one origin together "
            "(--participant-label, -d).")
    first, *others = found.items()
    for path, settings in others:
        differ = {k: (first[1][k], v) for k, v in settings.items() if first[1][k] != v}
        if differ:
            what = ", ".join(f"{k} {a!r} in {first[0].name} but {b!r} in {path.name}"
                             for k, (a, b) in differ.items())
            raise ValueError(
                f"The timeseries were cleaned with different settings ({what}); one analysis "
                "must use one cleaning. Run the participant level again for every subject with "
                "the settings you want (with --overwrite), then the group level.")
    return dict(first[1])
