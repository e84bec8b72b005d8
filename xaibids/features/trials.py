"""Trial-average activation maps: one volume per event of a BOLD run (Gotsopoulos et al. 2018 §2.3).

Gotsopoulos et al. 2018 classifies single trials, not subjects: "Average activation maps were used as input to
the classifier", the temporal average of the voxel time courses over an interval of each trial
(7 TRs around the end of each movie clip in its dataset 1, 5 TRs from stimulus onset in dataset
2), after the time course of every voxel was "normalized to zero mean and unit variance"
(§2.3). Here the run is first cleaned with nilearn's ``NiftiMasker`` -- confound regression,
detrending, standardization and band-pass in one ``signal.clean`` step, the same options as the
ROI timecourses -- and then every row of the run's ``events.tsv`` gives one map: the mean of the
volumes acquired inside ``[onset, onset + duration)`` (a volume belongs to the window when the
middle of its acquisition does; an event shorter than a volume takes the volume acquired at its
onset). Events that cover no kept volume (outside the run, or all censored by ``scrubbing``)
are dropped and counted. The averaging is hand-written (nilearn has no trial averager); the
masking and cleaning are nilearn's.

The window is the event's own: put the interval to average in ``onset`` and ``duration`` of the
events file (for example shifted by the hemodynamic delay, as Gotsopoulos et al. 2018's dataset 1 centres it on
the end of the clip).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nb
import numpy as np
import pandas as pd
from nilearn.maskers import NiftiMasker

from xaibids.features.timeseries import (
    CONFOUND_STRATEGIES, ExtractionError, check_finite, confounds_for, load_4d, repetition_time,
)
from xaibids.grids import same_grid

LOGGER = logging.getLogger("xaibids")

#: The suffix of a run's trial maps (``.nii.gz``), the table of their events (``.tsv``) and
#: their sidecar (``.json``): xaibids' own, listed in ``.bidsignore`` like ``attribution``.
TRIALS_SUFFIX = "trials"


@dataclass
class TrialMaps:
    """Result of :func:`extract_trial_maps`."""

    img: nb.Nifti1Image  # 4D float32, one volume per kept event, 0 outside the mask
    events: pd.DataFrame  # the kept rows of events.tsv, with ``n_volumes`` averaged
    n_dropped: int  # events that covered no kept volume
    n_volumes: int
    repetition_time: float
    confound_columns: list[str] = field(default_factory=list)


def read_events(path: str | Path) -> pd.DataFrame:
    """A run's ``events.tsv``, checked: numeric ``onset`` and ``duration`` columns."""
    try:
        events = pd.read_csv(path, sep="\t", na_values=["n/a"], keep_default_na=False)
    except Exception as err:
        raise ExtractionError(f"Could not read the events file {path}: {err}.") from None
    missing = [c for c in ("onset", "duration") if c not in events.columns]
    if missing:
        raise ExtractionError(
            f"{path} has no {' and no '.join(missing)} column; a BIDS events file needs "
            "'onset' and 'duration' (seconds) in its first two columns.")
    for column in ("onset", "duration"):
        values = pd.to_numeric(events[column], errors="coerce")
        bad = values.isna() & events[column].notna()
        if bad.any():
            raise ExtractionError(
                f"{path}: column '{column}' holds non-numeric values (row "
                f"{int(np.flatnonzero(bad)[0]) + 2}); use seconds, or n/a.")
        events[column] = values
    if (events["duration"] < 0).any():
        raise ExtractionError(f"{path}: a negative duration (row "
                              f"{int(np.flatnonzero(events['duration'] < 0)[0]) + 2}).")
    return events


def trial_windows(onsets, durations, volume_times, repetition_time: float) -> list[np.ndarray]:
    """Indices (into ``volume_times``) of the volumes averaged for each event.

    ``volume_times`` are the acquisition starts of the kept volumes (seconds from the start of
    the run). A volume belongs to ``[onset, onset + duration)`` when the middle of its
    acquisition does; an event that contains no middle takes the volume acquired at its onset
    (if that volume was kept). Events with a missing onset or duration get no volume.
    """
    times = np.asarray(volume_times, dtype=float)
    middles = times + repetition_time / 2
    windows = []
    for onset, duration in zip(onsets, durations):
        if not (np.isfinite(onset) and np.isfinite(duration)):
            windows.append(np.array([], dtype=int))
            continue
        inside = np.flatnonzero((middles >= onset) & (middles < onset + duration))
        if not len(inside):
            inside = np.flatnonzero((times <= onset) & (onset < times + repetition_time))
        windows.append(inside)
    return windows


