"""ROI timecourses from preprocessed BOLD: atlas resampling, coverage, confounds, nilearn masker.

Denoising uses nilearn's fMRIPrep confound strategies (``load_confounds_strategy``) and
``NiftiLabelsMasker`` (mean signal per region, with detrending, standardization and band-pass
done by ``nilearn.signal.clean`` in one step, as nilearn recommends). Coverage follows XCP-D:
the fraction of a region's voxels (on the data grid) that lie inside the brain mask; regions
below ``min_coverage`` are written as ``n/a``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nb
import numpy as np
import pandas as pd
from nilearn.interfaces.fmriprep import load_confounds_strategy
from nilearn.maskers import NiftiLabelsMasker

from xaibids.grids import on_grid, same_grid

LOGGER = logging.getLogger("xaibids")

#: ``--confounds`` choices: nilearn's fMRIPrep denoising strategies, plus ``none``.
CONFOUND_STRATEGIES = ("simple", "scrubbing", "compcor", "ica_aroma", "none")
STANDARDIZE_CHOICES = ("zscore_sample", "zscore", "psc", "none")
#: Each ``--confounds`` strategy in the methods text.
CONFOUND_TEXT = {
    "simple": "motion parameters with derivatives and squares, mean white-matter and CSF "
              "signals, and high-pass cosine regressors (nilearn's *simple* strategy)",
    "scrubbing": "the *simple* regressors plus censoring of high-motion volumes (nilearn's "
                 "*scrubbing* strategy [@power2014])",
    "compcor": "motion parameters, anatomical CompCor components [@behzadi2007] and "
               "high-pass cosine regressors (nilearn's *compcor* strategy)",
    "ica_aroma": "ICA-AROMA denoising regressors (nilearn's *ica_aroma* strategy)",
    "none": "no confound regression",
}


class ExtractionError(ValueError):
    """The inputs of one run cannot be turned into ROI timecourses; the message says why."""


@dataclass
class RoiTimeseries:
    """Result of :func:`extract_roi_timeseries`."""

    data: np.ndarray  # (n_volumes_kept, n_regions), NaN for regions under the coverage threshold
    region_names: list[str]
    coverage: np.ndarray  # (n_regions,)
    sample_mask: np.ndarray | None  # indices of the volumes kept (None: all)
    n_volumes: int
    repetition_time: float
    atlas_resampled: bool
    confound_columns: list[str] = field(default_factory=list)


def load_4d(path: str | Path) -> nb.Nifti1Image:
    """Load a 4D image or raise :class:`ExtractionError` naming the file."""
    try:
        img = nb.load(path)
        img.get_fdata(dtype=np.float32)  # read now: truncated files fail here, not later
    except Exception as err:
        raise ExtractionError(f"Could not read {path}: {err}. The file may be truncated or empty.") from None
    if img.ndim != 4 or img.shape[3] < 2:
        raise ExtractionError(
            f"{path} has shape {img.shape}; a 4D BOLD series with at least 2 volumes is needed."
        )
    return img


def check_finite(img: nb.Nifti1Image, mask_data: np.ndarray, path) -> None:
    """Refuse NaN or infinite values inside the brain mask (nilearn would silently zero them)."""
    data = img.get_fdata(dtype=np.float32)  # cached by load_4d: no second read
    bad = ~np.isfinite(data).all(axis=3) & (np.asarray(mask_data) > 0)
    if bad.any():
        raise ExtractionError(
            f"{path} holds NaN or infinite values in {int(bad.sum())} voxel(s) inside the brain "
            "mask; regional means would be wrong. Rerun the preprocessing of this run (or fix the "
            "file), or leave the run out with --bids-filter-file."
        )


def repetition_time(img: nb.Nifti1Image, metadata: dict | None, path) -> float:
    """TR from the JSON sidecar, else from the NIfTI header (seconds)."""
    tr = (metadata or {}).get("RepetitionTime")
    if tr is None:
        zooms = img.header.get_zooms()
        units = img.header.get_xyzt_units()[1]
        tr = float(zooms[3]) / (1000.0 if units == "msec" else 1.0) if len(zooms) > 3 else 0.0
    if not tr or tr <= 0:
        raise ExtractionError(
            f"{path} has no RepetitionTime in its JSON sidecar nor a valid TR in its header; add "
            "RepetitionTime (seconds) to the sidecar."
        )
    return float(tr)


def atlas_on_grid(atlas_img: nb.Nifti1Image, ref_img: nb.Nifti1Image) -> tuple[nb.Nifti1Image, bool]:
    """The atlas on the data grid, resampled nearest-neighbour when the grids differ."""
    resampled, moved = on_grid(atlas_img, ref_img, "nearest")
    if not moved:
        return atlas_img, False
    return nb.Nifti1Image(np.asarray(resampled.dataobj).astype(np.int32), ref_img.affine), True


def region_coverage(atlas_data: np.ndarray, mask_data: np.ndarray, indices) -> np.ndarray:
    """Fraction of each region's voxels inside the brain mask (0 for regions absent)."""
    inside = mask_data > 0
    cov = np.zeros(len(indices))
    for i, index in enumerate(indices):
        region = atlas_data == index
        n = region.sum()
        cov[i] = (region & inside).sum() / n if n else 0.0
    return cov


