"""Assemble per-run timeseries TSVs and ``participants.tsv`` into a classification dataset.

One sample per run file: the TSV's rows are time points, its columns features (XCP-D's
``*_timeseries.tsv``), or one 3D volume (``--features t1``). The class of a sample is its
subject's value in the ``--target`` column of ``participants.tsv``; the optional ``--cv-group``
column (e.g. site) keeps groups from spanning training and test sets in cross-validation. Single
trials (``--features trials``, :func:`assemble_trial_dataset`) are one sample per volume of a
run's trial maps, labelled from ``participants.tsv`` or from the events.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from xaibids.features.io import censored_share
from xaibids.fileio import read_timeseries_tsv

LOGGER = logging.getLogger("xaibids")

LENGTH_POLICIES = ("crop", "error")
#: Default largest share of a run's volumes that censoring (``--confounds scrubbing``) may have
#: removed for the run to be used (``--max-censored``): Parkes et al. 2018's stringent
#: exclusion criterion (more than 20 % of the volumes with FD > 0.2 mm, the threshold at which
#: nilearn's ``scrubbing`` strategy censors).
MAX_CENSORED = 0.2
_MISSING = {"", "n/a", "na", "nan", "none"}


@dataclass
class TimeseriesDataset:
    """Timeseries of all samples with their labels.

    Attributes
    ----------
    X : ndarray of shape (n_samples, n_timepoints, n_features), float32
        Raw timeseries. NaN (``n/a`` in the TSV) is kept here; the ensemble standardizes each
        feature with NaN-aware statistics of a fold's training samples and then replaces NaN by
        0, i.e. by the training mean of that feature.
    y : ndarray of shape (n_samples,), int64
        Class index of each sample.
    classes : list of str
        Class label of each index: the sorted distinct values of the target column.
    subjects : list of str
        Participant id of each sample (``"sub-01"``); a subject with several runs has several
        samples.
    sources : list of str
        Path of the TSV each sample came from.
    feature_names : list of str
        Column names of the TSVs.
    groups : ndarray of shape (n_samples,) or None
        Value of the ``--cv-group`` column for each sample, or None.
    grid : tuple of int or None
        Volumes (:func:`assemble_volume_dataset`): the image grid ``(X, Y, Z)``. Each sample is
        then one "time point" of ``X * Y * Z`` features, the voxels in C order, so the
        ensemble, its standardization and the attribution methods handle volumes like
        timecourses; None for timeseries.
    affine : ndarray of shape (4, 4) or None
        Volumes: the grid's voxel-to-world affine (to write maps in the template space).
    sample_index : ndarray of shape (n_samples,) or None
        Single trials (:func:`assemble_trial_dataset`): the volume of its source file each
        sample is; None when every source file is one sample.
    censored_out : dict of str to float
        Timeseries (:func:`assemble_dataset`): the runs left out because censoring had removed
        more than ``max_censored`` of their volumes, path → censored share.
    cropped_from : int or None
        Timeseries: the longest run's number of time points when runs of different lengths were
        cropped to the shortest (None: all runs had the same length).
    """

    X: np.ndarray
    y: np.ndarray
    classes: list[str]
    subjects: list[str]
    sources: list[str]
    feature_names: list[str]
    groups: np.ndarray | None = None
    grid: tuple | None = None
    affine: np.ndarray | None = None
    sample_index: np.ndarray | None = None
    censored_out: dict = field(default_factory=dict)
    cropped_from: int | None = None

    def __post_init__(self) -> None:
        self.X = np.asarray(self.X, dtype=np.float32)
        self.y = np.asarray(self.y, dtype=np.int64)
        if self.X.ndim != 3:
            raise ValueError(
                f"TimeseriesDataset.X must have shape (n_samples, n_timepoints, n_features), got {self.X.shape}."
            )
        n = self.X.shape[0]
        if self.y.shape != (n,):
            raise ValueError(f"TimeseriesDataset has {n} samples but y has shape {self.y.shape}.")
        for name in ("subjects", "sources"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"TimeseriesDataset has {n} samples but {len(getattr(self, name))} {name}.")
        if len(self.feature_names) != self.X.shape[2]:
            raise ValueError(
                f"TimeseriesDataset has {self.X.shape[2]} features but {len(self.feature_names)} feature names."
            )
        if n and (self.y.min() < 0 or self.y.max() >= len(self.classes)):
            raise ValueError(f"TimeseriesDataset labels must index the {len(self.classes)} classes.")
        if self.groups is not None:
            self.groups = np.asarray(self.groups)
            if self.groups.shape != (n,):
                raise ValueError(f"TimeseriesDataset has {n} samples but groups of shape {self.groups.shape}.")

        if self.grid is not None:
            self.grid = tuple(int(v) for v in self.grid)
            if self.X.shape[1] != 1 or int(np.prod(self.grid)) != self.X.shape[2]:
                raise ValueError(f"TimeseriesDataset of volumes on grid {self.grid} needs X of "
                                 f"shape (n, 1, {int(np.prod(self.grid))}), got {self.X.shape}.")

    @property
    def n_samples(self) -> int:
        """Number of samples (runs)."""
        return int(self.X.shape[0])


def _is_missing(value) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and np.isnan(value):
        return True
    return str(value).strip().lower() in _MISSING


def labelled_runs(runs, participants: pd.DataFrame, target: str, cv_group: str | None):
    """The ``(subject, path, label, group)`` of every run whose subject has a class (and a
    ``cv_group`` value), and the sorted classes; subjects left out are logged."""
    if not runs:
        raise ValueError("No timeseries files were given; run the participant level first or check the filters.")
    if not isinstance(participants, pd.DataFrame):
        raise TypeError("participants must be a pandas DataFrame (participants.tsv indexed by participant_id).")
    columns = [str(c) for c in participants.columns]
    for option, column in (("--target", target), ("--cv-group", cv_group)):
        if column is not None and column not in participants.columns:
            raise ValueError(
                f"Column {column!r} given to {option} is not in participants.tsv; "
                f"available columns: {', '.join(columns) or '(none)'}."
            )
    if participants.index.has_duplicates:
        dup = participants.index[participants.index.duplicated()][0]
        raise ValueError(f"participants.tsv lists {dup!r} more than once; keep one row per participant.")

    kept: list[tuple[str, str, str, object]] = []
    missing_target: set[str] = set()
    missing_group: set[str] = set()
    unknown: set[str] = set()
    for subject, path in runs:
        subject = str(subject)
        if subject not in participants.index:
            unknown.add(subject)
            continue
        label = participants.at[subject, target]
        if _is_missing(label):
            missing_target.add(subject)
            continue
        group = None
        if cv_group is not None:
            group = participants.at[subject, cv_group]
            if _is_missing(group):
                missing_group.add(subject)
                continue
            group = str(group).strip()
        kept.append((subject, str(path), str(label).strip(), group))
    if unknown:
        LOGGER.warning(
            "Leaving out %d subject(s) absent from participants.tsv: %s.",
            len(unknown), ", ".join(sorted(unknown)),
        )
    if missing_target:
        LOGGER.warning(
            "Leaving out %d subject(s) with no value in target column %r: %s.",
            len(missing_target), target, ", ".join(sorted(missing_target)),
        )
    if missing_group:
        LOGGER.warning(
            "Leaving out %d subject(s) with no value in --cv-group column %r: %s.",
            len(missing_group), cv_group, ", ".join(sorted(missing_group)),
        )
    if not kept:
        raise ValueError(
            f"No timeseries is left after removing subjects without a value in column {target!r} "
            "of participants.tsv; fill in that column or choose another --target."
        )
    classes = sorted({label for _, _, label, _ in kept})
    if len(classes) < 2:
        raise ValueError(
            f"Target column {target!r} has only one class ({classes[0]!r}) among the subjects with "
            "timeseries; classification needs at least two, so choose another --target or add subjects."
        )

    return kept, classes


def assemble_dataset(
    runs: list[tuple[str, str]],
    participants: pd.DataFrame,
    target: str,
    cv_group: str | None = None,
    length_policy: str = "crop",
    max_censored: float = MAX_CENSORED,
) -> TimeseriesDataset:
    """Build a :class:`TimeseriesDataset` from timeseries TSVs and ``participants.tsv``.

    Parameters
    ----------
    runs : list of (str, str)
        ``(participant_id, path)`` pairs, e.g. ``("sub-01", ".../sub-01_..._timeseries.tsv")``;
        one sample per pair.
    participants : pandas.DataFrame
        ``participants.tsv`` read with ``dtype=str``, indexed by ``participant_id``.
    target : str
        Column of ``participants`` holding the class of each subject.
    cv_group : str, optional
        Column whose values must not be split across training and test sets (e.g. ``site``).
    length_policy : {"crop", "error"}, default="crop"
        What to do when runs have different numbers of time points: ``crop`` keeps the first
        time points up to the shortest run (and logs it), ``error`` raises.
    max_censored : float, default=MAX_CENSORED
        Runs whose sidecar (``NumberOfVolumes``, ``NumberOfVolumesKept``) records that censoring
        removed more than this share of their volumes are left out, with a warning, before the
        others are cropped: otherwise one subject who moved much would crop every run to its
        few volumes. 1 keeps every run. Runs without these sidecar fields are kept.

    Returns
    -------
    TimeseriesDataset

    Notes
    -----
    Subjects whose target (or ``cv_group``) value is missing (empty or ``n/a``), or who are
    absent from ``participants.tsv``, are left out with a warning on the ``xaibids`` logger.
    All TSVs must hold the same set of feature columns (columns are reordered to the first
    file's order). NaN values are kept (see :attr:`TimeseriesDataset.X`).
    """
    if length_policy not in LENGTH_POLICIES:
        raise ValueError(
            f"length_policy must be one of {', '.join(LENGTH_POLICIES)}, got {length_policy!r}."
        )
    if not 0 <= max_censored <= 1:
        raise ValueError(f"max_censored must lie between 0 and 1, got {max_censored!r}.")
    kept, classes = labelled_runs(runs, participants, target, cv_group)
    kept, censored_out = _leave_out_censored(kept, max_censored)
    arrays, feature_names = _read_runs(kept)
    arrays, cropped_from = _equal_lengths(arrays, kept, length_policy)
    X = np.stack(arrays).astype(np.float32)
    with np.errstate(invalid="ignore"):
        constant = [name for j, name in enumerate(feature_names)
                    if not np.isfinite(X[:, :, j]).any() or np.nanmax(X[:, :, j]) == np.nanmin(X[:, :, j])]
    if constant:
        LOGGER.warning(
            "%d feature(s) are constant or n/a in every run (e.g. %s): they carry no information "
            "and get no attribution. All-zero regions usually lie outside the data; check the "
            "atlas and the brain masks (or raise --min-coverage to set them to n/a).",
            len(constant), ", ".join(constant[:3]),
        )
    if np.isnan(X).any():
        LOGGER.info(
            "%d value(s) are n/a; they are set to the training mean after standardization.",
            int(np.isnan(X).sum()),
        )
    return _labelled_dataset(kept, classes, X, feature_names, cv_group,
                             censored_out=censored_out, cropped_from=cropped_from)


def _read_runs(kept) -> tuple[list[np.ndarray], list[str]]:
    """The values of each run's TSV, columns in the first run's feature order, and that order."""
    arrays: list[np.ndarray] = []
    feature_names: list[str] | None = None
    first_path = None
    for _, path, _, _ in kept:
        frame = read_timeseries_tsv(path)
        if frame.shape[0] < 1 or frame.shape[1] < 1:
            raise ValueError(f"{path} holds no data (shape {frame.shape}); it needs a header and at least one row.")
        names = [str(c) for c in frame.columns]
        if len(set(names)) != len(names):
            raise ValueError(f"{path} has duplicated feature columns; each feature must appear once.")
        if feature_names is None:
            feature_names, first_path = names, path
        elif names != feature_names:
            if set(names) != set(feature_names):
                extra = sorted(set(names) - set(feature_names))[:5]
                lacking = sorted(set(feature_names) - set(names))[:5]
                raise ValueError(
                    f"{path} has different features than {first_path} (extra: {extra}, missing: "
                    f"{lacking}); extract all runs with the same atlas or components."
                )
            frame = frame[feature_names]
        values = frame.to_numpy(dtype=np.float32)
        if np.isinf(values).any():
            bad = [n for n, col in zip(feature_names, values.T) if np.isinf(col).any()][:5]
            raise ValueError(
                f"{path} holds infinite values (column(s) {', '.join(bad)}); write missing values "
                "as 'n/a' and recreate the file (e.g. rerun the participant level)."
            )
        arrays.append(values)
    return arrays, list(feature_names)


def _equal_lengths(arrays, kept, length_policy: str) -> tuple[list[np.ndarray], int | None]:
    """``arrays`` of one length by ``length_policy``, and the longest length when cropped."""
    lengths = np.array([a.shape[0] for a in arrays])
    cropped_from = None
    if lengths.min() != lengths.max():
        shortest = int(lengths.min())
        if length_policy == "error":
            longest_path = kept[int(lengths.argmax())][1]
            shortest_path = kept[int(lengths.argmin())][1]
            raise ValueError(
                f"Runs have different lengths ({shortest} time points in {shortest_path}, "
                f"{int(lengths.max())} in {longest_path}); set the length policy to 'crop' "
                "(length_policy='crop') to keep the first time points up to the shortest run."
            )
        LOGGER.warning(
            "Runs have %d to %d time points; cropping all to the first %d (shortest: %s).",
            shortest, int(lengths.max()), shortest, kept[int(lengths.argmin())][1],
        )
        arrays = [a[:shortest] for a in arrays]
        cropped_from = int(lengths.max())
    return arrays, cropped_from


def _leave_out_censored(kept, max_censored: float):
    """``kept`` without the runs censored beyond ``max_censored`` (logged), and those runs."""
    shares = [censored_share(path) for _, path, _, _ in kept]
    out = {path: share for (_, path, _, _), share in zip(kept, shares)
           if share is not None and share > max_censored}
    if not out:
        return kept, {}
    remaining = [run for run in kept if run[1] not in out]
    names = [Path(p).name for p in out][:5] + (["..."] if len(out) > 5 else [])
    if not remaining:
        raise ValueError(
            f"Censoring removed more than {max_censored:.0%} of the volumes of every run (e.g. "
            f"{next(iter(out))}); use a confound strategy without censoring (--confounds "
            f"simple) or allow more with --max-censored.")
    LOGGER.warning(
        "Leaving out %d run(s) whose censoring removed more than %.0f%% of the volumes "
        "(--max-censored): %s.", len(out), 100 * max_censored, ", ".join(names))
    return remaining, out


def output_timecourses(output_dir, participants_tsv, target: str,
                       cv_group: str | None = None) -> TimeseriesDataset:
    """:func:`assemble_dataset` of every ``sub-*/func/*_timeseries.tsv`` a participant level
    (or an ingest) wrote into ``output_dir``, labelled from ``participants_tsv`` (the demo and
    benchmarks)."""
    runs = [(path.name.split("_")[0], str(path))
            for path in sorted(Path(output_dir).glob("sub-*/func/*_timeseries.tsv"))]
    participants = pd.read_csv(participants_tsv, sep="\t", dtype=str).set_index("participant_id")
    return assemble_dataset(runs, participants, target, cv_group=cv_group)


def _labelled_dataset(kept, classes, X, feature_names, cv_group, **volume) -> TimeseriesDataset:
    """The :class:`TimeseriesDataset` of :func:`labelled_runs`' runs with their data ``X``."""
    index = {label: i for i, label in enumerate(classes)}
    return TimeseriesDataset(
        X=X,
        y=np.array([index[label] for _, _, label, _ in kept], dtype=np.int64),
        classes=classes,
        subjects=[s for s, _, _, _ in kept],
        sources=[os.fspath(p) for _, p, _, _ in kept],
        feature_names=feature_names,
        groups=np.array([g for _, _, _, g in kept], dtype=object) if cv_group is not None else None,
        **volume,
    )


def assemble_volume_dataset(
    runs: list[tuple[str, str]],
    participants: pd.DataFrame,
    target: str,
    cv_group: str | None = None,
) -> TimeseriesDataset:
    """Build a :class:`TimeseriesDataset` of 3D volumes (``--features t1``).

    Parameters
    ----------
    runs : list of (str, str)
        ``(participant_id, path)`` pairs of NIfTI volumes on one grid (the participant level's
        ``*_res-<r>_desc-preproc_T1w.nii.gz``); one sample per pair.
    participants, target, cv_group
        As :func:`assemble_dataset`.

    Returns
    -------
    TimeseriesDataset
        ``X`` of shape ``(n_samples, 1, X * Y * Z)``, with ``grid`` and ``affine`` set and the
        features named ``x-y-z`` by voxel index.
    """
    import nibabel as nb

    kept, classes = labelled_runs(runs, participants, target, cv_group)
    first = nb.load(kept[0][1])
    grid, affine = tuple(first.shape), first.affine
    if len(grid) != 3:
        raise ValueError(f"{kept[0][1]} is not a 3D volume (shape {grid}); give the participant "
                         "level's preprocessed T1w images.")
    X = np.empty((len(kept), 1, int(np.prod(grid))), dtype=np.float32)
    for i, (_, path, _, _) in enumerate(kept):
        img = nb.load(path)
        if tuple(img.shape) != grid or not np.allclose(img.affine, affine, atol=1e-4):
            raise ValueError(
                f"{path} is on another grid (shape {tuple(img.shape)}) than {kept[0][1]} "
                f"(shape {grid}); make all images with the same --t1-resolution (rerun the "
                "participant level with --overwrite)."
            )
        values = np.asarray(img.dataobj, dtype=np.float32)
        if not np.isfinite(values).all():
            raise ValueError(f"{path} holds NaN or infinite values; recreate it (rerun the "
                             "participant level with --overwrite).")
        X[i, 0] = values.ravel()
    names = [f"{x}-{y}-{z}" for x, y, z in np.ndindex(*grid)]
    return _labelled_dataset(kept, classes, X, names, cv_group, grid=grid,
                             affine=np.asarray(affine, dtype=float))


def trial_events_path(path) -> str:
    """The events TSV written beside a run's trial maps (one row per volume)."""
    from xaibids.features.trials import TRIALS_SUFFIX

    name, ending = os.fspath(path), f"_{TRIALS_SUFFIX}.nii.gz"
    if name.endswith(ending):
        return name[: -len(".nii.gz")] + ".tsv"
    raise ValueError(f"{path} is not a trial maps file (*{ending}).")


def assemble_trial_dataset(
    runs: list[tuple[str, str]],
    participants: pd.DataFrame,
    target: str,
    cv_group: str | None = None,
    mask: np.ndarray | None = None,
) -> TimeseriesDataset:
    """Build a :class:`TimeseriesDataset` of single-trial maps (``--features trials``, Gotsopoulos et al. 2018).

    Every volume of every run's ``*_trials.nii.gz`` is one sample. Its class is the
    subject's value in the ``target`` column of ``participants.tsv`` when that column exists,
    else the trial's value in the ``target`` column of the events TSV beside the image (e.g.
    ``trial_type``: Gotsopoulos et al. 2018 classifies the categories of trials within subjects). Trials
    without a class are left out (logged). The samples of a subject share its participant id,
    so the folds keep a subject's trials together (Gotsopoulos et al. 2018's leave-one-subject-out is
    ``--n-folds`` = the number of subjects). The labels are read first, so that ``X`` is
    allocated once and each image is copied into it directly.

    Parameters
    ----------
    runs : list of (str, str)
        ``(participant_id, path)`` of each run's trial maps, all on one grid.
    participants, target, cv_group
        As :func:`assemble_dataset`.
    mask : ndarray of shape grid, optional
        Voxels outside are set to 0 (the group brain mask).
    """
    import nibabel as nb

    if not runs:
        raise ValueError("No trial maps were given; run the participant level first or check "
                         "the filters.")
    columns = [str(c) for c in participants.columns]
    per_trial = target not in columns
    if cv_group and cv_group not in columns:
        raise ValueError(f"--cv-group {cv_group!r} is not a column of participants.tsv; its "
                         f"columns are {', '.join(columns)}.")
    kept_runs, unknown, n_unlabelled = [], [], 0  # (subject, path, volumes kept, labels, group)
    for subject, path in runs:
        events = pd.read_csv(trial_events_path(path), sep="\t", na_values=["n/a"],
                             keep_default_na=False)
        if per_trial and target not in events.columns:
            raise ValueError(
                f"--target {target!r} is neither a column of participants.tsv (its columns: "
                f"{', '.join(columns)}) nor of {trial_events_path(path)} (its columns: "
                f"{', '.join(map(str, events.columns))}).")
        if (not per_trial or cv_group) and subject not in participants.index:
            unknown.append(subject)
            continue
        values = (list(events[target]) if per_trial
                  else [participants.at[subject, target]] * len(events))
        group = participants.at[subject, cv_group] if cv_group else None
        volumes = [k for k, v in enumerate(values)
                   if not (_is_missing(v) or (cv_group and _is_missing(group)))]
        n_unlabelled += len(values) - len(volumes)
        kept_runs.append((subject, path, len(events), volumes,
                          [str(values[k]) for k in volumes], group))
    if unknown:
        LOGGER.warning("%d subject(s) are not in participants.tsv and were left out: %s.",
                       len(unknown), ", ".join(sorted(set(unknown))))
    if n_unlabelled:
        LOGGER.warning("%d trial(s) have no --target%s value and were left out.", n_unlabelled,
                       " or --cv-group" if cv_group else "")
    labels = [label for run in kept_runs for label in run[4]]
    classes = sorted(set(labels))
    if len(classes) < 2:
        raise ValueError(f"--target {target!r} has {len(classes)} class(es) among the trials; "
                         "at least 2 are needed.")
    first = nb.load(runs[0][1])
    grid, affine = tuple(first.shape[:3]), first.affine
    X = np.empty((len(labels), 1, int(np.prod(grid))), dtype=np.float32)
    subjects, sources, groups, index = [], [], [], []
    for subject, path, n_rows, volumes, _, group in kept_runs:
        img = nb.load(path)
        if tuple(img.shape[:3]) != grid or not np.allclose(img.affine, affine, atol=1e-4):
            raise ValueError(f"{path} is on another grid (shape {tuple(img.shape[:3])}) than "
                             f"{runs[0][1]} (shape {grid}); give BOLD runs of one space and "
                             "resolution (--bids-filter-file, or -d with one space).")
        n_volumes = img.shape[3] if img.ndim == 4 else 1
        if n_volumes != n_rows:
            raise ValueError(f"{path} has {n_volumes} volumes but {trial_events_path(path)} "
                             f"{n_rows} rows; rerun the participant level with --overwrite.")
        data = np.asarray(img.dataobj, dtype=np.float32).reshape(grid + (-1,))
        if not np.isfinite(data).all():
            raise ValueError(f"{path} holds NaN or infinite values; rerun the participant level "
                             "with --overwrite.")
        start = len(index)
        # voxels in C order, as the features of volumes (rows of the transposed 2D view)
        X[start:start + len(volumes), 0] = data.reshape(-1, data.shape[3])[:, volumes].T
        subjects += [subject] * len(volumes)
        sources += [os.fspath(path)] * len(volumes)
        groups += [group] * len(volumes)
        index += volumes
    if mask is not None:
        X[:, 0, ~np.asarray(mask, dtype=bool).ravel()] = 0.0
    code = {c: i for i, c in enumerate(classes)}
    return TimeseriesDataset(
        X=X, y=np.array([code[v] for v in labels]), classes=classes, subjects=subjects,
        sources=sources, feature_names=[f"{x}-{y}-{z}" for x, y, z in np.ndindex(*grid)],
        groups=np.array(groups, dtype=object) if cv_group else None, grid=grid,
        affine=np.asarray(affine, dtype=float), sample_index=np.array(index))
