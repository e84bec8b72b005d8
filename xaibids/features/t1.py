"""T1w volumes for ``--features t1``: registration to the MNI152 template, masking,
normalization and resampling onto a cropped template grid.

Kan et al. 2020 (§2, "Data") classifies whole T1 volumes compressed to 58 × 70 × 58 voxels after
HCP preprocessing. Raw T1w images are brought to the template here in the manner of
ClinicaDL's ``t1-linear`` pipeline (N4 bias-field correction, then an affine registration to the
MNI152 template with ANTs, then a crop to the brain's bounding box), using ANTsPy (``antspyx``,
ANTs compiled into a Python wheel) instead of the ANTs executables:

1. :func:`register_to_template`: N4 (Tustison et al. 2010) restricted to the head foreground,
   then an affine registration (Mattes mutual information, multi-resolution) to nilearn's
   bundled MNI152 template. ClinicaDL runs ``antsRegistrationSyNQuick.sh -t a`` (rigid then
   affine, finest level at half resolution); ANTsPy's ``Affine`` with the same finest level
   (:data:`REGISTRATION_OPTIONS`) is as accurate here and 6× faster (measured: a known affine
   applied to the template is recovered to 0.5 mm mean / 0.9 mm max in 8 s, against 0.5 / 0.9
   mm in 60 s for ``antsRegistrationSyNQuick[a]``; on a real raw T1w the two transforms
   differ by 0.35 mm mean). The result lies on the template's 1 mm grid.
2. :func:`preprocess_t1`: brain mask of the template, anti-aliased trilinear resampling onto
   :func:`template_grid` (the template brain's bounding box plus a margin, ``resolution`` mm
   voxels), then z-scoring inside the mask (:func:`normalize_intensity`).

Images already in a template space (fMRIPrep/sMRIPrep ``*_space-<tpl>_desc-preproc_T1w``) skip
step 1. Nothing is downloaded: the template and its mask ship with nilearn.

The template is nilearn's ``mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz``, the ICBM 2009a
*symmetric* nonlinear template, skull-stripped, intensities in [0, 1] (TemplateFlow's
``MNI152NLin2009aSym``).
"""

from __future__ import annotations

import functools
import io
import logging
import os
import tempfile
import time
from pathlib import Path

import nibabel as nb
import numpy as np
from scipy import ndimage

from xaibids.errors import XaibidsError
from xaibids.fileio import save_nifti
from xaibids.grids import same_grid

LOGGER = logging.getLogger("xaibids")

#: TemplateFlow name of nilearn's bundled MNI152 template (ICBM 2009a, symmetric).
TEMPLATE_SPACE = "MNI152NLin2009aSym"
#: ANTsPy transform type and its options: ANTsPy's ``Affine`` (12 parameters, Mattes mutual
#: information with 32 bins, 10 % of the voxels sampled on a jittered regular grid, starting
#: from the alignment of the centres of mass) on three levels (shrink 6, 4, 2; smoothing 3, 2,
#: 1 voxels), stopping at half resolution like ClinicaDL's ``antsRegistrationSyNQuick[a]``.
REGISTRATION_TYPE = "Affine"
REGISTRATION_OPTIONS: dict = {
    "aff_metric": "mattes",
    "aff_sampling": 32,
    "aff_random_sampling_rate": 0.1,
    "aff_iterations": (2100, 1200, 100),
    "aff_shrink_factors": (6, 4, 2),
    "aff_smoothing_sigmas": (3, 2, 1),
}
DEFAULT_RESOLUTION = 3.0
DEFAULT_MARGIN = 4
#: Default grid shape (``template_grid(3.0, 4)``), Kan et al. 2020's ~58 × 70 × 58.
DEFAULT_GRID_SHAPE = (57, 69, 60)
#: Masks resampled with trilinear interpolation keep the voxels at or above this value.
MASK_THRESHOLD = 0.5
_LPS = np.diag([-1.0, -1.0, 1.0, 1.0])  # RAS+ (nibabel) ↔ LPS+ (ITK/ANTs) world coordinates


class T1Error(XaibidsError, ValueError):
    """A T1w image cannot be preprocessed; the message names the file and the fix."""


