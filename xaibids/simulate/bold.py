"""``bold``: the RNN E/I dynamics of Strock et al. 2025 painted into the voxels of a real atlas.

Each atlas region is one node of the small-world RNN of :mod:`xaibids.simulate.rnn` (Strock et al. 2025,
Materials and Methods). By default the network is stable (global coupling 0.8, 50 burn-in steps)
and the class effect is physiological (``excitability="local"``): the affected regions' recurrent
self-excitation is raised, so their BOLD signal fluctuates more and more slowly, within the
BOLD band, and drives their graph neighbours a little more; nothing drifts, so fMRIPrep's
standard confound regression keeps the effect. Strock et al. 2025's own effect (a drift to a
saturated level in a critical network) is ``--excitability input --coupling 1 --burn-in 0
--severity 0.3``. Each region's noise-free BOLD signal is written into every voxel of the region on
a coarse grid of nilearn's MNI152 template, and the image gets what real preprocessed data
have: spatially smooth noise, a slow drift, intensity changes caused by head motion, and a
brain mask. The result is written as fMRIPrep-style derivatives (preprocessed BOLD, brain
mask, confounds TSV + JSON with fMRIPrep's column names) so that the whole participant level of
xaibids (ROI extraction with confound regression) runs on it.

Per voxel ``v`` in region ``r`` and volume ``t``::

    z(t, v)   = s_r(t) / sqrt(ρ_s) + σ · n(t, v)        (σ from the SNR, n spatially smooth)
    BOLD(t,v) = B(v) · (1 + psc/100 · z(t, v) + m(t, v)/100) + drift(t, v) − ∇B(v) · d(t, v)

with ``s_r`` the HRF-convolved RNN state of region ``r`` (0 outside the atlas and in the
ventricles), ``ρ_s`` the largest regional signal variance of a class-0 reference run (as in
``rnn-ei``), ``σ = 10^(−SNR/20)`` so that ``SNR`` is the per-voxel signal-to-noise ratio in dB,
``B`` a baseline image (the template's intensities mapped to 600–1000), and ``d(t, v)`` the
displacement of voxel ``v`` under the subject's rigid motion at volume ``t`` (translations plus
small-angle rotations about the grid centre): the first-order intensity change of moving the
image, and ``m(t, v)`` what realignment leaves of motion (:func:`motion_artifacts`: spin
history and a widespread drop after movements, ``--motion-artifact`` percent per mm). Each
subject moves to its own degree: the motion of subject ``i`` is ``motion_scale`` times a
log-normal level (SD of its log :data:`MOTION_LEVEL_SD`), so that mean framewise displacements
spread as in real cohorts (5-95 % of subjects 0.06-0.44 mm, median 0.16, at the defaults).
The motion parameters written to the confounds are these translations (mm) and rotations (rad).

The confounds are computed from the images as fMRIPrep computes them: white-matter and CSF
signals from unlabeled bright voxels and the ventricles, which carry no neural signal and so no
class effect; the global signal (which does); DVARS, FD, aCompCor/tCompCor, cosines; the motion
parameters with their expansions, whose intensity artefacts are in the voxels.

Choices not fixed by the seeds (all parameters): default atlas Harvard-Oxford (maximum
probability at 25 %, via :func:`xaibids.features.atlases.load_atlas`), 5 mm voxels, 100
volumes, TR 2 s (one RNN step per volume, HRF sampled at the TR), 2 % signal change per unit,
noise smoothness FWHM 8 mm, SNR 0 dB. Regions whose names contain "ventric" carry no neural
signal (they are the CSF mask of the confounds); regions that vanish on the coarse grid are
left out of the network (listed with ``n_voxels`` 0 in ``groundtruth_features.tsv``).
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

import nibabel as nb
import numpy as np
import pandas as pd
from scipy import ndimage

from xaibids import __version__
from xaibids.simulate import bidsio
from xaibids.simulate.base import balanced_labels, stream
from xaibids.simulate.rnn import (
    build_network,
    change_text,
    clean_signals,
    dynamics_text,
    noise_sd_for_snr,
    reference_signal_variance,
)
from xaibids.simulate.write import TOOL, group_sidecar, participants_frame

SPACE = "MNI152NLin6Asym"
RES_LABEL = "2"  # fMRIPrep's usual label; the true grid is described by ``Resolution``
TASK = "rest"
MOTION = ["trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z"]
N_COMPCOR = 5
FD_THRESHOLD = 0.5  # fMRIPrep's defaults for motion_outlier columns
DVARS_THRESHOLD = 1.5
#: SD of the log of each subject's motion level (a log-normal factor on ``motion_scale``):
#: some subjects move little, a few much more, as in real cohorts.
MOTION_LEVEL_SD = 0.6
NON_NEURAL = re.compile(r"ventric", re.IGNORECASE)
FMRIPREP_BIDSIGNORE = ["*_desc-confounds_timeseries.tsv", "*_desc-confounds_timeseries.json",
                       "groundtruth*.tsv", "simulation.json", "rnn_*.tsv"]


@functools.lru_cache(maxsize=4)
def _load_atlas(spec: str):
    from xaibids.features.atlases import load_atlas

    return load_atlas(spec)


@functools.lru_cache(maxsize=4)
def _template_grid(voxel_size: int):
    from nilearn import datasets

    mask = datasets.load_mni152_brain_mask(resolution=voxel_size, threshold=0.2)
    template = datasets.load_mni152_template(resolution=voxel_size)
    return mask, template


def region_grid(atlas, mask_img) -> np.ndarray:
    """Atlas labels on the template grid (nearest neighbour), 0 outside the brain mask."""
    from nilearn.image import resample_to_img

    resampled = resample_to_img(atlas.img, mask_img, interpolation="nearest",
                                force_resample=True, copy_header=True)
    labels = np.rint(np.asarray(resampled.dataobj)).astype(np.int32)
    labels[np.asarray(mask_img.dataobj) <= 0] = 0
    return labels


def _smooth_unit_noise(rng, shape, n, sigma_vox) -> np.ndarray:
    """``n`` volumes of Gaussian white noise smoothed with ``sigma_vox`` and scaled to unit SD."""
    impulse = np.zeros(tuple(int(6 * sigma_vox) * 2 + 1 for _ in shape))
    impulse[tuple(s // 2 for s in impulse.shape)] = 1.0
    gain = float(np.sqrt((ndimage.gaussian_filter(impulse, sigma_vox) ** 2).sum()))
    noise = rng.standard_normal((n,) + tuple(shape))
    return ndimage.gaussian_filter(noise, (0.0,) + (sigma_vox,) * len(shape), mode="wrap") / gain


def motion_parameters(rng, n: int, scale: float) -> np.ndarray:
    """Six rigid-body parameters ``(n, 6)``: slow random walks plus a few sudden jumps.

    Translations in mm, rotations in radians, zero at the first (reference) volume.
    """
    steps = np.concatenate([rng.normal(0, 0.03, (n, 3)), rng.normal(0, 0.0005, (n, 3))], axis=1)
    jumps = rng.random(n) < 0.03
    steps[jumps, :3] += rng.normal(0, 0.3, (int(jumps.sum()), 3))
    steps[jumps, 3:] += rng.normal(0, 0.004, (int(jumps.sum()), 3))
    steps[0] = 0.0
    return scale * np.cumsum(steps, axis=0)


def framewise_displacement(motion: np.ndarray) -> np.ndarray:
    """Power et al. 2012's FD ``(T,)`` in mm (rotations on a 50 mm sphere), 0 at volume 0."""
    return np.r_[0.0, np.abs(np.diff(motion[:, :3], axis=0)).sum(axis=1)
                 + 50.0 * np.abs(np.diff(motion[:, 3:], axis=0)).sum(axis=1)]


