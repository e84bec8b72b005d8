"""Reading and writing timeseries TSVs in XCP-D's format.

One column per feature (region or component), one row per volume, a header with the feature
names, and ``n/a`` where a feature has no value (e.g. a region outside the brain mask).
"""

from __future__ import annotations

import gzip
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