def resolution_label(resolution_mm: float) -> str:
    """The BIDS ``res-`` label of a grid of ``resolution_mm`` voxels: ``3`` for 3 mm, ``2p5``
    for 2.5 mm (labels are alphanumeric; the sidecar's ``Resolution`` says it in words)."""
    return f"{float(resolution_mm):g}".replace(".", "p")


# --------------------------------------------------------------------------- template and grid
@functools.lru_cache(maxsize=1)
def _template_cached():
    from nilearn.datasets import load_mni152_brain_mask, load_mni152_template

    t1 = load_mni152_template(resolution=1)
    mask = load_mni152_brain_mask(resolution=1)
    t1 = nb.Nifti1Image(t1.get_fdata(dtype=np.float32), t1.affine)
    mask = nb.Nifti1Image((np.asarray(mask.dataobj) > 0).astype(np.uint8), mask.affine)
    for img in (t1, mask):
        img.header.set_xyzt_units("mm")
    return t1, mask


def load_template() -> tuple[nb.Nifti1Image, nb.Nifti1Image]:
    """nilearn's bundled MNI152 template at 1 mm and its brain mask (nothing is downloaded).

    Returns
    -------
    t1 : nibabel.Nifti1Image
        The skull-stripped ICBM 2009a symmetric T1w template (197 × 233 × 189 voxels of 1 mm,
        float32, values in [0, 1]).
    mask : nibabel.Nifti1Image
        Its brain mask on the same grid (uint8, 0/1).
    """
    t1, mask = _template_cached()
    return (nb.Nifti1Image(np.asarray(t1.dataobj).copy(), t1.affine, t1.header),
            nb.Nifti1Image(np.asarray(mask.dataobj).copy(), mask.affine, mask.header))


def _check_grid_args(resolution, margin) -> tuple[float, int]:
    try:
        resolution = float(resolution)
    except (TypeError, ValueError):
        raise T1Error(f"--t1-resolution must be a number of mm, got {resolution!r}.") from None
    if not np.isfinite(resolution) or not 1.0 <= resolution <= 10.0:
        raise T1Error(f"--t1-resolution must lie in [1, 10] mm, got {resolution}; the default "
                      f"{DEFAULT_RESOLUTION:g} mm gives {DEFAULT_GRID_SHAPE} voxels (Kan et al. 2020).")
    if int(margin) != margin or margin < 0:
        raise T1Error(f"The grid margin must be a whole number of voxels ≥ 0, got {margin!r}.")
    return resolution, int(margin)


@functools.lru_cache(maxsize=16)
def _grid_cached(resolution: float, margin: int):
    _, mask = _template_cached()
    ijk = np.argwhere(np.asarray(mask.dataobj) > 0)
    corners = np.array([ijk.min(0) - 0.5, ijk.max(0) + 0.5])  # voxel edges of the bounding box
    world = nb.affines.apply_affine(mask.affine, corners)
    lo, hi = world.min(0), world.max(0)
    shape = tuple(int(n) for n in np.ceil((hi - lo) / resolution - 1e-6).astype(int) + 2 * margin)
    centre = (lo + hi) / 2
    # first voxel centre, snapped to the template's 1 mm lattice (grids of whole-mm voxels then
    # share voxel centres with the template)
    origin = np.round(centre - (np.array(shape) - 1) / 2 * resolution)
    affine = np.eye(4)
    affine[:3, :3] = np.diag([resolution] * 3)
    affine[:3, 3] = origin
    return shape, affine


def template_grid(resolution: float = DEFAULT_RESOLUTION,
                  margin: int = DEFAULT_MARGIN) -> tuple[tuple[int, int, int], np.ndarray]:
    """The cropped template grid that ``--features t1`` volumes are written on.

    ``resolution`` mm isotropic voxels aligned with the template's world (MNI, RAS+) axes,
    covering the bounding box of the template's brain mask plus ``margin`` voxels on each side
    — the crop to the brain of ClinicaDL's ``t1-linear`` at the coarse resolution of Kan et al. 2020
    (§2: volumes of 58 × 70 × 58 voxels). The brain's bounding box spans x −72.5…72.5,
    y −107.5…73.5, z −72.5…82.5 mm (voxel edges); the grid is centred on it, its first voxel
    centre on a whole millimetre.

    Parameters
    ----------
    resolution
        Voxel size in mm (``--t1-resolution``), in [1, 10].
    margin
        Voxels added on each side of the bounding box.

    Returns
    -------
    shape : tuple of int
        At the defaults (3 mm, margin 4): **(57, 69, 60)**, origin (−84, −119, −84) mm.
        At 1 mm and margin 0: (145, 181, 155).
    affine : numpy.ndarray
        4 × 4 voxel → MNI mm affine (diagonal ``resolution``; never the identity).
    """
    resolution, margin = _check_grid_args(resolution, margin)
    shape, affine = _grid_cached(resolution, margin)
    return shape, affine.copy()