def motion_artifacts(rng, motion: np.ndarray, brain: np.ndarray, voxel_size: float,
                     amplitude: float, tr: float) -> np.ndarray:
    """What realignment leaves of head motion, ``(T, V)`` in percent signal change.

    Two effects of real data, each with a spatially smooth gain (FWHM 20 mm) over the voxels of
    the ``brain`` mask, so that region means keep them:

    - **spin history** (Friston et al. 1996, "Movement-related effects in fMRI time-series",
      MRM 35:346-355): a change proportional to the movement since the previous volume, with a
      signed gain per motion parameter (rotations in mm on a 50 mm sphere). It is linear in the
      ``_derivative1`` motion columns, which every ``--confounds`` strategy but ``none``
      regresses out;
    - **a widespread drop after movements** (Power et al. 2014, "Methods to detect,
      characterize, and remove motion artifact in resting state fMRI", NeuroImage 84:320-341:
      signal decreases across the brain that follow large FD and last about 8-10 s): ``−FD``
      convolved with a 4 s exponential decay, with a positive gain (mean 1). It is in white
      matter and CSF too, so their mean signals (``simple``), aCompCor (``compcor``) and
      scrubbing capture it.

    ``amplitude`` is the percent change per mm of each (0: none). Hand-written, as the rest of
    this image model.
    """
    n, n_vox = motion.shape[0], int(brain.sum())
    if amplitude == 0:
        return np.zeros((n, n_vox))
    sigma = 20.0 / 2.3548 / voxel_size
    gains = np.stack([ndimage.gaussian_filter(rng.standard_normal(brain.shape), sigma)[brain]
                      for _ in range(7)], axis=1)  # (V, 7)
    gains = (gains - gains.mean(axis=0)) / gains.std(axis=0)
    step = np.diff(motion, axis=0, prepend=motion[:1]) * np.r_[np.ones(3), np.full(3, 50.0)]
    spin_history = step @ gains[:, :6].T  # (T, V)
    decay = np.exp(-np.arange(n) * tr / 4.0)
    drop = np.convolve(framewise_displacement(motion), decay)[:n]
    widespread = -drop[:, None] * np.clip(1.0 + 0.3 * gains[:, 6], 0.1, None)[None, :]
    return amplitude * (spin_history + widespread)


