"""Checks of the inputs that run before anything is written.

Each check raises :class:`~xaibids.errors.XaibidsError` with one message naming the file and the
fix, so that a bad input stops the run before OUTPUT_DIR is created (see ``docs/errors.md``).
They read headers, sidecars and small tables only, never whole images.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
import os
from pathlib import Path

import numpy as np
import pandas as pd

from xaibids.errors import XaibidsError

LOGGER = logging.getLogger("xaibids")

#: A numeric ``--target`` column with more distinct values than this is taken for a continuous
#: variable (age, a score) rather than classes.
MAX_NUMERIC_CLASSES = 10
_MISSING = {"", "n/a", "na", "nan", "none"}


def check_writable_dir(path: str | Path, option: str) -> None:
    """``path`` (existing or to be created) must be a writable folder; nothing is created.

    The nearest existing ancestor must be a folder where we may create entries.
    """
    path = Path(path)
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise XaibidsError(
            f"The {option} {path} cannot be created: {existing} is a file, not a folder. "
            "Choose another location."
        )
    if not os.access(existing, os.W_OK | os.X_OK):
        where = "" if existing == path else f" (its parent {existing} is not writable)"
        raise XaibidsError(
            f"The {option} {path} is not writable{where}. Choose a folder you can write to, or "
            "fix its permissions (e.g. chmod u+w)."
        )


def _stored_bytes(path: Path, img) -> tuple[int, int] | None:
    """(bytes the header promises, bytes the file holds) when they disagree, else None.

    An uncompressed ``.nii`` is compared by its size. A ``.nii.gz`` is first compared through
    its gzip trailer (the uncompressed size modulo 2**32, read from the last 4 bytes: no
    decompression); only when that disagrees (a cut file, or a rare multi-member gzip) is the
    file decompressed to count its bytes. Hand-written: nibabel reads the data lazily and
    notices a cut only when a voxel past the cut is read.
    """
    import gzip
    import zlib

    header = img.header
    expected = int(header.get_data_offset()) + int(np.prod(img.shape, dtype=np.int64)) * \
        header.get_data_dtype().itemsize
    if path.name.endswith(".gz"):
        with open(path, "rb") as fh:
            fh.seek(-4, os.SEEK_END)
            trailer = int.from_bytes(fh.read(4), "little")
        if trailer == expected % 2**32:
            return None
        held = 0
        try:
            with gzip.open(path, "rb") as fh:
                for block in iter(lambda: fh.read(2**24), b""):
                    held += len(block)
        except (EOFError, OSError, zlib.error):
            pass  # the stream ends early: ``held`` is what could be read
    else:
        held = path.stat().st_size
    return (expected, held) if held < expected else None


def check_image(path: str | Path, what: str, ndim: int, min_volumes: int = 1) -> None:
    """Check a NIfTI input without reading its voxels: not empty, header readable, ``ndim``
    dimensions, and as many data bytes as the header promises (:func:`_stored_bytes`)."""
    import nibabel as nb

    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as err:
        raise XaibidsError(f"Cannot read the {what} {path}: {err.strerror}.") from None
    if size == 0:
        raise XaibidsError(
            f"The {what} {path} is an empty file (0 bytes), e.g. from an interrupted copy or "
            "download. Copy it again or rerun fMRIPrep for this subject."
        )
    try:
        img = nb.load(str(path))
        shape = img.shape
    except Exception as err:  # nibabel raises ImageFileError, EOFError, OSError, ...
        raise XaibidsError(
            f"The {what} {path} is not a readable NIfTI image ({err}); it may be truncated or "
            "not an image. Copy it again or rerun fMRIPrep for this subject."
        ) from None
    if ndim == 4 and (len(shape) != 4 or shape[3] < min_volumes):
        raise XaibidsError(
            f"The {what} {path} has shape {shape}; a 4D BOLD series with at least {min_volumes} "
            "volumes is needed. Check that the file is the preprocessed BOLD series "
            "(*_desc-preproc_bold.nii.gz), or leave the run out with --bids-filter-file."
        )
    if ndim == 3 and len(shape) not in (3,) and not (len(shape) == 4 and shape[3] == 1):
        raise XaibidsError(
            f"The {what} {path} has shape {shape}; a 3D image is needed. Use the brain mask "
            "fMRIPrep wrote for this run (*_desc-brain_mask.nii.gz)."
        )
    cut = _stored_bytes(path, img)
    if cut is not None:
        raise XaibidsError(
            f"The {what} {path} is truncated: its header promises {cut[0]} bytes of header and "
            f"data for shape {shape}, but the file holds {cut[1]}. It was probably cut during a "
            "copy or download; copy it again or rerun fMRIPrep for this subject."
        )


def bold_tr(run) -> float | None:
    """TR of a :class:`~xaibids.inputs.layout.BoldRun` (sidecar first, then header), seconds."""
    tr = (run.metadata or {}).get("RepetitionTime")
    if tr is None:
        import nibabel as nb

        header = nb.load(run.bold).header
        zooms = header.get_zooms()
        if len(zooms) > 3 and zooms[3] > 0:
            tr = float(zooms[3]) / (1000.0 if header.get_xyzt_units()[1] == "msec" else 1.0)
    try:
        return float(tr) if tr is not None else None
    except (TypeError, ValueError):
        raise XaibidsError(
            f"The sidecar of {run.bold} has RepetitionTime {tr!r}; it must be a number of seconds."
        ) from None


def check_repetition_times(subjects) -> None:
    """All BOLD runs of a group analysis must share one TR (samples of one model)."""
    trs: dict[float, str] = {}
    for data in subjects:
        for run in data.bold_runs:
            tr = bold_tr(run)
            if tr is not None:
                trs.setdefault(round(tr, 4), run.bold)
    if len(trs) > 1:
        listing = "; ".join(f"TR {tr:g} s in {Path(p).name}" for tr, p in sorted(trs.items()))
        raise XaibidsError(
            f"The selected BOLD runs have different repetition times ({listing}); one model "
            "cannot compare timecourses sampled at different rates. Select runs of one TR with "
            "--task-id or --bids-filter-file (e.g. {\"bold\": {\"acquisition\": \"fast\"}})."
        )


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or \
        str(value).strip().lower() in _MISSING


def looks_continuous(values: list[str]) -> bool:
    """Numeric values with more distinct values than classes usually have (age, scores)."""
    try:
        numbers = [float(v) for v in values]
    except ValueError:
        return False
    distinct = set(numbers)
    fractional = any(not float(n).is_integer() for n in distinct)
    return len(distinct) > MAX_NUMERIC_CLASSES or (fractional and len(distinct) > len(numbers) / 2)


def check_target(participants: pd.DataFrame, path: Path, target: str, cv_group: str | None,
                 subjects: list[str], n_folds: int) -> None:
    """``--target`` must give categorical classes with enough subjects for the folds.

    ``subjects`` are the selected participants with data (labels without ``sub-``).
    """
    for option, column in (("--target", target), ("--cv-group", cv_group)):
        if column and column not in participants.columns:
            raise XaibidsError(
                f"{option} {column!r} is not a column of {path}; its columns are "
                f"{', '.join(map(str, participants.columns)) or '(none)'}. Choose one of them or "
                "add the column."
            )
    if participants.index.has_duplicates:
        dup = participants.index[participants.index.duplicated()][0]
        raise XaibidsError(f"{path} lists {dup!r} more than once; keep one row per participant.")
    ids = [f"sub-{s}" for s in subjects]
    known = [i for i in ids if i in participants.index]
    labels = {i: str(participants.at[i, target]).strip() for i in known
              if not _missing(participants.at[i, target])}
    if cv_group:
        labels = {i: v for i, v in labels.items() if not _missing(participants.at[i, cv_group])}
    if not labels:
        raise XaibidsError(
            f"None of the selected subjects ({', '.join(ids[:5])}{' ...' if len(ids) > 5 else ''}) "
            f"has a value in column {target!r} of {path}; fill in that column (one class per "
            "subject) or choose another --target."
        )
    values = list(labels.values())
    if looks_continuous(values):
        raise XaibidsError(
            f"Column {target!r} of {path} looks continuous ({len(set(values))} distinct numeric "
            f"values, e.g. {', '.join(sorted(set(values))[:3])}); --target needs classes. Add a "
            "column of categories (e.g. 'low'/'high' from a threshold) and pass it with --target."
        )
    counts_of = Counter(values)
    classes, counts = sorted(counts_of), [counts_of[c] for c in sorted(counts_of)]
    if len(classes) < 2:
        raise XaibidsError(
            f"Column {target!r} of {path} has only one class ({classes[0]!r}) among the "
            f"{len(values)} selected subject(s) with data; classification needs at least two. "
            "Choose another --target or select subjects of both classes."
        )
    if cv_group:
        n_groups = len({str(participants.at[i, cv_group]).strip() for i in labels})
        if n_groups < n_folds:
            raise XaibidsError(
                f"Column {cv_group!r} (--cv-group) of {path} has {n_groups} distinct value(s) "
                f"among the selected subjects, fewer than the {n_folds} folds; lower --n-folds "
                f"to at most {n_groups} or use another --cv-group."
            )
        return
    small = [(c, int(n)) for c, n in zip(classes, counts) if n < n_folds]
    if small:
        detail = ", ".join(f"{c!r}: {n}" for c, n in small)
        raise XaibidsError(
            f"Column {target!r} of {path} has fewer subjects per class than the {n_folds} folds "
            f"({detail}); lower --n-folds to at most {min(n for _, n in small)} or add subjects "
            "of that class."
        )


def check_trial_target(participants: pd.DataFrame, path: Path, target: str,
                       cv_group: str | None, subjects, n_folds: int) -> None:
    """``--features trials``: ``--target`` is a ``participants.tsv`` column (checked as by
    :func:`check_target`) or a column of every run's events with categorical values; the folds
    keep a subject's trials together, so at least ``n_folds`` subjects are needed.

    ``subjects`` are :class:`~xaibids.inputs.layout.SubjectData` with their runs' events.
    """
    if target in participants.columns:
        check_target(participants, path, target, cv_group, [s.subject for s in subjects],
                     n_folds)
        return
    if cv_group and cv_group not in participants.columns:
        raise XaibidsError(
            f"--cv-group {cv_group!r} is not a column of {path}; its columns are "
            f"{', '.join(map(str, participants.columns)) or '(none)'}. Choose one of them or "
            "add the column.")
    values = []
    for run in (r for s in subjects for r in s.bold_runs):
        events = pd.read_csv(run.events, sep="\t", dtype=str, keep_default_na=False)
        if target not in events.columns:
            raise XaibidsError(
                f"--target {target!r} is neither a column of {path} (its columns are "
                f"{', '.join(map(str, participants.columns)) or '(none)'}) nor of {run.events} "
                f"(its columns are {', '.join(map(str, events.columns))}). Choose one of them, "
                "e.g. --target trial_type.")
        values += [str(v).strip() for v in events[target] if not _missing(v)]
    if looks_continuous(values):
        raise XaibidsError(
            f"The events' column {target!r} looks continuous ({len(set(values))} distinct "
            f"numeric values); --target needs classes, e.g. --target trial_type.")
    if len(set(values)) < 2:
        raise XaibidsError(
            f"The events' column {target!r} has {len(set(values))} class(es) among the selected "
            "runs; classification needs at least two. Choose another --target.")
    if cv_group:
        ids = [f"sub-{s.subject}" for s in subjects]
        groups = {str(participants.at[i, cv_group]).strip() for i in ids
                  if i in participants.index and not _missing(participants.at[i, cv_group])}
        if len(groups) < n_folds:
            raise XaibidsError(
                f"Column {cv_group!r} (--cv-group) of {path} has {len(groups)} distinct "
                f"value(s) among the selected subjects, fewer than the {n_folds} folds; lower "
                f"--n-folds to at most {len(groups)} or use another --cv-group.")
        return
    if len(subjects) < n_folds:
        raise XaibidsError(
            f"The folds keep each subject's trials together, and {len(subjects)} subject(s) "
            f"are selected for {n_folds} folds; lower --n-folds to at most {len(subjects)} "
            "(the number of subjects is leave-one-subject-out, as in Gotsopoulos et al. 2018).")


def check_timeseries_files(paths: list[str]) -> dict[str, int]:
    """Timeseries TSVs given as input: readable, numeric, no infinite values.

    Returns the number of rows (time points) of each file.
    """
    from xaibids.fileio import read_timeseries_tsv

    lengths = {}
    for path in paths:
        try:
            frame = read_timeseries_tsv(path)
        except ValueError as err:
            raise XaibidsError(str(err)) from None
        values = frame.to_numpy(dtype=float)
        if frame.shape[0] < 1 or frame.shape[1] < 1:
            raise XaibidsError(f"{path} holds no data (shape {frame.shape}); it needs a header "
                               "row of feature names and one row per volume.")
        if np.isinf(values).any():
            bad = [str(c) for c, col in zip(frame.columns, values.T) if np.isinf(col).any()]
            raise XaibidsError(
                f"{path} holds infinite values (column(s) {', '.join(bad[:5])}); write missing "
                "values as 'n/a' and recreate the file (e.g. rerun the extraction)."
            )
        lengths[path] = frame.shape[0]
    return lengths


def check_lengths(lengths: dict[str, int]) -> None:
    """``--run-length error``: refuse runs of different lengths before anything is written."""
    if len(set(lengths.values())) > 1:
        short = min(lengths, key=lengths.get)
        long = max(lengths, key=lengths.get)
        raise XaibidsError(
            f"Runs have different lengths ({lengths[short]} time points in {short}, "
            f"{lengths[long]} in {long}) and --run-length is 'error'. Select runs of one length "
            "(--task-id, --bids-filter-file), or use --run-length crop to keep the first time "
            "points up to the shortest run."
        )


def read_participants(bids_dir: Path) -> pd.DataFrame:
    """``participants.tsv`` as strings indexed by ``participant_id`` (``n/a`` → missing)."""
    path = bids_dir / "participants.tsv"
    if not path.exists():
        raise XaibidsError(
            f"{path} does not exist; the group level reads the class labels (--target) from it. "
            "Add it with a participant_id column and one column per variable."
        )
    try:
        table = pd.read_csv(path, sep="\t", dtype=str, na_values=["n/a"], keep_default_na=False)
    except Exception as err:  # pandas raises several kinds
        raise XaibidsError(f"{path} is not a readable TSV: {err}.") from None
    if "participant_id" not in table.columns:
        raise XaibidsError(f"{path} has no 'participant_id' column; BIDS requires it first.")
    return table.set_index("participant_id")


def check_group_inputs(config, subjects) -> None:
    """Everything the group level can check before OUTPUT_DIR is created."""
    ex, lc = config.execution, config.learning
    bids_dir = Path(ex.bids_dir)
    participants = read_participants(bids_dir)
    if config.workflow.features == "trials":
        check_trial_target(participants, bids_dir / "participants.tsv", lc.target,
                           lc.cv_group or None, subjects, lc.n_folds)
    else:
        check_target(participants, bids_dir / "participants.tsv", lc.target,
                     lc.cv_group or None, [s.subject for s in subjects], lc.n_folds)
    check_repetition_times(subjects)
    lengths = check_timeseries_files([p for s in subjects for p in s.timeseries])
    if lc.length_policy == "error":
        import nibabel as nb

        for data in subjects:
            if not data.timeseries:
                lengths.update({r.bold: nb.load(r.bold).shape[3] for r in data.bold_runs})
        check_lengths(lengths)