def resample(img: nb.Nifti1Image, shape, affine, order: int = 1,
             support: np.ndarray | None = None) -> np.ndarray:
    """``img`` on the grid ``(shape, affine)`` (float32, 0 outside the field of view).

    When the target voxels are larger than the source voxels the data are first smoothed
    with a Gaussian of σ = (factor − 1) / 2 source voxels per axis (the anti-aliasing rule of
    ``skimage.transform.resize``); trilinear sampling alone would skip two of every three
    1 mm voxels at 3 mm and keep their noise. With a boolean ``support`` (e.g. the brain mask
    on the source grid) the smoothing is normalized within it (``G*(x·s) / G*s``), so the
    background does not darken the brain's edge.
    """
    data = np.asarray(img.get_fdata(dtype=np.float32))
    src_zooms = np.sqrt((img.affine[:3, :3] ** 2).sum(0))
    dst_zooms = np.sqrt((np.asarray(affine)[:3, :3] ** 2).sum(0))
    # source voxel size along each source axis vs the target's (target axes are the world's)
    sigma = np.maximum(0.0, (dst_zooms.mean() / src_zooms - 1.0) / 2.0)
    if support is not None:
        support = np.asarray(support, dtype=bool)
        data = np.where(support, data, 0.0).astype(np.float32)
    if order > 0 and np.any(sigma > 0.05):
        if support is None:
            data = ndimage.gaussian_filter(data, sigma, mode="nearest")
        else:
            weight = ndimage.gaussian_filter(support.astype(np.float32), sigma, mode="constant")
            data = ndimage.gaussian_filter(data, sigma, mode="constant")
            data = np.where(weight > 1e-3, data / np.maximum(weight, 1e-3), 0.0)
            data = np.where(support, data, 0.0).astype(np.float32)
    vox = np.linalg.inv(img.affine) @ np.asarray(affine)
    out = ndimage.affine_transform(data, vox[:3, :3], offset=vox[:3, 3],
                                   output_shape=tuple(shape), order=order, mode="constant",
                                   cval=0.0)
    return out.astype(np.float32)


def resample_mask(img: nb.Nifti1Image, shape, affine) -> np.ndarray:
    """A binary mask on the grid: trilinear, then kept where ≥ :data:`MASK_THRESHOLD`."""
    data = (np.asarray(img.dataobj) > 0).astype(np.float32)
    if data.ndim == 4:
        data = data[..., 0]
    vox = np.linalg.inv(img.affine) @ np.asarray(affine)
    out = ndimage.affine_transform(data, vox[:3, :3], offset=vox[:3, 3],
                                   output_shape=tuple(shape), order=1, mode="constant", cval=0.0)
    return out >= MASK_THRESHOLD


def grid_mask(resolution: float = DEFAULT_RESOLUTION,
              margin: int = DEFAULT_MARGIN) -> nb.Nifti1Image:
    """The template brain mask on :func:`template_grid` (uint8; trilinear, kept at ≥ 0.5)."""
    shape, affine = template_grid(resolution, margin)
    _, mask = _template_cached()
    return _nifti(resample_mask(mask, shape, affine).astype(np.uint8), affine)


# --------------------------------------------------------------------------- nibabel ↔ ANTs
def _ants():
    try:
        import ants
    except ImportError:  # pragma: no cover - a dependency of xaibids
        raise T1Error("Registration of raw T1w images needs ANTsPy; install it "
                      "(pip install antspyx) or pass preprocessed T1w images in a template space "
                      "with -d (fMRIPrep/sMRIPrep derivatives).") from None
    return ants