def _expand(frame: pd.DataFrame, names: list[str]) -> pd.DataFrame:
    """fMRIPrep's ``_derivative1``, ``_power2``, ``_derivative1_power2`` columns."""
    cols = {}
    for name in names:
        x = frame[name].to_numpy()
        d = np.r_[np.nan, np.diff(x)]
        cols[name] = x
        cols[f"{name}_derivative1"] = d
        cols[f"{name}_power2"] = x**2
        cols[f"{name}_derivative1_power2"] = d**2
    return pd.DataFrame(cols)


def cosine_basis(n: int, tr: float, period_cut: float = 128.0) -> np.ndarray:
    """fMRIPrep's discrete cosine high-pass regressors (``cosineXX``), ``(n, order)``."""
    order = int(np.floor(2 * n * tr / period_cut))
    t = np.arange(n)
    return np.stack([np.sqrt(2.0 / n) * np.cos(np.pi / n * (t + 0.5) * k)
                     for k in range(1, order + 1)], axis=1) if order else np.empty((n, 0))


def _compcor(ts: np.ndarray, basis: np.ndarray, n_comp: int):
    """Top principal components of ``ts`` (time × voxels) after removing mean, trend and
    ``basis``: ``(components (T, k), singular values (k,), total sum of squares)``."""
    from scipy.linalg import eigh

    n = ts.shape[0]
    design = np.column_stack([np.ones(n), np.linspace(-1, 1, n), basis])
    q, _ = np.linalg.qr(design)
    resid = ts - q @ (q.T @ ts)
    rank = min(n - design.shape[1], resid.shape[1])
    k = min(n_comp, rank)
    if k <= 0:
        return np.zeros((n, 0)), np.zeros(0), 0.0
    # eigenvectors of the smaller Gram matrix; only the top k are computed
    small_time = resid.shape[1] >= n
    gram = resid @ resid.T if small_time else resid.T @ resid
    m = gram.shape[0]
    evals, evecs = eigh(gram, subset_by_index=[m - k, m - 1])
    evals, evecs = np.clip(evals[::-1], 0, None), evecs[:, ::-1]
    s = np.sqrt(evals)
    u = evecs if small_time else resid @ evecs / np.where(s > 0, s, 1.0)
    u = u * np.sign(u[np.abs(u).argmax(axis=0), range(k)])  # fixed signs
    return u, s, float(np.trace(gram))


