"""Files written whole or not at all, and the file formats every layer reads: the bottom layer.

Atomic writes (a temporary file in the same folder, then ``os.replace``): a failed write (disk
full, a crash) leaves the old file, or none, never half of one. Plain types for JSON sidecars
(:func:`jsonable`) and BIDS tables with their sidecars (:func:`write_table`). Timeseries TSVs
in XCP-D's format (one column per feature, one row per volume, a header with the feature names,
``n/a`` where a feature has no value) and reproducible NIfTI files.

This module imports nothing of xaibids, so that every layer may import it
(``tests/test_architecture.py``). Hand-written: the standard library's ``os.replace`` and
``tempfile`` do the work; no maintained package wraps them for paths that other writers
(nibabel, pandas) fill.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import math
import os
import tempfile
from collections.abc import Callable
from pathlib import Path, PurePath

import nibabel as nb
import numpy as np
import pandas as pd


@contextlib.contextmanager
def atomic_path(path: str | Path, suffix: str = ".tmp"):
    """Yield a temporary path beside ``path``; on success it replaces ``path`` (mode 0644).

    What is written to the temporary path reaches ``path`` whole or not at all: a failed write
    (disk full, a crash) leaves the old file, or none, and removes the temporary one. ``suffix``
    keeps writers that choose a format by extension working (``.nii.gz``).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except OSError as err:
        Path(tmp).unlink(missing_ok=True)
        if err.filename in (None, tmp, str(tmp)):
            # name the file the user asked for (a failed write() names no file at all), not the
            # temporary one that no longer exists
            raise OSError(err.errno, err.strerror or str(err), str(path)) from err
        raise
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` through a temporary file in the same folder."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def atomic_write_bytes(path: str | Path, write: Callable) -> Path:
    """Call ``write(handle)`` on a binary file that replaces ``path`` only once it is written
    and synced to disk (``os.fsync``): checkpoints and datasets that later steps read back."""
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        write(handle)
        handle.flush()
        os.fsync(handle.fileno())
    return Path(path)


def jsonable(obj, finite: bool = False):
    """``obj`` in the plain Python types :func:`json.dumps` writes: numpy scalars and arrays,
    tuples and sets as lists, paths as strings, through dicts and lists.

    ``finite``: NaN and infinities become ``None`` (``null``: JSON has no NaN). Other types are
    returned as they are, so that ``json.dumps`` still refuses what it cannot write.
    """
    if isinstance(obj, dict):
        return {key: jsonable(value, finite) for key, value in obj.items()}
    if isinstance(obj, (list, tuple, set)):
        return [jsonable(value, finite) for value in obj]
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist(), finite)
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, PurePath):
        return str(obj)
    if finite and isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def write_table(table: pd.DataFrame, folder: str | os.PathLike, stem: str,
                sidecar: dict) -> list[Path]:
    """Write ``<stem>.tsv`` (tab-separated, ``n/a``, no index) and its sidecar ``<stem>.json``
    (:func:`jsonable` with non-finite numbers as ``null``), each atomically."""
    folder = Path(folder)
    tsv = atomic_write_text(folder / f"{stem}.tsv",
                            table.to_csv(sep="\t", index=False, na_rep="n/a"))
    text = json.dumps(jsonable(sidecar, finite=True), indent=2)
    return [tsv, atomic_write_text(folder / f"{stem}.json", text + "\n")]


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
    """Save a NIfTI image atomically; ``.nii.gz`` files get a time-stamp-free gzip header, so
    the same image gives identical bytes (reproducible outputs)."""
    path = Path(path)
    gzipped = path.name.endswith(".nii.gz")
    # the temporary file keeps the extension, from which nibabel chooses the format
    with atomic_path(path, suffix=".nii.gz" if gzipped else path.suffix) as tmp:
        if gzipped:
            tmp.write_bytes(gzip.compress(img.to_bytes(), compresslevel=6, mtime=0))
        else:
            nb.save(img, tmp)
    return path