def to_ants(img: nb.Nifti1Image):
    """An ANTs image with the same voxels and world positions as a nibabel image.

    nibabel's affine maps voxels to RAS+ mm, ITK's geometry (origin, spacing, direction) to
    LPS+ mm: ``LPS = diag(−1, −1, 1) · RAS``. The voxel array keeps its axis order (ANTsPy indexes
    arrays as nibabel does), so no data are flipped. The first call of a process limits ITK to
    one thread unless :func:`register_to_template` chose another count before.
    """
    ants = _ants()
    if not _itk_threads:
        _threads(1)
    lps = _LPS @ img.affine
    m = lps[:3, :3]
    spacing = np.sqrt((m ** 2).sum(0))
    if abs(np.linalg.det(m)) < 1e-6:
        raise T1Error("The image's affine is singular; fix the NIfTI header (qform/sform).")
    direction = m / spacing
    data = np.asarray(img.get_fdata(dtype=np.float32))
    return ants.from_numpy(np.ascontiguousarray(data), origin=lps[:3, 3].tolist(),
                           spacing=spacing.tolist(), direction=direction)


def ants_affine(ants_img) -> np.ndarray:
    """The RAS+ voxel → world affine of an ANTs image (inverse of :func:`to_ants`'s mapping)."""
    lps = np.eye(4)
    lps[:3, :3] = np.asarray(ants_img.direction) @ np.diag(ants_img.spacing)
    lps[:3, 3] = ants_img.origin
    return _LPS @ lps


def from_ants(ants_img) -> nb.Nifti1Image:
    """A nibabel image of an ANTs image (float32)."""
    img = nb.Nifti1Image(ants_img.numpy().astype(np.float32), ants_affine(ants_img))
    img.header.set_xyzt_units("mm")
    return img


def _transform_matrix(ants, path) -> np.ndarray:
    """The 4 × 4 RAS+ world matrix of an ITK affine transform file (fixed → moving points).

    ITK stores ``T(p) = A (p − c) + t + c`` in LPS+ coordinates (parameters: A row-major then
    t; fixed parameters: the centre c).
    """
    tx = ants.read_transform(str(path))
    params = np.asarray(tx.parameters, dtype=float)
    centre = np.asarray(tx.fixed_parameters, dtype=float)
    a = params[:9].reshape(3, 3)
    lps = np.eye(4)
    lps[:3, :3] = a
    lps[:3, 3] = params[9:12] + centre - a @ centre
    return _LPS @ lps @ _LPS


# --------------------------------------------------------------------------- registration
def load_t1(path: str | Path) -> nb.Nifti1Image:
    """Load a 3D T1w image or raise :class:`T1Error` naming the file."""
    try:
        img = nb.load(path)
        data = img.get_fdata(dtype=np.float32)  # read now: truncated files fail here, not later
    except Exception as err:
        raise T1Error(f"Could not read {path}: {err}. The file may be truncated or empty.") \
            from None
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim != 3 or min(data.shape) < 2:
        raise T1Error(f"{path} has shape {img.shape}; a 3D T1w volume is needed.")
    bad = ~np.isfinite(data)
    if bad.any():
        LOGGER.warning("%s: %d NaN or infinite voxel(s) set to 0.", Path(path).name,
                       int(bad.sum()))
        data = np.where(bad, 0.0, data).astype(np.float32)
    if not np.any(data != 0):
        raise T1Error(f"{path} holds only zeros; check the file (a failed conversion?).")
    out = nb.Nifti1Image(data, img.affine)
    out.header.set_xyzt_units("mm")
    return out


_ITK_THREADS = "ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS"
_itk_threads: list[int] = []  # the thread count this process's ITK was started with


def _threads(n_threads) -> int:
    """Limit ITK to ``n_threads`` (read once, when a process makes its first ITK object)."""
    if int(n_threads) != n_threads or n_threads < 1:
        raise T1Error(f"The number of registration threads must be ≥ 1, got {n_threads!r}.")
    n = int(n_threads)
    if not _itk_threads:
        os.environ[_ITK_THREADS] = str(n)
        _itk_threads.append(n)
    elif _itk_threads[0] != n:
        LOGGER.info("ITK fixes its thread count at the first ANTs call of a process (%d here); "
                    "%d thread(s) requested for this image.", _itk_threads[0], n)
    return _itk_threads[0]


def _correlation(a: np.ndarray, b: np.ndarray) -> float:
    a = a - a.mean()
    b = b - b.mean()
    denom = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / denom) if denom > 0 else 0.0