def confounds_table(data: np.ndarray, masks: dict[str, np.ndarray], motion: np.ndarray,
                    displacement_rms: np.ndarray, tr: float) -> tuple[pd.DataFrame, dict]:
    """fMRIPrep-style confounds (columns as nilearn's ``load_confounds`` reads them) + JSON.

    ``data`` is ``(T, X, Y, Z)``; ``masks`` holds boolean ``brain``, ``csf``, ``wm``.
    """
    n = data.shape[0]
    brain = data[:, masks["brain"]]
    tissue = pd.DataFrame({
        "global_signal": brain.mean(axis=1),
        "csf": data[:, masks["csf"]].mean(axis=1),
        "white_matter": data[:, masks["wm"]].mean(axis=1),
    })
    frames = [_expand(tissue, list(tissue.columns)),
              pd.DataFrame({"csf_wm": data[:, masks["csf"] | masks["wm"]].mean(axis=1)})]
    dvars = np.r_[np.nan, np.sqrt((np.diff(brain, axis=0) ** 2).mean(axis=1))]
    std_dvars = dvars / np.nanmedian(dvars)
    mot = pd.DataFrame(motion, columns=MOTION)
    fd = np.r_[np.nan, framewise_displacement(motion)[1:]]
    frames.append(pd.DataFrame({"std_dvars": std_dvars, "dvars": dvars,
                                "framewise_displacement": fd,
                                "rmsd": np.r_[np.nan, displacement_rms[1:]]}))
    basis = cosine_basis(n, tr)
    sidecar: dict = {}
    comp_cols = {}
    tvar = brain.var(axis=0)
    top = np.zeros(masks["brain"].sum(), dtype=bool)
    top[np.argsort(tvar)[-max(1, int(0.02 * len(tvar))):]] = True
    for prefix, ts, mask_name, method in (
            ("t", brain[:, top], None, "tCompCor"),
            ("c", data[:, masks["csf"]], "CSF", "aCompCor"),
            ("w", data[:, masks["wm"]], "WM", "aCompCor"),
            ("a", data[:, masks["csf"] | masks["wm"]], "combined", "aCompCor")):
        comps, sing, total = _compcor(ts, basis, N_COMPCOR)
        var = sing**2 / total if total > 0 else np.zeros_like(sing)
        for j in range(comps.shape[1]):
            name = f"{prefix}_comp_cor_{j:02d}"
            comp_cols[name] = comps[:, j]
            entry = {"Method": method, "Retained": True, "SingularValue": float(sing[j]),
                     "VarianceExplained": float(var[j]),
                     "CumulativeVarianceExplained": float(var[: j + 1].sum())}
            if mask_name:
                entry["Mask"] = mask_name
            sidecar[name] = entry
    frames.append(pd.DataFrame(comp_cols))
    frames.append(pd.DataFrame(basis, columns=[f"cosine{k:02d}" for k in range(basis.shape[1])]))
    for k in range(basis.shape[1]):
        sidecar[f"cosine{k:02d}"] = {"Method": "DCT high-pass", "CutoffPeriod": 128.0}
    frames.append(_expand(mot, MOTION))
    outliers = np.nonzero((np.nan_to_num(fd) > FD_THRESHOLD)
                          | (np.nan_to_num(std_dvars) > DVARS_THRESHOLD))[0]
    spikes = np.zeros((n, len(outliers)))
    spikes[outliers, np.arange(len(outliers))] = 1.0
    frames.append(pd.DataFrame(spikes, columns=[f"motion_outlier{j:02d}"
                                                for j in range(len(outliers))]))
    table = pd.concat(frames, axis=1)
    for name, text in (("global_signal", "Mean BOLD signal in the brain mask."),
                       ("csf", "Mean BOLD signal in the ventricles (CSF mask)."),
                       ("white_matter", "Mean BOLD signal in the white-matter mask."),
                       ("framewise_displacement",
                        "Power's framewise displacement (mm), 50 mm head radius."),
                       ("std_dvars", "DVARS divided by its median (approximate standardization).")):
        sidecar[name] = {"Description": text}
    for name in MOTION:
        sidecar[name] = {"Description": "Simulated rigid-body motion parameter.",
                         "Units": "mm" if name.startswith("trans") else "rad"}
    return table, sidecar


def _displacements(motion: np.ndarray, coords: np.ndarray) -> np.ndarray:
    """Displacement ``(T, V, 3)`` in mm of voxel centres ``coords`` (V, 3, relative to centre)."""
    trans = motion[:, None, :3]
    rot = motion[:, None, 3:]
    return trans + np.cross(rot, coords[None, :, :])


def _check_options(n_subjects, voxel_size, n_timepoints, tr, motion_scale, motion_artifact):
    if n_subjects < 2:
        raise ValueError("--n-subjects must be at least 2 (one per class).")
    if not 1 <= int(voxel_size) <= 10 or int(voxel_size) != voxel_size:
        raise ValueError("--voxel-size must be a whole number of mm between 1 and 10.")
    if n_timepoints < 10:
        raise ValueError("--n-timepoints must be at least 10 for the bold kind.")
    if tr <= 0:
        raise ValueError("--tr must be positive.")
    if motion_scale < 0 or motion_artifact < 0:
        raise ValueError("--motion-scale and --motion-artifact must be 0 (no motion) or "
                         "positive.")


