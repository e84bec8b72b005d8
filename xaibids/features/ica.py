"""ICA timecourses of preprocessed BOLD: group ICA, spatially constrained (template) maps,
and dual-regression back-reconstruction.

Two ways to get components (Lewis et al. 2023 uses ICA timecourses of intrinsic networks):

* **Group ICA** on the cleaned BOLD of all selected subjects with nilearn's ``CanICA``
  (Varoquaux et al., 2010, NeuroImage 51:288) or ``DictLearning`` (Mensch et al., 2016, ISBI),
  seeded with ``random_state``. The analysis mask is the intersection (default) or union of the
  runs' fMRIPrep brain masks (``nilearn.masking.intersect_masks`` with threshold 1 or 0): the
  intersection keeps only voxels inside every subject's brain, so no subject contributes
  zero-filled voxels to the decomposition.
* **Template** (spatially constrained) mode: a user-supplied 4D NIfTI of spatial maps (e.g. the
  Neuromark_fMRI_1.0 template of Du et al., 2020, NeuroImage Clin 28:102375) with an optional
  TSV beside it naming the components (``index``, ``name``, optional ``domain``/``group``).
  The maps are resampled to each run's grid (``nilearn.image.resample_to_img``, continuous
  interpolation), so components keep their names and order across datasets.

Subject timecourses come from the back-reconstruction of GIFT/FSL dual regression (Beckmann
et al., 2009, "Group comparison of resting-state FMRI data using multi-subject ICA and dual
regression", NeuroImage 47:S148; Erhardt et al., 2011, "Comparison of multi-subject ICA methods
for analysis of fMRI data", Hum Brain Mapp 32:2075): stage 1 regresses every volume's masked
voxels on the spatial maps (spatial regression → one value per component and volume); the
optional stage 2 regresses every voxel's timecourse on the (variance-normalized) stage-1
timecourses (temporal regression → subject-specific maps). As ``fsl_glm --demean`` in FSL's
``dual_regression``, data and regressors are demeaned over the regression's observations
(voxels in stage 1, volumes in stage 2), which equals fitting an intercept.

Cleaning is the ROI path's (:mod:`xaibids.features.timeseries`): nilearn's fMRIPrep confound
strategies (``load_confounds_strategy``) and ``nilearn.signal.clean`` through a masker, with
detrending, optional standardization and band-pass in one step, so ICA and ROI features are
denoised the same way. Only the dual regression is written here (``numpy.linalg.lstsq``);
masking, resampling and the decompositions are nilearn's.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nb
import numpy as np
import pandas as pd
from nilearn.maskers import NiftiMasker
from nilearn.masking import apply_mask, intersect_masks

from xaibids.fileio import atomic_write_text, save_nifti
from xaibids.grids import on_grid, same_grid

from xaibids.features.ica_templates import (
    IcaError, default_component_names,
)
from xaibids.features.timeseries import (
    CONFOUND_STRATEGIES,
    confounds_for,
    load_4d,
    repetition_time,
)

LOGGER = logging.getLogger("xaibids")

#: Group ICA algorithms (nilearn estimators).
ICA_ALGORITHMS = ("canica", "dictlearning")
#: How the runs' brain masks are combined into the group ICA mask.
MASK_MODES = ("intersection", "union")
#: Citation keys (``boilerplate/references.bib``) of each algorithm and of back-reconstruction.
ALGORITHM_CITATION = {"canica": "varoquaux2010", "dictlearning": "mensch2016"}
BACKRECON_CITATIONS = ("beckmann2009", "erhardt2011")
_ALGORITHM_NAME = {"canica": "CanICA", "dictlearning": "DictLearning"}


# --------------------------------------------------------------------------------------------
# Cleaning, masks, maps on the data grid


@dataclass
class CleanedRun:
    """Cleaned masked BOLD of one run (:func:`clean_run`)."""

    data: np.ndarray  # (n_volumes_kept, n_voxels)
    masker: NiftiMasker
    repetition_time: float
    n_volumes: int
    sample_mask: np.ndarray | None
    confound_columns: list[str] = field(default_factory=list)
    resampled: bool = False


def clean_run(bold_file: str | Path, mask_img, confounds: str = "simple", detrend: bool = True,
              standardize: str = "none", high_pass: float | None = None,
              low_pass: float | None = None, metadata: dict | None = None,
              reference_img=None) -> CleanedRun:
    """Masked BOLD after the ROI path's cleaning (confounds, detrend, filters, standardize).

    Parameters
    ----------
    bold_file
        Preprocessed 4D BOLD (fMRIPrep derivative; confounds are found beside it by nilearn).
    mask_img
        Brain mask (path or image) on the grid of ``reference_img`` (default: of the BOLD).
    reference_img
        Grid to resample the BOLD to (continuous interpolation) when it differs, as for the
        group mask of group ICA; ``None``: the mask must lie on the BOLD grid.
    """
    if confounds not in CONFOUND_STRATEGIES:
        raise IcaError(f"Unknown confound strategy {confounds!r}; use {CONFOUND_STRATEGIES}.")
    img = load_4d(bold_file)
    tr = repetition_time(img, metadata, bold_file)
    try:
        mask = nb.load(mask_img) if isinstance(mask_img, (str, Path)) else mask_img
    except Exception as err:
        raise IcaError(f"Could not read the brain mask {mask_img}: {err}.") from None
    resampled = False
    if reference_img is not None and not same_grid(img, reference_img):
        LOGGER.warning("%s is not on the grid of the group ICA mask; it is resampled "
                       "(continuous interpolation) to it.", Path(bold_file).name)
        img, resampled = on_grid(img, reference_img, "continuous")
    if not same_grid(mask, img):
        raise IcaError(
            f"The brain mask {mask_img if isinstance(mask_img, (str, Path)) else ''} is not on the "
            f"grid of {bold_file}; use the mask that fMRIPrep wrote for this run and space."
        )
    conf, sample_mask = confounds_for(str(bold_file), confounds)
    masker = NiftiMasker(
        mask_img=mask,
        detrend=detrend,
        standardize=None if standardize == "none" else standardize,
        high_pass=high_pass or None,
        low_pass=low_pass or None,
        t_r=tr,
    )
    data = masker.fit_transform(img, confounds=conf, sample_mask=sample_mask)
    return CleanedRun(
        data=np.asarray(data, dtype=np.float64), masker=masker, repetition_time=tr,
        n_volumes=int(img.shape[3]),
        sample_mask=None if sample_mask is None else np.asarray(sample_mask),
        confound_columns=[] if conf is None else list(conf.columns), resampled=resampled,
    )


def group_mask(mask_files: Sequence[str | Path], mode: str = "intersection",
               reference_img=None) -> nb.Nifti1Image:
    """The group ICA mask: intersection (default) or union of the runs' brain masks.

    Masks not on the grid of ``reference_img`` (default: the first mask) are resampled to it
    (nearest neighbour). Intersection keeps voxels inside every mask (``intersect_masks`` with
    threshold 1), union voxels inside any (threshold 0).
    """
    if mode not in MASK_MODES:
        raise IcaError(f"Unknown mask mode {mode!r}; use one of {MASK_MODES}.")
    if not mask_files:
        raise IcaError("Group ICA needs at least one run (with its brain mask); none was given.")
    imgs = []
    for path in mask_files:
        try:
            img = nb.load(path)
            data = np.asarray(img.dataobj)
        except Exception as err:
            raise IcaError(f"Could not read the brain mask {path}: {err}.") from None
        img = nb.Nifti1Image((data > 0).astype(np.uint8), img.affine)
        ref = reference_img if reference_img is not None else (imgs[0] if imgs else img)
        img, resampled = on_grid(img, ref, "nearest")
        if resampled:
            img = nb.Nifti1Image((np.asarray(img.dataobj) > 0).astype(np.uint8), ref.affine)
        imgs.append(img)
    mask = intersect_masks(imgs, threshold=1.0 if mode == "intersection" else 0.0,
                           connected=False)
    if not np.any(np.asarray(mask.dataobj)):
        raise IcaError(
            f"The {mode} of the {len(imgs)} brain masks is empty: the runs do not overlap. Check "
            "that all runs are in the same template space, or use mask mode 'union'."
        )
    return nb.Nifti1Image(np.asarray(mask.dataobj).astype(np.uint8), mask.affine)


def maps_on_grid(maps_img, ref_img) -> tuple[nb.Nifti1Image, bool]:
    """The spatial maps on the data grid (continuous interpolation when the grids differ)."""
    maps_img = nb.load(maps_img) if isinstance(maps_img, (str, Path)) else maps_img
    out, resampled = on_grid(maps_img, ref_img, "continuous")
    if not resampled:
        return maps_img, False
    return nb.Nifti1Image(np.asarray(out.dataobj, dtype=np.float32), ref_img.affine), True


def map_coverage(maps_img, mask_img) -> np.ndarray:
    """Per map, the fraction of its absolute weight (on the mask's grid) inside the mask."""
    data = np.abs(np.asarray(maps_img.dataobj, dtype=np.float64))
    inside = np.asarray(mask_img.dataobj) > 0
    total = data.reshape(-1, data.shape[3]).sum(0)
    within = data[inside].sum(0)
    return np.divide(within, total, out=np.zeros_like(total), where=total > 0)


# --------------------------------------------------------------------------------------------
# Dual regression


@dataclass
class DualRegression:
    """Result of :func:`dual_regression`."""

    timecourses: np.ndarray  # (n_volumes, n_components), stage 1
    maps: np.ndarray | None = None  # (n_components, n_voxels), stage 2


def dual_regression(data: np.ndarray, maps: np.ndarray, demean: bool = True,
                    stage2: bool = False, normalize_timecourses: bool = True) -> DualRegression:
    """Back-reconstruction of subject timecourses (and maps) from group spatial maps.

    Stage 1 (spatial regression, Beckmann et al., 2009; the GICA back-reconstruction of
    Erhardt et al., 2011, for one subject): each volume ``y_t`` (masked voxels) is modelled as
    ``y_t = M.T @ a_t + e`` and ``a_t`` is the least-squares solution (``numpy.linalg.lstsq``).
    Stage 2 (temporal regression): each voxel's timecourse is regressed on the stage-1
    timecourses ``A`` (variance-normalized first when ``normalize_timecourses``, as FSL's
    ``dual_regression`` with ``des_norm``), giving subject-specific maps.

    Parameters
    ----------
    data : ndarray, shape (n_volumes, n_voxels)
        Cleaned masked BOLD.
    maps : ndarray, shape (n_components, n_voxels)
        Spatial maps on the same voxels.
    demean
        Remove the mean of data and regressors over the observations of each regression
        (voxels in stage 1, volumes in stage 2), as ``fsl_glm --demean``; equivalent to an
        intercept.
    stage2
        Also compute subject-specific maps.
    """
    data = np.asarray(data, dtype=np.float64)
    maps = np.asarray(maps, dtype=np.float64)
    if data.ndim != 2 or maps.ndim != 2 or data.shape[1] != maps.shape[1]:
        raise IcaError(
            f"data of shape {data.shape} (volumes × voxels) and maps of shape {maps.shape} "
            "(components × voxels) must share their voxels."
        )
    if maps.shape[0] > maps.shape[1]:
        raise IcaError(f"{maps.shape[0]} components cannot be fitted on {maps.shape[1]} voxels.")
    if not (np.isfinite(data).all() and np.isfinite(maps).all()):
        raise IcaError(
            "data or maps hold NaN or infinite values; dual regression needs finite values."
        )
    design = maps.T  # (n_voxels, n_components)
    target = data.T  # (n_voxels, n_volumes)
    if demean:
        design = design - design.mean(axis=0)
        target = target - target.mean(axis=0)
    timecourses = np.linalg.lstsq(design, target, rcond=None)[0].T  # (n_volumes, n_components)
    subject_maps = None
    if stage2:
        if data.shape[0] <= maps.shape[0]:
            raise IcaError(
                f"Stage 2 needs more volumes ({data.shape[0]}) than components ({maps.shape[0]})."
            )
        regressors = timecourses
        y = data
        if demean:
            regressors = regressors - regressors.mean(axis=0)
            y = y - y.mean(axis=0)
        if normalize_timecourses:
            sd = regressors.std(axis=0)
            regressors = regressors / np.where(sd > 0, sd, 1.0)
        subject_maps = np.linalg.lstsq(regressors, y, rcond=None)[0]  # (n_components, n_voxels)
    return DualRegression(timecourses=timecourses, maps=subject_maps)


# --------------------------------------------------------------------------------------------
# Template mode (one run)


@dataclass
class IcaTimeseries:
    """Result of :func:`extract_ica_timeseries`."""

    data: np.ndarray  # (n_volumes_kept, n_components), NaN for components under min_coverage
    names: list[str]
    coverage: np.ndarray
    sample_mask: np.ndarray | None
    n_volumes: int
    repetition_time: float
    maps_resampled: bool
    confound_columns: list[str] = field(default_factory=list)
    subject_maps: nb.Nifti1Image | None = None


def extract_ica_timeseries(
    bold_file: str | Path,
    mask_file: str | Path,
    maps_img,
    names: Sequence[str] | None = None,
    confounds: str = "simple",
    detrend: bool = True,
    standardize: str = "none",
    high_pass: float | None = None,
    low_pass: float | None = None,
    min_coverage: float = 0.5,
    metadata: dict | None = None,
    stage2: bool = False,
    demean: bool = True,
) -> IcaTimeseries:
    """Timecourses of template components in one run by dual-regression back-reconstruction.

    The maps are resampled (continuous) to the BOLD grid when the grids differ and restricted
    to the run's brain mask; the BOLD is cleaned as in the ROI path (:func:`clean_run`).
    Coverage is the fraction of a map's absolute weight inside the mask; components under
    ``min_coverage`` stay in the regression (so their signal does not leak into the others)
    but are written as ``n/a``.
    """
    if not 0 <= min_coverage <= 1:
        raise IcaError(f"min_coverage must lie in [0, 1], got {min_coverage}.")
    maps_img = nb.load(maps_img) if isinstance(maps_img, (str, Path)) else maps_img
    if maps_img.ndim != 4:
        raise IcaError(f"The spatial maps have shape {maps_img.shape}; they must be 4D.")
    names = list(names) if names is not None else default_component_names(maps_img.shape[3])
    if len(names) != maps_img.shape[3]:
        raise IcaError(f"{len(names)} component names for {maps_img.shape[3]} maps.")
    cleaned = clean_run(bold_file, mask_file, confounds, detrend, standardize, high_pass,
                        low_pass, metadata)
    mask = cleaned.masker.mask_img_
    grid_maps, resampled = maps_on_grid(maps_img, mask)
    if resampled:
        LOGGER.info("%s: ICA maps resampled (continuous) from %s voxels to the BOLD grid of %s "
                    "voxels.", Path(bold_file).name, maps_img.shape[:3], mask.shape[:3])
    coverage = map_coverage(grid_maps, mask)
    if np.median(coverage) < 0.5:
        LOGGER.warning(
            "%s: the ICA maps lie mostly outside the brain mask (median coverage %.0f%%); the "
            "template and the BOLD may not be in the same space. Use a template in the space of "
            "the BOLD (e.g. MNI152NLin6Asym for Neuromark).", Path(bold_file).name,
            100 * float(np.median(coverage)))
    masked_maps = apply_mask(grid_maps, mask)  # (n_components, n_voxels)
    result = dual_regression(cleaned.data, masked_maps, demean=demean, stage2=stage2)
    data = result.timecourses.copy()
    low = (coverage < min_coverage) | (coverage <= 0)
    data[:, low] = np.nan
    if low.any():
        LOGGER.info("%s: %d of %d components under %.0f%% coverage set to n/a.",
                    Path(bold_file).name, int(low.sum()), len(names), 100 * min_coverage)
    subject_maps = (cleaned.masker.inverse_transform(result.maps.astype(np.float32))
                    if stage2 else None)
    return IcaTimeseries(
        data=data, names=names, coverage=coverage, sample_mask=cleaned.sample_mask,
        n_volumes=cleaned.n_volumes, repetition_time=cleaned.repetition_time,
        maps_resampled=resampled, confound_columns=cleaned.confound_columns,
        subject_maps=subject_maps,
    )


# --------------------------------------------------------------------------------------------
# Group ICA


def fit_group_ica(imgs: Sequence, mask_img, n_components: int = 20, algorithm: str = "canica",
                  random_state: int = 0, smoothing_fwhm: float | None = 6.0, n_init: int = 10,
                  threshold: float | str | None = None, alpha: float = 10.0,
                  standardize: bool = False, n_jobs: int = 1) -> nb.Nifti1Image:
    """Group spatial maps of cleaned 4D images with nilearn's ``CanICA`` or ``DictLearning``.

    The images must already be cleaned (:func:`clean_run`): the estimator is told not to
    detrend again and, by default (``standardize=False``, unlike nilearn's default), not to
    z-score voxel timecourses either, so the decomposition and the back-reconstruction see the
    same values; voxel-wise standardization is the cleaning's ``standardize`` option (as for
    ROIs). Z-scoring only inside the ICA gives pure-noise voxels the weight of signal voxels
    and flattens the maps (best-match correlation with simulated maps 0.82 instead of 0.99 in
    ``tests/test_features_ica.py``). ``threshold=None`` keeps the maps unthresholded, as GICA
    back-reconstruction uses them (nilearn's own default ``'auto'`` zeroes all but
    ~1/n_components of the voxels); ``alpha`` is DictLearning's sparsity penalty, which
    depends on the data's scale (nilearn's default 10 suits unit-variance voxels, i.e. the
    cleaning's ``standardize='zscore_sample'``; unstandardized data may need a smaller value);
    ``n_init`` is CanICA's number of FastICA restarts. Signs follow nilearn (each map's peak
    is positive).
    """
    from nilearn.decomposition import CanICA, DictLearning

    if algorithm not in ICA_ALGORITHMS:
        raise IcaError(f"Unknown ICA algorithm {algorithm!r}; use one of {ICA_ALGORITHMS}.")
    if n_components < 1:
        raise IcaError(f"n_components must be at least 1, got {n_components}.")
    if n_init < 1:
        raise IcaError(f"n_init must be at least 1, got {n_init}.")
    common = dict(mask=mask_img, n_components=int(n_components), random_state=int(random_state),
                  smoothing_fwhm=smoothing_fwhm or None,
                  standardize="zscore_sample" if standardize else False,
                  detrend=False, n_jobs=n_jobs, memory_level=0, verbose=0)
    if algorithm == "canica":
        estimator = CanICA(n_init=int(n_init), threshold=threshold, **common)
    else:
        estimator = DictLearning(alpha=alpha, **common)
    try:
        estimator.fit(list(imgs))
    except ValueError as err:
        if "No component found" not in str(err):
            raise
        # DictLearning's L1 penalty zeroed every map; the penalty is relative to the data scale
        raise IcaError(
            f"{_ALGORITHM_NAME[algorithm]} found no component in the data: its sparsity penalty "
            f"(alpha {alpha:g}) removed every map, which happens when the cleaned voxel "
            "timecourses are small next to it. Lower --ica-alpha, clean with --standardize "
            "zscore_sample (unit-variance voxels, for which nilearn's alpha 10 is meant), or "
            "use --ica-algorithm canica.") from None
    img = estimator.components_img_
    return nb.Nifti1Image(np.asarray(img.dataobj, dtype=np.float32), img.affine)


def write_component_maps(img: nb.Nifti1Image, labels: pd.DataFrame, out_stem: str | Path,
                         metadata: dict | None = None) -> dict[str, Path]:
    """Write ``<stem>_components.nii.gz``, ``.tsv`` (``index``, ``name``[, ``domain``]), ``.json``.

    ``out_stem`` is the path without the suffix, e.g.
    ``OUT/atlases/atlas-CanICA20/atlas-CanICA20_space-MNI152NLin6Asym_desc-ica``.
    """
    out_stem = Path(out_stem)
    if img.ndim != 4 or img.shape[3] != len(labels):
        raise IcaError(f"{img.shape} maps do not match {len(labels)} component names.")
    nii = save_nifti(nb.Nifti1Image(np.asarray(img.dataobj, dtype=np.float32), img.affine),
                    out_stem.with_name(out_stem.name + "_components.nii.gz"))
    table = labels[[c for c in ("index", "name", "domain") if c in labels.columns]].copy()
    if "domain" in table.columns and table["domain"].isna().all():
        table = table.drop(columns="domain")
    tsv = out_stem.with_name(out_stem.name + "_components.tsv")
    atomic_write_text(tsv, table.to_csv(sep="\t", index=False, na_rep="n/a"))
    sidecar = out_stem.with_name(out_stem.name + "_components.json")
    atomic_write_text(sidecar, json.dumps(metadata or {}, indent=2, sort_keys=True) + "\n")
    return {"maps": nii, "labels": tsv, "json": sidecar}


# --------------------------------------------------------------------------------------------
# Painting importance back into the brain


def paint_components(maps_img, weights, names: Sequence[str] | None = None,
                     normalize: bool = True) -> nb.Nifti1Image:
    """A 3D image ``Σ_k w_k · map_k``: a group importance vector painted into the brain.

    Parameters
    ----------
    maps_img
        4D spatial maps (path or image), one component per volume.
    weights
        One importance per component, in volume order, or a mapping ``{name: weight}`` (then
        ``names`` gives the volume order; components missing from the mapping weigh 0).
    names
        Component names in volume order (needed with a mapping).
    normalize
        Scale each map to a maximum absolute value of 1 first, so components with different
        scales (z-maps, raw ICA loadings) weigh by importance only.
    """
    maps_img = nb.load(maps_img) if isinstance(maps_img, (str, Path)) else maps_img
    if maps_img.ndim != 4:
        raise IcaError(f"The spatial maps have shape {maps_img.shape}; they must be 4D.")
    n = maps_img.shape[3]
    if isinstance(weights, Mapping):
        if names is None or len(names) != n:
            raise IcaError(f"Weights given by name need the {n} component names in volume order.")
        unknown = sorted(set(weights) - set(names))
        if unknown:
            raise IcaError(f"Weights for unknown components {unknown[:5]}; the maps have "
                           f"{list(names)[:5]}….")
        w = np.array([float(weights.get(name, 0.0)) for name in names])
    else:
        w = np.asarray(weights, dtype=np.float64).ravel()
        if w.size != n:
            raise IcaError(f"{w.size} weights for {n} component maps; give one per component.")
    if not np.isfinite(w).all():
        raise IcaError("The weights hold NaN or infinite values.")
    data = np.asarray(maps_img.dataobj, dtype=np.float64)
    if normalize:
        peak = np.abs(data).reshape(-1, n).max(axis=0)
        data = data / np.where(peak > 0, peak, 1.0)
    painted = data @ w
    return nb.Nifti1Image(painted.astype(np.float32), maps_img.affine)


# --------------------------------------------------------------------------------------------
# Methods text


def template_description(n_components: int, template_name: str, settings,
                         stage2: bool = False) -> str:
    """Boilerplate for template-mode extraction (cleaning text as the ROI workflow's)."""
    from xaibids.features.timeseries import CONFOUND_TEXT

    band = [f"high-pass {settings.high_pass} Hz"] if settings.high_pass else []
    band += [f"low-pass {settings.low_pass} Hz"] if settings.low_pass else []
    return (
        f"Component timecourses were computed for the {n_components} spatial maps of the ICA "
        f"template {template_name} (continuously resampled to the BOLD grid with nilearn "
        "[@nilearn] and restricted to each run's brain mask) by the spatial-regression stage of "
        "dual regression [@beckmann2009], i.e. GICA back-reconstruction [@erhardt2011]: each "
        "volume was regressed, by least squares with an intercept, on the maps"
        + (", and each voxel's timecourse on the variance-normalized component timecourses, "
           "giving subject-specific maps" if stage2 else "")
        + f". Beforehand, confounds were regressed out ({CONFOUND_TEXT[settings.confounds]}) "
        "voxel-wise with nilearn's `NiftiMasker`, in the same step as "
        + ("linear detrending, " if settings.detrend else "")
        + (", ".join(band) + " filtering, " if band else "")
        + (f"and {settings.standardize} standardization" if settings.standardize != "none"
           else "without standardization")
        + f". Components with less than {100 * settings.min_coverage:.0f}% of their absolute "
        "map weight inside the brain mask were set to missing (n/a). "
    )


def group_ica_description(n_components: int, algorithm: str, n_runs: int, n_subjects: int,
                          mask_mode: str, smoothing_fwhm, random_state: int, settings,
                          stage2: bool = False, n_init: int = 10,
                          threshold: float | str | None = None) -> str:
    """Boilerplate for group ICA followed by back-reconstruction."""
    from xaibids.features.timeseries import CONFOUND_TEXT

    band = [f"high-pass {settings.high_pass} Hz"] if settings.high_pass else []
    band += [f"low-pass {settings.low_pass} Hz"] if settings.low_pass else []
    alg = (f"CanICA [@{ALGORITHM_CITATION['canica']}] ({n_init} FastICA restart(s))"
           if algorithm == "canica" else
           f"dictionary learning [@{ALGORITHM_CITATION['dictlearning']}]")
    return (
        f"Confounds were regressed out of each run's preprocessed BOLD "
        f"({CONFOUND_TEXT[settings.confounds]}) voxel-wise with nilearn's `NiftiMasker` "
        "[@nilearn], in the same step as "
        + ("linear detrending, " if settings.detrend else "")
        + (", ".join(band) + " filtering, " if band else "")
        + (f"and {settings.standardize} standardization" if settings.standardize != "none"
           else "without standardization")
        + f". Group spatial maps of {n_components} components were estimated from the "
        f"{n_runs} cleaned run(s) of {n_subjects} subject(s) with nilearn's {alg}, within the "
        f"{mask_mode} of the runs' brain masks"
        + (f", after {smoothing_fwhm} mm FWHM smoothing" if smoothing_fwhm else "")
        + f" (random seed {random_state}); "
        + ("maps were kept unthresholded" if threshold is None
           else f"maps were thresholded (nilearn threshold {threshold})")
        + ". Subject timecourses "
        "were obtained by the spatial-regression stage of dual regression [@beckmann2009], "
        "i.e. GICA back-reconstruction [@erhardt2011]: each volume was regressed, by least "
        "squares with an intercept, on the group maps"
        + (", and each voxel's timecourse on the variance-normalized timecourses, giving "
           "subject-specific maps" if stage2 else "")
        + ". "
    )