def register_to_template(in_file: str | Path | nb.Nifti1Image, random_seed: int = 0,
                         n_threads: int = 1) -> tuple[nb.Nifti1Image, dict]:
    """A raw T1w image brought to the MNI152 template as ClinicaDL's ``t1-linear`` does.

    N4 bias-field correction (``ants.n4_bias_field_correction``: shrink factor 4, 4 × 50
    iterations, one B-spline span per axis — about ClinicaDL's 600 mm fitting distance — fitted
    inside the head, i.e. the voxels brighter than the image mean), then
    ``ants.registration(type_of_transform="Affine", **REGISTRATION_OPTIONS)`` to the 1 mm
    template (:data:`REGISTRATION_OPTIONS`; ClinicaDL's ``t1-linear`` affine registration in
    ANTsPy; Kan et al. 2020 §2 uses HCP-preprocessed volumes instead).

    Parameters
    ----------
    in_file
        The raw T1w image (path or nibabel image).
    random_seed
        Seed of ANTs' metric sampling (passed as ``--random-seed random_seed + 1``: ANTs takes
        0 to mean "seed from the clock"). With ``n_threads=1`` reruns give identical bytes;
        with more threads ITK's multi-threaded metric sums differ in rounding between runs
        (transform entries by ~1e-4, far below a voxel).
    n_threads
        ITK threads (``ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS``). ITK fixes its thread count at the
        first ANTs call of a process; later calls in the same process keep it.

    Returns
    -------
    registered : nibabel.Nifti1Image
        The bias-corrected image resampled (trilinear) onto the template's 1 mm grid
        (197 × 233 × 189 voxels, the template's affine).
    info : dict
        ``template_to_input`` (4 × 4 list: MNI mm → input-image world mm, the transform ANTs
        resamples with), ``input_to_template`` (its inverse), ``correlation`` (Pearson
        correlation of the registered image with the template inside its brain mask: ~0.5 for
        real skull-stripped T1w images registered well, much lower when registration fails),
        ``seconds`` (``n4``, ``registration``), ``registration`` (the ANTs transform type),
        ``random_seed`` and ``n_threads`` (the count ITK runs with in this process).
    """
    ants = _ants()
    n_threads = _threads(n_threads)
    if int(random_seed) != random_seed or random_seed < 0:
        raise T1Error(f"random_seed must be a whole number ≥ 0, got {random_seed!r}.")
    if isinstance(in_file, nb.Nifti1Image):
        img, name = in_file, in_file.get_filename() or "the T1w image"
    else:
        img, name = load_t1(in_file), str(in_file)
    template, mask = _template_cached()

    moving = to_ants(img)
    fixed = to_ants(template)
    data = moving.numpy()
    head = moving.new_image_like((data > data.mean()).astype(np.float32))
    start = time.perf_counter()
    corrected = ants.n4_bias_field_correction(moving, mask=head, shrink_factor=4)
    after_n4 = time.perf_counter()

    config = ants.config
    previous = (config._deterministic, config._random_seed)
    # ANTs reads seed 0 as "seed from the clock": shift by one so that 0 is a seed too
    config._deterministic, config._random_seed = False, int(random_seed) + 1
    try:
        with tempfile.TemporaryDirectory(prefix="xaibids-ants-") as tmp:
            reg = ants.registration(fixed=fixed, moving=corrected,
                                    type_of_transform=REGISTRATION_TYPE, **REGISTRATION_OPTIONS,
                                    outprefix=str(Path(tmp) / "reg_"))
            matrices = [_transform_matrix(ants, p) for p in reg["fwdtransforms"]]
    except RuntimeError as err:
        raise T1Error(f"ANTs could not register {name} to the template ({err}). Check that the "
                      "file is a T1w image of a head with a valid orientation in its header.") \
            from None
    finally:
        config._deterministic, config._random_seed = previous
    after_reg = time.perf_counter()
    template_to_input = np.eye(4)
    for m in matrices:  # ANTs applies the last transform of the list first
        template_to_input = template_to_input @ m

    warped = reg["warpedmovout"]
    if not np.allclose(ants_affine(warped), template.affine, atol=1e-4):
        raise RuntimeError("ANTs returned an image off the template grid")  # internal check
    out = nb.Nifti1Image(warped.numpy().astype(np.float32), template.affine)
    out.header.set_xyzt_units("mm")
    inside = np.asarray(mask.dataobj) > 0
    corr = _correlation(np.asarray(out.dataobj)[inside], np.asarray(template.dataobj)[inside])
    if corr < 0.2:
        LOGGER.warning("%s: correlation with the template after registration is only %.2f; "
                       "check the registration figure.", Path(name).name, corr)
    return out, {
        "registration": REGISTRATION_TYPE,
        "template_to_input": np.round(template_to_input, 8).tolist(),
        "input_to_template": np.round(np.linalg.inv(template_to_input), 8).tolist(),
        "correlation": round(corr, 4),
        "seconds": {"n4": round(after_n4 - start, 2),
                    "registration": round(after_reg - after_n4, 2)},
        "random_seed": int(random_seed),
        "n_threads": n_threads,
    }