def simulate_bold(root: Path, n_subjects: int = 40, seed: int = 0,
                  atlas: str = "harvard-oxford", voxel_size: int = 5, n_timepoints: int = 100,
                  tr: float = 2.0, snr_db: float = 0.0, prevalence: float = 0.05,
                  severity: float = 0.5, k: int = 10, rewire_p: float = 0.1,
                  neural_noise: float = 0.1, burn_in: int = 50, smoothness: float = 8.0,
                  signal_change: float = 2.0, motion_scale: float = 1.0,
                  motion_artifact: float = 5.0,
                  affected: str | None = None, excitability: str = "local",
                  coupling: float = 0.8) -> dict:
    """Write the ``bold`` dataset into the empty (staging) folder ``root``; return its params."""
    _check_options(n_subjects, voxel_size, n_timepoints, tr, motion_scale, motion_artifact)
    voxel_size = int(voxel_size)
    atl = _load_atlas(str(atlas))
    mask_img, template_img = _template_grid(voxel_size)
    shape = mask_img.shape
    affine = mask_img.affine
    brain = np.asarray(mask_img.dataobj) > 0
    labels_grid = region_grid(atl, mask_img)

    # regions: all atlas labels, with their voxel counts on this grid
    regions = atl.labels.copy().reset_index(drop=True)
    counts = np.bincount(labels_grid.ravel(), minlength=int(regions["index"].max()) + 1)
    regions["n_voxels"] = counts[regions["index"].to_numpy()]
    regions["neural"] = ~regions["name"].str.contains(NON_NEURAL) & (regions["n_voxels"] > 0)
    nodes = regions.index[regions["neural"]].to_numpy()
    if len(nodes) < 3:
        raise ValueError(f"The atlas {atlas} has fewer than 3 regions on the {voxel_size} mm grid.")
    node_names = regions.loc[nodes, "name"].tolist()

    rng0 = stream(seed, 0)
    labels = balanced_labels(n_subjects, rng0)
    chosen = None
    if affected:
        wanted = [a.strip() for a in affected.split(",") if a.strip()]
        unknown = [w for w in wanted if w not in node_names]
        if unknown:
            raise ValueError(
                f"--affected region(s) {unknown} are not regions of the atlas {atlas} on the "
                f"{voxel_size} mm grid; use names from its labels (e.g. {node_names[:3]}).")
        chosen = np.array(sorted(node_names.index(w) for w in wanted))
    network = build_network(len(nodes), k, rewire_p, prevalence, severity, rng0, affected=chosen,
                            excitability=excitability, coupling=coupling)
    signals = clean_signals(network, labels, seed, n_timepoints, tr, neural_noise, burn_in)
    signal_var = reference_signal_variance(network, seed, tr, neural_noise, burn_in,
                                           n_timepoints)
    noise_sd = noise_sd_for_snr(1.0, snr_db)  # signals are divided by sqrt(signal_var)

    # voxel → node index (−1: no neural signal)
    node_of_label = np.full(counts.shape[0], -1)
    node_of_label[regions.loc[nodes, "index"].to_numpy()] = np.arange(len(nodes))
    vox_node = node_of_label[labels_grid[brain]]
    in_region = vox_node >= 0

    template = np.asarray(template_img.dataobj, dtype=float)
    tmin, tmax = np.percentile(template[brain], [1, 99])
    baseline = np.zeros(shape)
    baseline[brain] = 600.0 + 400.0 * np.clip((template[brain] - tmin) / (tmax - tmin), 0, 1)
    grad = np.stack(np.gradient(baseline, float(voxel_size)), axis=-1)[brain]  # (V, 3)
    ijk = np.argwhere(brain)
    xyz = nb.affines.apply_affine(affine, ijk)
    coords = xyz - xyz.mean(axis=0)

    # tissue masks for the confounds
    csf_labels = regions.loc[regions["name"].str.contains(NON_NEURAL), "index"].to_numpy()
    csf = np.isin(labels_grid, csf_labels) & brain
    unlabeled = brain & (labels_grid == 0)
    wm = unlabeled & (template >= np.percentile(template[unlabeled], 50)) if unlabeled.any() \
        else np.zeros(shape, bool)
    if not csf.any():  # atlas without ventricles: darkest unlabeled voxels
        csf = unlabeled & (template <= np.percentile(template[unlabeled], 15))
    masks = {"brain": brain, "csf": csf, "wm": wm}

    gt_regions = [node_names[j] for j in network.affected]
    gt_labels = regions.loc[nodes[network.affected], "index"].to_numpy()
    gt_mask = (np.isin(labels_grid, gt_labels) & brain).astype(np.uint8)

    subj = bidsio.subject_labels(n_subjects)
    resolution = {RES_LABEL: f"{voxel_size} mm isotropic grid of nilearn's MNI152 template "
                             f"({shape[0]}x{shape[1]}x{shape[2]}); the label follows "
                             "fMRIPrep's naming, the voxel size is the true one."}
    deriv = root / "derivatives" / "fmriprep"
    sigma_vox = smoothness / 2.3548 / voxel_size
    for i, lab in enumerate(subj):
        rng = stream(seed, 3, i)
        z = np.zeros((n_timepoints, int(brain.sum())))
        z[:, in_region] = signals[i][:, vox_node[in_region]] / np.sqrt(signal_var)
        z += noise_sd * _smooth_unit_noise(rng, shape, n_timepoints, sigma_vox)[:, brain]
        motion_rng = stream(seed, 6, i)
        level = float(np.exp(MOTION_LEVEL_SD * motion_rng.standard_normal()))
        motion = motion_parameters(rng, n_timepoints, motion_scale * level)
        disp = _displacements(motion, coords)  # (T, V, 3)
        drift_field = ndimage.gaussian_filter(rng.standard_normal(shape), 3.0)[brain]
        drift_field /= drift_field.std() or 1.0
        ramp = np.linspace(-0.5, 0.5, n_timepoints)[:, None]
        vox = (baseline[brain] * (1.0 + signal_change / 100.0 * z)
               + baseline[brain] * 0.01 * drift_field * ramp
               - np.einsum("tvk,vk->tv", disp, grad)
               + baseline[brain] / 100.0 * motion_artifacts(motion_rng, motion, brain,
                                                            voxel_size, motion_artifact, tr))
        data = np.zeros((n_timepoints,) + shape, dtype=np.int16)
        data[:, brain] = np.clip(np.rint(vox), 0, 32767).astype(np.int16)
        volume = np.moveaxis(data, 0, -1)

        prefix = f"sub-{lab}_task-{TASK}_space-{SPACE}_res-{RES_LABEL}"
        func = deriv / f"sub-{lab}" / "func"
        bidsio.save_nifti(_img4d(volume, affine, voxel_size, tr),
                          func / f"{prefix}_desc-preproc_bold.nii.gz")
        bidsio.write_json(func / f"{prefix}_desc-preproc_bold.json", {
            "RepetitionTime": tr, "TaskName": TASK, "SkullStripped": False,
            "Resolution": resolution,
            "Sources": [f"bids:raw:sub-{lab}/func/sub-{lab}_task-{TASK}_bold.nii.gz"],
            "Description": "Simulated preprocessed BOLD (xaibids-simulate bold)."})
        bidsio.save_nifti(_img3d(brain.astype(np.uint8), affine),
                          func / f"{prefix}_desc-brain_mask.nii.gz")
        bidsio.write_json(func / f"{prefix}_desc-brain_mask.json",
                          {"Type": "Brain", "Resolution": resolution})
        bidsio.save_nifti(_img3d(gt_mask, affine), func / f"{prefix}_desc-groundtruth_mask.nii.gz")
        bidsio.write_json(func / f"{prefix}_desc-groundtruth_mask.json", {
            "Type": "ROI", "Resolution": resolution,
            "Description": "Ground truth: voxels of the regions whose excitability differs "
                           "between the groups (" + "; ".join(gt_regions) + ")."})
        rms = np.sqrt((np.diff(disp, axis=0) ** 2).sum(axis=2).mean(axis=1))
        conf, conf_json = confounds_table(data.astype(float), masks, motion, np.r_[0.0, rms], tr)
        bidsio.write_tsv(conf, func / f"sub-{lab}_task-{TASK}_desc-confounds_timeseries.tsv")
        bidsio.write_json(func / f"sub-{lab}_task-{TASK}_desc-confounds_timeseries.json",
                          conf_json)

        raw_img = _downsample(volume, affine, voxel_size, tr)
        rfunc = root / f"sub-{lab}" / "func"
        bidsio.save_nifti(raw_img, rfunc / f"sub-{lab}_task-{TASK}_bold.nii.gz")
        bidsio.write_json(rfunc / f"sub-{lab}_task-{TASK}_bold.json",
                          {"RepetitionTime": tr, "TaskName": TASK})

    params = dict(n_subjects=n_subjects, seed=seed, atlas=str(atlas), atlas_label=atl.name,
                  voxel_size=voxel_size, n_timepoints=n_timepoints, tr=tr, snr_db=snr_db,
                  prevalence=prevalence, severity=severity, k=k, rewire_p=rewire_p,
                  neural_noise=neural_noise, burn_in=burn_in, excitability=excitability,
                  coupling=coupling, smoothness=smoothness,
                  signal_change=signal_change, motion_scale=motion_scale,
                  motion_level_sd=MOTION_LEVEL_SD, motion_artifact=motion_artifact,
                  affected=affected, n_nodes=len(nodes),
                  spectral_radius=network.spectral_radius,
                  reference_signal_variance=signal_var, voxel_noise_sd=noise_sd)
    _write_bold_metadata(root, deriv, params, labels, subj, regions, nodes, network, gt_regions,
                         n_timepoints)
    return params