def confounds_for(bold_path: str, strategy: str, **kwargs):
    """Confound regressors and sample mask of a run with one of nilearn's strategies."""
    if strategy == "none":
        return None, None
    try:
        conf, sample_mask = load_confounds_strategy(str(bold_path), denoise_strategy=strategy,
                                                    **kwargs)
    except Exception as err:  # nilearn raises ValueError/FileNotFoundError with its own text
        raise ExtractionError(
            f"Could not load '{strategy}' confounds for {bold_path}: {err}. Check the "
            "*_desc-confounds_timeseries.tsv/.json beside it, or choose another --confounds."
        ) from None
    n_volumes = len(conf) if sample_mask is None else len(sample_mask)
    n_regressors = conf.shape[1] + 2  # with the constant and the linear trend
    if n_regressors >= n_volumes / 2:
        LOGGER.warning(
            "%s: --confounds %s regresses %d regressors (with a constant and a trend) out of %d "
            "volumes; %s Use a strategy with fewer regressors (e.g. --confounds none) or "
            "longer runs.", Path(bold_path).name, strategy, n_regressors, n_volumes,
            "no signal is left (the timecourses are zero)." if n_regressors >= n_volumes else
            "more than half of the degrees of freedom go to confounds, and a class effect "
            "can go with them.")
    return conf, sample_mask


def extract_roi_timeseries(
    bold_file: str | Path,
    mask_file: str | Path,
    atlas_img: nb.Nifti1Image | str | Path,
    labels: pd.DataFrame,
    confounds: str = "simple",
    detrend: bool = True,
    standardize: str = "none",
    high_pass: float | None = None,
    low_pass: float | None = None,
    min_coverage: float = 0.5,
    metadata: dict | None = None,
) -> RoiTimeseries:
    """Mean BOLD signal per atlas region after confound regression.

    Parameters
    ----------
    bold_file, mask_file
        Preprocessed 4D BOLD in a template space and its brain mask (fMRIPrep derivatives).
    atlas_img, labels
        A 3D label image and a table with ``index`` and ``name`` (see
        :class:`xaibids.features.atlases.Atlas`). Resampled nearest-neighbour to the BOLD grid
        when the grids differ.
    confounds
        One of nilearn's fMRIPrep strategies (``simple``, ``scrubbing``, ``compcor``,
        ``ica_aroma``) or ``none``.
    detrend, standardize, high_pass, low_pass
        Passed to :class:`nilearn.maskers.NiftiLabelsMasker` (``standardize='none'`` → off;
        ``None`` or ``0`` filter cut-offs → off).
    min_coverage
        Regions with a smaller fraction of voxels inside the mask are set to NaN (``n/a``).
    metadata
        The BOLD sidecar; ``RepetitionTime`` is read from it (else from the header).
    """
    if confounds not in CONFOUND_STRATEGIES:
        raise ExtractionError(f"Unknown confound strategy {confounds!r}; use {CONFOUND_STRATEGIES}.")
    if not 0 <= min_coverage <= 1:
        raise ExtractionError(f"min_coverage must lie in [0, 1], got {min_coverage}.")
    img = load_4d(bold_file)
    tr = repetition_time(img, metadata, bold_file)
    try:
        mask = nb.load(mask_file)
        mask_data = np.asarray(mask.dataobj)
    except Exception as err:
        raise ExtractionError(f"Could not read the brain mask {mask_file}: {err}.") from None
    if not same_grid(mask, img):
        raise ExtractionError(
            f"The brain mask {mask_file} is not on the grid of {bold_file}; use the mask that "
            "fMRIPrep wrote for this run and space."
        )
    check_finite(img, mask_data, bold_file)
    atlas_img = nb.load(atlas_img) if isinstance(atlas_img, (str, Path)) else atlas_img
    grid_atlas, resampled = atlas_on_grid(atlas_img, img)
    if resampled:
        LOGGER.info("%s: atlas resampled (nearest neighbour) from %s voxels of %s mm to the BOLD "
                    "grid of %s voxels of %s mm.", Path(bold_file).name, atlas_img.shape[:3],
                    tuple(round(float(z), 2) for z in atlas_img.header.get_zooms()[:3]),
                    img.shape[:3], tuple(round(float(z), 2) for z in img.header.get_zooms()[:3]))
    atlas_data = np.asarray(grid_atlas.dataobj)
    indices = labels["index"].astype(int).tolist()
    coverage = region_coverage(atlas_data, mask_data, indices)

    conf, sample_mask = confounds_for(str(bold_file), confounds)
    masker = NiftiLabelsMasker(
        labels_img=grid_atlas,
        mask_img=mask,
        detrend=detrend,
        standardize=None if standardize == "none" else standardize,
        high_pass=high_pass or None,
        low_pass=low_pass or None,
        t_r=tr,
        strategy="mean",
    )
    values = masker.fit_transform(img, confounds=conf, sample_mask=sample_mask)
    data = np.full((values.shape[0], len(indices)), np.nan)
    column_of = {int(v): k for k, v in masker.region_ids_.items() if k != "background"}
    for j, index in enumerate(indices):
        if index in column_of and coverage[j] >= min_coverage and coverage[j] > 0:
            data[:, j] = values[:, column_of[index]]
    n_low = int(np.sum(coverage < min_coverage))
    if n_low:
        LOGGER.info("%s: %d of %d regions under %.0f%% coverage set to n/a.",
                    Path(bold_file).name, n_low, len(indices), 100 * min_coverage)
    return RoiTimeseries(
        data=data,
        region_names=labels["name"].astype(str).tolist(),
        coverage=coverage,
        sample_mask=None if sample_mask is None else np.asarray(sample_mask),
        n_volumes=int(img.shape[3]),
        repetition_time=tr,
        atlas_resampled=resampled,
        confound_columns=[] if conf is None else list(conf.columns),
    )