def extract_trial_maps(
    bold_file: str | Path,
    mask_file: str | Path,
    events_file: str | Path,
    confounds: str = "simple",
    detrend: bool = True,
    standardize: str = "none",
    high_pass: float | None = None,
    low_pass: float | None = None,
    metadata: dict | None = None,
) -> TrialMaps:
    """One mean activation map per event of a BOLD run (Gotsopoulos et al. 2018 §2.3).

    Parameters
    ----------
    bold_file, mask_file
        4D BOLD (preprocessed, or a raw run already on its analysis grid) and the brain mask
        on its grid.
    events_file
        The run's BIDS ``events.tsv``; each row (with a numeric onset and duration) is a trial.
    confounds
        One of nilearn's fMRIPrep strategies or ``none`` (as for ROI timecourses).
    detrend, standardize, high_pass, low_pass
        Passed to :class:`nilearn.maskers.NiftiMasker` (as for ROI timecourses); Gotsopoulos et al. 2018
        z-scores every voxel's time course (``standardize='zscore_sample'``).
    metadata
        The BOLD sidecar (``RepetitionTime``; else the header's TR).
    """
    if confounds not in CONFOUND_STRATEGIES:
        raise ExtractionError(f"Unknown confound strategy {confounds!r}; use {CONFOUND_STRATEGIES}.")
    img = load_4d(bold_file)
    tr = repetition_time(img, metadata, bold_file)
    try:
        mask = nb.load(mask_file)
        mask_data = np.asarray(mask.dataobj) > 0
    except Exception as err:
        raise ExtractionError(f"Could not read the brain mask {mask_file}: {err}.") from None
    if not same_grid(mask, img):
        raise ExtractionError(f"The brain mask {mask_file} is not on the grid of {bold_file}; "
                              "use the mask written for this run and space.")
    if not mask_data.any():
        raise ExtractionError(f"The brain mask {mask_file} is empty.")
    check_finite(img, mask_data, bold_file)
    events = read_events(events_file)
    conf, sample_mask = confounds_for(str(bold_file), confounds)
    masker = NiftiMasker(
        mask_img=nb.Nifti1Image(mask_data.astype(np.uint8), img.affine),
        detrend=detrend, standardize=None if standardize == "none" else standardize,
        high_pass=high_pass or None, low_pass=low_pass or None, t_r=tr)
    values = masker.fit_transform(img, confounds=conf, sample_mask=sample_mask)
    kept = np.arange(img.shape[3]) if sample_mask is None else np.asarray(sample_mask)
    windows = trial_windows(events["onset"], events["duration"], kept * tr, tr)
    keep = np.array([len(w) > 0 for w in windows], dtype=bool)
    if not keep.any():
        raise ExtractionError(
            f"No event of {events_file} covers a volume of {bold_file} ({img.shape[3]} volumes "
            f"of {tr:g} s); check the onsets (seconds from the first volume).")
    maps = np.stack([values[w].mean(axis=0) for w, k in zip(windows, keep) if k])
    out = np.zeros(img.shape[:3] + (len(maps),), dtype=np.float32)
    out[mask_data] = maps.T.astype(np.float32)
    out_img = nb.Nifti1Image(out, img.affine)
    out_img.header.set_xyzt_units("mm")
    out_img.header.set_qform(img.affine, code=int(img.header["qform_code"]) or 1)
    out_img.header.set_sform(img.affine, code=int(img.header["sform_code"]) or 1)
    table = events[keep].reset_index(drop=True)
    table["n_volumes"] = [len(w) for w, k in zip(windows, keep) if k]
    n_dropped = int((~keep).sum())
    if n_dropped:
        LOGGER.warning("%s: %d of %d event(s) cover no kept volume and were dropped.",
                       Path(events_file).name, n_dropped, len(events))
    return TrialMaps(img=out_img, events=table, n_dropped=n_dropped, n_volumes=int(img.shape[3]),
                     repetition_time=tr,
                     confound_columns=[] if conf is None else list(conf.columns))