def _img4d(volume, affine, voxel_size, tr) -> nb.Nifti1Image:
    img = nb.Nifti1Image(volume, affine)
    img.header.set_xyzt_units("mm", "sec")
    img.header.set_zooms((float(voxel_size),) * 3 + (float(tr),))
    img.header.set_slope_inter(1.0, 0.0)
    return img


def _img3d(data, affine) -> nb.Nifti1Image:
    img = nb.Nifti1Image(data, affine)
    img.header.set_xyzt_units("mm")
    return img


def _downsample(volume: np.ndarray, affine: np.ndarray, voxel_size: int, tr: float):
    """The "native" raw image: 2 × 2 × 2 block means of the preprocessed one."""
    sx, sy, sz = (s // 2 * 2 for s in volume.shape[:3])
    v = volume[:sx, :sy, :sz].astype(float)
    v = v.reshape(sx // 2, 2, sy // 2, 2, sz // 2, 2, -1).mean(axis=(1, 3, 5))
    new_affine = affine.copy()
    new_affine[:3, :3] *= 2
    new_affine[:3, 3] += affine[:3, :3] @ np.full(3, 0.5)
    return _img4d(np.rint(v).astype(np.int16), new_affine, 2 * voxel_size, tr)


def _write_bold_metadata(root, deriv, params, labels, subj, regions, nodes, network, gt_regions,
                         n_timepoints) -> None:
    from xaibids.simulate.write import command_line

    reproduce = command_line("bold", params)
    levels = ("control", "hyperexcitable")
    bidsio.write_dataset_description(root, "xaibids simulated dataset: bold", "raw", TOOL,
                                     "Simulated resting-state BOLD with known ground truth.")
    bidsio.write_participants(
        root, participants_frame(labels, levels, subj),
        group_sidecar(levels, ("typical excitability in every region",
                               f"excitability raised by δ = {params['severity']:g} in the "
                               "ground-truth regions")))
    bidsio.write_json(root / f"task-{TASK}_bold.json", {"TaskName": TASK})
    bidsio.write_dataset_description(
        deriv, "xaibids simulated fMRIPrep-style derivatives", "derivative", TOOL,
        "Simulated preprocessed BOLD, brain masks and confounds in fMRIPrep's layout.",
        extra={"DatasetLinks": {"raw": "../../"},
               "SourceDatasets": [{"URL": "bids:raw:"}]})
    bidsio.write_bidsignore(deriv, FMRIPREP_BIDSIGNORE)
    bidsio.write_json(deriv / "simulation.json", {
        "Kind": "bold", "Tool": TOOL, "Version": __version__, "CommandLine": reproduce,
        "Parameters": params})
    node_of = {int(r): j for j, r in enumerate(nodes)}
    feats = pd.DataFrame({
        "feature": regions["name"],
        "index": regions["index"],
        "relevant": [int(node_of.get(r, -1) in set(network.affected.tolist()))
                     for r in regions.index],
        "n_voxels": regions["n_voxels"],
        "node": [f"{node_of[r] + 1}" if r in node_of else "n/a" for r in regions.index],
    })
    bidsio.write_tsv(feats, deriv / "groundtruth_features.tsv")
    width = max(3, len(str(len(nodes))))
    adj_names = [f"node{j + 1:0{width}d}" for j in range(len(nodes))]
    bidsio.write_tsv(pd.DataFrame(network.adjacency.astype(int), columns=adj_names)
                     .assign(node=adj_names)[["node"] + adj_names], deriv / "rnn_adjacency.tsv")
    rows = [{"participant_id": f"sub-{lab}", "group": levels[labels[i]], "onset": 0,
             "duration": n_timepoints, "relevant_features": ";".join(gt_regions)}
            for i, lab in enumerate(subj)]
    bidsio.write_tsv(pd.DataFrame(rows), deriv / "groundtruth.tsv")
    text = _bold_readme(params, gt_regions, reproduce, change_text(network, params["severity"]))
    bidsio.write_text(root / "README", text)
    bidsio.write_text(deriv / "README", text)


def _bold_readme(params: dict, gt_regions: list[str], reproduce: str, change: str) -> str:
    return f"""# xaibids simulated dataset: `bold`

Generated by `{TOOL}` (xaibids {__version__}) with

    {reproduce}

The small-world RNN E/I-imbalance model of Strock et al. 2025 (Materials and Methods; see `rnn-ei`) with
one node per region of the atlas `{params['atlas']}` ({params['n_nodes']} regions with neural
signal on the grid), painted into the voxels of each region on a {params['voxel_size']} mm grid of
nilearn's MNI152 template, with spatially smooth noise (FWHM {params['smoothness']:g} mm, per-voxel
SNR {params['snr_db']:g} dB), a slow drift, intensity changes from simulated head motion (each
subject moving to its own degree, with the spin-history changes and widespread signal drops
after movements that realignment leaves, {params['motion_artifact']:g} % per mm; the
motion columns of the confounds and the white-matter and CSF signals capture them, so
`--confounds none` keeps them) and a brain mask. Dynamics: `{dynamics_text(params['excitability'], params['coupling'])}`
(global coupling {params['coupling']:g}, {params['burn_in']} burn-in steps, intrinsic noise SD
{params['neural_noise']:g}, SPM's canonical HRF). In group `hyperexcitable` {change} Group
`control` has the network unchanged. {params['n_timepoints']} volumes, TR {params['tr']:g} s.
The confounds are computed from the images: white matter and CSF from voxels without neural
signal (so without the class effect), the global signal from the whole brain mask.

Ground-truth regions: {'; '.join(gt_regions)}.

## Layout

- `participants.tsv`: `participant_id`, `group` (`control` / `hyperexcitable`).
- `sub-<label>/func/sub-<label>_task-rest_bold.nii.gz`: the raw image (a 2 × 2 × 2 block
  average of the preprocessed one, standing in for native space).
- `derivatives/fmriprep/sub-<label>/func/`, fMRIPrep layout:
  - `*_space-MNI152NLin6Asym_res-2_desc-preproc_bold.nii.gz` (+ JSON with `RepetitionTime`);
    the `res-2` label follows fMRIPrep's naming, the true voxel size is in `Resolution` and
    the header. The grid is nilearn's MNI152 template resampled; at this voxel size it is
    treated as MNI152NLin6Asym, the space of the atlas;
  - `*_desc-brain_mask.nii.gz`;
  - `*_desc-confounds_timeseries.tsv` + JSON: fMRIPrep column names (`trans_x` … `rot_z` with
    `_derivative1`, `_power2`, `_derivative1_power2`; `global_signal`, `csf`,
    `white_matter` with the same expansions; `framewise_displacement`, `dvars`, `std_dvars`,
    `rmsd`; `t_`/`c_`/`w_`/`a_comp_cor_XX` with their JSON entries; `cosineXX`;
    `motion_outlierXX` for FD > 0.5 mm or std DVARS > 1.5), readable by nilearn's
    `load_confounds`;
  - `*_desc-groundtruth_mask.nii.gz`: **ground truth**, 1 in the voxels of the
    ground-truth regions.
- `derivatives/fmriprep/groundtruth_features.tsv`: **ground truth** per atlas region:
  `feature` (region name), `index` (atlas label), `relevant` (1 = excitability differs
  between groups), `n_voxels` on the grid, `node` (RNN node, `n/a` for regions without neural
  signal: ventricles and regions too small for the grid).
- `derivatives/fmriprep/groundtruth.tsv`: per participant `group`, `onset`, `duration` (all
  volumes) and `relevant_features` (`;`-separated region names).
- `derivatives/fmriprep/rnn_adjacency.tsv`, `simulation.json`: graph and all parameters.

The same command with the same seed gives byte-identical files.
"""