# --------------------------------------------------------------------------- normalization
def normalize_intensity(data: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Z-score the voxels inside ``mask``; 0 outside (float32).

    T1w intensities have no physical unit: their scale changes between scanners, sequences
    and sessions, and after N4 the overall gain is arbitrary. A z-score within the brain makes
    subjects comparable for the CNN (ClinicaDL rescales each image min–max before training; the
    z-score does the same job without depending on a few extreme voxels), and computing it in
    the brain only keeps the amount of background — which varies with the head's size and
    the crop — out of the statistics. Outside the mask the value is 0, the in-brain mean: the
    background carries no signal the model could use, and the all-zero baseline of Integrated
    Gradients and the blurred/zero perturbations of Kan et al. 2020 (eq. 1–3) mean "average tissue"
    there rather than "very dark".
    """
    data = np.asarray(data, dtype=np.float32)
    mask = np.asarray(mask, dtype=bool)
    if mask.shape != data.shape:
        raise T1Error(f"The brain mask has shape {mask.shape}, the image {data.shape}.")
    values = data[mask].astype(np.float64)
    if values.size < 2:
        raise T1Error("The brain mask holds fewer than 2 voxels; check the mask and the "
                      "registration.")
    sd = values.std()
    if not np.isfinite(sd) or sd == 0:
        raise T1Error("The image is constant inside the brain mask; check the input and the "
                      "registration.")
    out = np.zeros(data.shape, dtype=np.float32)
    out[mask] = ((values - values.mean()) / sd).astype(np.float32)
    return out


# --------------------------------------------------------------------------- pipeline
def _nifti(data: np.ndarray, affine: np.ndarray) -> nb.Nifti1Image:
    img = nb.Nifti1Image(data, affine)
    img.header.set_xyzt_units("mm")
    img.header.set_qform(affine, code=4)  # MNI152
    img.header.set_sform(affine, code=4)
    if data.dtype != np.uint8:
        img.header.set_slope_inter(1.0, 0.0)
    return img




def preprocess_t1(in_file: str | Path, out_file: str | Path,
                  resolution: float = DEFAULT_RESOLUTION, margin: int = DEFAULT_MARGIN,
                  mask_file: str | Path | None = None, in_template_space: bool = False,
                  random_seed: int = 0, n_threads: int = 1,
                  report_file: str | Path | None = None, space: str | None = None) -> dict:
    """A T1w image → the network's input volume on :func:`template_grid` (Kan et al. 2020 §2).

    Raw input (``in_template_space=False``): :func:`register_to_template` (N4 + affine, 1 mm
    template grid), the template brain mask, anti-aliased trilinear resampling onto the grid
    (:func:`resample`, smoothing normalized within the mask), the grid's brain mask
    (:func:`grid_mask`), then :func:`normalize_intensity`.

    Template-space input (``in_template_space=True``: fMRIPrep/sMRIPrep
    ``*_space-<tpl>_desc-preproc_T1w.nii.gz``, which keeps the skull): no registration; the
    image is resampled onto the grid as is, masked with the intersection of its own brain mask
    (``mask_file``, ``*_desc-brain_mask.nii.gz``, resampled trilinear ≥ 0.5) and the template's,
    and normalized. Templates of the MNI152 family (2009c, 2009a, 6th generation) differ by
    about a millimetre, under the default 3 mm voxel.

    The normalization is done last, so the written volume has mean 0 and SD 1 inside the mask
    exactly (z-scoring is linear: the order only changes which voxels' statistics are used).

    Parameters
    ----------
    in_file, out_file
        The T1w image and the output (float32 NIfTI, the grid's affine, sform/qform code 4).
    resolution, margin
        The grid (:func:`template_grid`).
    mask_file
        Brain mask of a template-space input (ignored, with a warning, for raw input).
    in_template_space
        Whether ``in_file`` is already in an MNI152 template space.
    random_seed, n_threads
        Passed to :func:`register_to_template`.
    report_file
        Optional SVG path: :func:`plot_registration` of the image before masking (registered
        image for raw input; the input for template-space input) with the template's brain
        outline.
    space
        The template space of a template-space input (its ``space-`` entity), for the
        provenance; raw input ends up in :data:`TEMPLATE_SPACE`.

    Returns
    -------
    dict
        Provenance for the JSON sidecar (the caller adds ``Sources``): ``Resolution`` (BIDS:
        what the ``res-`` label means), ``VoxelSize`` (mm), ``GridShape``, ``GridAffine``, ``TemplateSpace``, ``Registration`` (type, ANTs options,
        matrices, ``Correlation`` with the template, seconds, seed), ``BiasFieldCorrection``,
        ``Normalization``, ``Mask``, ``BrainVoxels``, ``Resampling``, ``Seconds``.
    """
    t0 = time.perf_counter()
    resolution, margin = _check_grid_args(resolution, margin)
    shape, affine = template_grid(resolution, margin)
    _, tmask = _template_cached()
    gmask = np.asarray(grid_mask(resolution, margin).dataobj) > 0
    info: dict = {
        "TemplateSpace": (space or "MNI152 (the input's)") if in_template_space else TEMPLATE_SPACE,
        "Resolution": (f"{resolution:g} mm isotropic grid aligned with the template, cropped to "
                       "its brain's bounding box"),
        "VoxelSize": [resolution] * 3,
        "GridShape": list(shape),
        "GridAffine": affine.tolist(),
        "GridMargin": margin,
        "Resampling": (f"trilinear onto {shape[0]}x{shape[1]}x{shape[2]} voxels of "
                       f"{resolution:g} mm covering the template brain's bounding box + "
                       f"{margin} voxels, after Gaussian anti-aliasing (sigma = (factor - 1) / 2 "
                       "source voxels) normalized within the brain mask"),
    }
    if in_template_space:
        img = load_t1(in_file)
        if mask_file:
            own_img = load_t1(mask_file)
            if not same_grid(own_img, img):
                LOGGER.info("%s: brain mask on another grid than the T1w; resampled.",
                            Path(mask_file).name)
            own_src = resample_mask(own_img, img.shape, img.affine)
            own = resample_mask(own_img, shape, affine)
            mask = gmask & own
            info["Mask"] = ("intersection of the input's brain mask and the template brain mask "
                            "on the grid")
        else:
            own_src = None
            mask = gmask
            info["Mask"] = "template brain mask on the grid (no brain mask given)"
        if mask.sum() < 0.5 * gmask.sum():
            raise T1Error(
                f"Only {mask.sum()} of the template brain's {gmask.sum()} grid voxels lie inside "
                f"the brain of {in_file}: the image is not in an MNI152 template space (or its "
                "mask is wrong). Pass raw T1w images without -d to have them registered.")
        data = resample(img, shape, affine, order=1, support=own_src)
        template, _ = _template_cached()
        tpl = resample(template, shape, affine, order=1, support=np.asarray(tmask.dataobj) > 0)
        corr = round(_correlation(data[mask], tpl[mask]), 4)
        info["Registration"] = {"Type": "none (input already in a template space)",
                                "Correlation": corr}
        if corr < 0.2:
            LOGGER.warning("%s: correlation with the template on the grid is only %.2f; is it "
                           "in an MNI152 space?", Path(in_file).name, corr)
        info["BiasFieldCorrection"] = "none (done by the input's preprocessing)"
        view = img
    else:
        if mask_file:
            LOGGER.warning("%s: a brain mask is only used for template-space input; ignored.",
                           Path(mask_file).name)
        registered, reg = register_to_template(in_file, random_seed=random_seed,
                                               n_threads=n_threads)
        support = np.asarray(tmask.dataobj) > 0
        data = resample(registered, shape, affine, order=1, support=support)
        mask = gmask
        info["Registration"] = {
            "Type": "affine (12 parameters), as ClinicaDL t1-linear",
            "Method": f"ANTsPy ants.registration(type_of_transform={REGISTRATION_TYPE!r})",
            "Options": {k: list(v) if isinstance(v, tuple) else v
                        for k, v in REGISTRATION_OPTIONS.items()},
            "Template": "nilearn mni_icbm152_t1_tal_nlin_sym_09a_converted (1 mm)",
            "TemplateToInputAffine": reg["template_to_input"],
            "InputToTemplateAffine": reg["input_to_template"],
            "Correlation": reg["correlation"],
            "RandomSeed": reg["random_seed"],
            "Threads": reg["n_threads"],
            "Seconds": reg["seconds"],
        }
        info["BiasFieldCorrection"] = ("N4 (ANTsPy n4_bias_field_correction, shrink factor 4, "
                                       "4x50 iterations, head foreground mask)")
        info["Mask"] = "template brain mask on the grid"
        view = registered
    out = normalize_intensity(data, mask)
    save_nifti(_nifti(out, affine), out_file)
    info["Normalization"] = "z-score within the brain mask (mean 0, SD 1), 0 outside"
    info["BrainVoxels"] = int(mask.sum())
    if report_file:
        plot_registration(view, report_file)
    info["Seconds"] = round(time.perf_counter() - t0, 2)
    return info


# --------------------------------------------------------------------------- reportlet
#: MNI coordinates (mm) of the reportlet's slices, per display mode.
REPORT_CUTS = {"x": (-50, -30, -10, 10, 30, 50), "y": (-80, -55, -30, -5, 20, 45),
               "z": (-40, -20, 0, 15, 30, 50)}


def registration_figure(img: nb.Nifti1Image, title: str | None = None):
    """The matplotlib figure of :func:`plot_registration` (the caller closes it)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    from nilearn import plotting

    _, mask = _template_cached()
    data = np.asarray(img.get_fdata(dtype=np.float32))
    if data.ndim == 4:
        data = data[..., 0]
    values = data[np.isfinite(data) & (data != 0)]
    vmin, vmax = np.percentile(values, [0.5, 99.9]) if values.size else (0.0, 1.0)
    img = nb.Nifti1Image(np.nan_to_num(data), img.affine)
    fig, axes = plt.subplots(3, 1, figsize=(9, 4.8), facecolor="black")
    fig.subplots_adjust(left=0, right=1, bottom=0, top=1, hspace=0.02)
    for ax, (mode, cuts) in zip(axes, REPORT_CUTS.items()):
        display = plotting.plot_anat(img, display_mode=mode, cut_coords=cuts, axes=ax,
                                     vmin=float(vmin), vmax=float(vmax), dim=0, black_bg=True,
                                     annotate=True, draw_cross=False, colorbar=False,
                                     title=title if mode == "x" else None)
        display.add_contours(mask, levels=[0.5], colors="r", linewidths=0.9)
    return fig


def plot_registration(registered_img: nb.Nifti1Image | str | Path, out_file: str | Path,
                      title: str | None = None) -> Path:
    """A registration reportlet: the image with the template's brain outline over it (SVG).

    Three rows of six slices (sagittal, coronal, axial; :data:`REPORT_CUTS`, MNI mm) drawn
    with nilearn's ``plot_anat``, and the template brain mask's outline (``add_contours`` at
    0.5) in red; a good registration puts the brain's edge on the outline. Meant for the image
    *before* masking, where a misregistration shows. The SVG is self-contained (the slices are
    embedded rasters, the outlines vectors), its ids deterministic (``svg.hashsalt``), and it
    has no XML prologue: ``xaibids.reports.build.registration_section`` inlines the files named
    ``figures/*_desc-registration_T1w.svg`` of a subject into its HTML page as they are.
    """
    import matplotlib.pyplot as plt

    img = load_t1(registered_img) if isinstance(registered_img, (str, Path)) else registered_img
    with plt.rc_context({"svg.hashsalt": "xaibids", "svg.fonttype": "none", "font.size": 8}):
        fig = registration_figure(img, title)
        buf = io.BytesIO()
        fig.savefig(buf, format="svg", facecolor="black", metadata={"Date": None})
        plt.close(fig)
    text = buf.getvalue().decode("utf-8")
    start = text.find("<svg")
    out_file = Path(out_file)
    out_file.parent.mkdir(parents=True, exist_ok=True)
    out_file.write_text(text[start:] if start >= 0 else text)
    return out_file
