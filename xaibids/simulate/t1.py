"""``t1-atrophy``: MNI152 T1w volumes with class-dependent atrophy in chosen atlas regions.

The setting of Kan et al. 2020 (a 3D CNN on whole T1 volumes, maps ranked by atlas region) with a
known answer. Every subject's image is nilearn's MNI152 template (skull-stripped, intensities
mapped to 0–1000) on a ``voxel_size`` mm grid, changed as follows (per voxel ``v``)::

    I(v) = 1000 · T(v) · (1 − severity · S(v) · [group = atrophy]) · (1 + bias · f(v))
    S    = G_edge * M              (M: union of the affected regions, G_edge: Gaussian, FWHM
                                    ``edge_fwhm`` mm — a smooth-edged atrophy map, S ≈ 1 inside
                                    large regions, falling to 0 over a few mm outside)
    f    = unit-SD Gaussian random field (FWHM 40 mm), drawn per subject (between-subject
           intensity variability, like a residual bias field)

then Rician noise: ``|I + n₁ + i·n₂|`` with ``n₁, n₂ ~ N(0, σ²)``, ``σ = noise · P99(I in the
brain)``. The intensity loss stands for the volume loss of atrophy as seen after spatial
normalization (a lower grey-matter partial volume), which is what a voxel-wise classifier of
normalized T1w images sees.

Two outputs (``space``):

* ``raw``: ``sub-<l>/anat/sub-<l>_T1w.nii.gz`` as a scanner gives it: the same image moved by a
  small per-subject rigid transform (rotations ≤ 2°, translations ≤ 2 mm per axis, uniform,
  scaled by ``jitter``), resampled with trilinear interpolation before the noise is added. The
  header keeps the template grid's affine, so the anatomy sits slightly off the template.
* ``template``: fMRIPrep-style ``derivatives/fmriprep/sub-<l>/anat/
  sub-<l>_space-MNI152NLin2009cAsym_desc-preproc_T1w.nii.gz`` (no jitter: a perfect
  registration) with ``_desc-brain_mask.nii.gz`` — what ``xaibids --features t1`` reads.

``both`` (default) writes the two. The template is nilearn's bundled ICBM152 2009a symmetric
template; the files carry fMRIPrep's default space label ``MNI152NLin2009cAsym`` (the releases
differ by about a millimetre); the atlas (Harvard-Oxford by default, FSL's MNI152NLin6Asym) is
resampled onto the grid with nearest-neighbour interpolation.
"""

from __future__ import annotations

import difflib
import shlex
from collections.abc import Sequence
from pathlib import Path

import nibabel as nb
import numpy as np
import pandas as pd
from scipy import ndimage

from xaibids import __version__
from xaibids.simulate import bidsio
from xaibids.simulate.base import balanced_labels, stream
from xaibids.simulate.write import TOOL, group_sidecar, participants_frame

SPACE = "MNI152NLin2009cAsym"
DERIVATIVE = "fmriprep"
LEVELS = ("control", "atrophy")
DEFAULT_REGIONS = ("Left_Hippocampus", "Right_Hippocampus", "Left_Precuneous_Cortex")
SPACES = ("raw", "template", "both")
BIAS_FWHM = 40.0
MAX_ROTATION_DEG = 2.0
MAX_TRANSLATION_MM = 2.0
T1_BIDSIGNORE = ["groundtruth*.tsv", "simulation.json", "*_regions.tsv", "*_regions.json"]
#: Options in CLI order (``xaibids.simulate.KIND_OPTIONS``).
OPTIONS = ("atlas", "regions", "severity", "voxel_size", "space", "edge_fwhm", "bias", "noise",
           "jitter")


def parse_regions(regions) -> list[str]:
    """Region names from a sequence or a comma-separated string (duplicates dropped)."""
    if regions is None:
        return list(DEFAULT_REGIONS)
    if isinstance(regions, str):
        regions = regions.split(",")
    out: list[str] = []
    for name in regions:
        for part in str(name).split(","):
            part = part.strip()
            if part and part not in out:
                out.append(part)
    if not out:
        raise ValueError("--regions needs at least one region name.")
    return out


def command_line(params: dict) -> str:
    """The ``xaibids-simulate t1-atrophy`` call that reproduces a dataset."""
    opts = [f"--n-subjects {params['n_subjects']}", f"--seed {params['seed']}"]
    for key in OPTIONS:
        value = params[key]
        flag = f"--{key.replace('_', '-')}"
        if isinstance(value, (list, tuple)):
            opts.append(flag + "".join(f" {shlex.quote(str(v))}" for v in value))
        else:
            opts.append(f"{flag} {shlex.quote(str(value))}")
    return "xaibids-simulate t1-atrophy OUT_DIR " + " ".join(opts)


def rigid_matrix(rotations_deg: np.ndarray, translations_mm: np.ndarray) -> np.ndarray:
    """4 × 4 world-space rigid transform ``R_z R_y R_x`` (degrees) then translation (mm)."""
    ax, ay, az = np.deg2rad(rotations_deg)
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    mat = np.eye(4)
    mat[:3, :3] = rz @ ry @ rx
    mat[:3, 3] = translations_mm
    return mat


def apply_jitter(data: np.ndarray, affine: np.ndarray, raw_to_template: np.ndarray) -> np.ndarray:
    """The image a scanner would give: voxel ``v`` of the result shows the template-space
    image at world point ``raw_to_template @ (affine @ v)`` (trilinear, 0 outside)."""
    vox = np.linalg.inv(affine) @ raw_to_template @ affine
    return ndimage.affine_transform(data, vox[:3, :3], offset=vox[:3, 3], order=1,
                                    mode="constant", cval=0.0)


def _unit_field(rng, shape, sigma_vox) -> np.ndarray:
    field = ndimage.gaussian_filter(rng.standard_normal(shape), sigma_vox, mode="wrap")
    return field / (field.std() or 1.0)


def _rician(rng, clean: np.ndarray, sigma: float) -> np.ndarray:
    n1 = rng.standard_normal(clean.shape)
    n2 = rng.standard_normal(clean.shape)
    return np.hypot(clean + sigma * n1, sigma * n2)


def _int16(data: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(data), 0, 32767).astype(np.int16)


def _img(data, affine, voxel_size) -> nb.Nifti1Image:
    img = nb.Nifti1Image(data, affine)
    img.header.set_xyzt_units("mm")
    img.header.set_zooms((float(voxel_size),) * 3)
    if data.dtype != np.uint8:
        img.header.set_slope_inter(1.0, 0.0)
    return img


def _resolve_regions(wanted: list[str], regions: pd.DataFrame, atlas: str,
                     voxel_size: int) -> pd.DataFrame:
    names = regions["name"].astype(str).tolist()
    unknown = [w for w in wanted if w not in names]
    if unknown:
        hints = {w: difflib.get_close_matches(w, names, n=3, cutoff=0.4) for w in unknown}
        hint = "; ".join(f"{w!r}: did you mean {', '.join(h)}?" if h else f"{w!r}"
                         for w, h in hints.items())
        raise ValueError(f"--regions: {len(unknown)} name(s) are not regions of the atlas "
                         f"{atlas} ({hint}). Names are the atlas labels, e.g. "
                         f"{', '.join(DEFAULT_REGIONS)}.")
    chosen = regions[regions["name"].isin(wanted)]
    empty = chosen.loc[chosen["n_voxels"] == 0, "name"].tolist()
    if empty:
        raise ValueError(f"--regions: {empty} have no voxel on the {voxel_size} mm grid; choose "
                         "a finer --voxel-size or larger regions.")
    return chosen.set_index("name").loc[wanted].reset_index()


def simulate_t1_atrophy(root: Path, n_subjects: int = 40, seed: int = 0,
                        atlas: str = "harvard-oxford", regions: Sequence[str] | str | None = None,
                        severity: float = 0.2, voxel_size: int = 2, space: str = "both",
                        edge_fwhm: float = 4.0, bias: float = 0.05, noise: float = 0.02,
                        jitter: float = 1.0) -> dict:
    """Write the ``t1-atrophy`` dataset into the empty (staging) folder ``root``."""
    from xaibids.simulate.bold import _load_atlas, _template_grid, region_grid

    wanted = parse_regions(regions)
    if n_subjects < 2:
        raise ValueError("--n-subjects must be at least 2 (one per group).")
    if not 0 < severity < 1:
        raise ValueError("--severity is the fractional intensity loss in the affected regions; "
                         "give a value between 0 and 1 (exclusive), e.g. 0.2.")
    if int(voxel_size) != voxel_size or not 1 <= voxel_size <= 10:
        raise ValueError("--voxel-size must be a whole number of mm between 1 and 10.")
    if space not in SPACES:
        raise ValueError(f"--space must be one of {', '.join(SPACES)}.")
    if edge_fwhm < 0:
        raise ValueError("--edge-fwhm must be 0 (sharp edges) or positive.")
    if not 0 <= bias < 0.5:
        raise ValueError("--bias (SD of the smooth intensity field) must be in [0, 0.5).")
    if not 0 <= noise < 0.5:
        raise ValueError("--noise (Rician noise SD relative to the brain's 99th percentile) "
                         "must be in [0, 0.5).")
    if not 0 <= jitter <= 5:
        raise ValueError("--jitter (scale of the ≤ 2°/≤ 2 mm head-position jitter) must be in "
                         "[0, 5].")
    voxel_size = int(voxel_size)
    atl = _load_atlas(str(atlas))
    mask_img, template_img = _template_grid(voxel_size)
    shape, affine = mask_img.shape, mask_img.affine
    brain = np.asarray(mask_img.dataobj) > 0
    labels_grid = region_grid(atl, mask_img)
    table = atl.labels.copy().reset_index(drop=True)
    counts = np.bincount(labels_grid.ravel(), minlength=int(table["index"].max()) + 1)
    table["n_voxels"] = counts[table["index"].to_numpy()]
    chosen = _resolve_regions(wanted, table, str(atlas), voxel_size)

    truth = np.isin(labels_grid, chosen["index"].to_numpy())
    sigma_edge = edge_fwhm / 2.3548 / voxel_size
    loss_map = ndimage.gaussian_filter(truth.astype(float), sigma_edge) if sigma_edge > 0 \
        else truth.astype(float)
    loss_map = severity * loss_map
    chosen["expected_loss"] = [float(loss_map[labels_grid == i].mean()) for i in chosen["index"]]

    template = np.asarray(template_img.dataobj, dtype=float)
    base = 1000.0 * np.clip(template / max(float(template.max()), 1e-12), 0, None)

    rng0 = stream(seed, 0)
    groups = balanced_labels(n_subjects, rng0)
    ages = rng0.integers(55, 81, n_subjects)
    sexes = rng0.choice(np.array(["F", "M"]), n_subjects)
    subj = bidsio.subject_labels(n_subjects)
    deriv = root / "derivatives" / DERIVATIVE
    write_raw = space in ("raw", "both")
    write_tpl = space in ("template", "both")
    prefix_of = {lab: f"sub-{lab}_space-{SPACE}" for lab in subj}
    resolution = (f"{voxel_size} mm isotropic grid of nilearn's MNI152 template "
                  f"({shape[0]}x{shape[1]}x{shape[2]}; ICBM152 2009a symmetric, labelled "
                  f"{SPACE} after fMRIPrep's default)")
    truth_img = _img(truth.astype(np.uint8), affine, voxel_size)
    brain_img = _img(brain.astype(np.uint8), affine, voxel_size)
    rows = []
    for i, lab in enumerate(subj):
        rng = stream(seed, 1, i)
        rot = jitter * rng.uniform(-MAX_ROTATION_DEG, MAX_ROTATION_DEG, 3)
        trans = jitter * rng.uniform(-MAX_TRANSLATION_MM, MAX_TRANSLATION_MM, 3)
        field = _unit_field(rng, shape, BIAS_FWHM / 2.3548 / voxel_size)
        clean = base * np.clip(1.0 + bias * field, 0.05, None)
        if groups[i] == 1:
            clean = clean * (1.0 - loss_map)
        sigma = noise * float(np.percentile(clean[brain], 99))
        raw_to_tpl = rigid_matrix(rot, trans)
        anat = deriv / f"sub-{lab}" / "anat"
        prefix = prefix_of[lab]
        if write_raw:
            moved = apply_jitter(clean, affine, raw_to_tpl)
            raw = _int16(_rician(stream(seed, 3, i, 0), moved, sigma))
            bidsio.save_nifti(_img(raw, affine, voxel_size),
                              root / f"sub-{lab}" / "anat" / f"sub-{lab}_T1w.nii.gz")
        if write_tpl:
            pre = _int16(_rician(stream(seed, 3, i, 1), clean, sigma))
            bidsio.save_nifti(_img(pre, affine, voxel_size), anat / f"{prefix}_desc-preproc_T1w.nii.gz")
            sources = ([f"bids:raw:sub-{lab}/anat/sub-{lab}_T1w.nii.gz"] if write_raw else [])
            bidsio.write_json(anat / f"{prefix}_desc-preproc_T1w.json", {
                "Description": "Simulated T1w in template space (xaibids-simulate t1-atrophy): "
                               "the subject's image before the head-position jitter of the "
                               "raw T1w, i.e. after a perfect registration.",
                "SkullStripped": True, "Resolution": resolution, "Sources": sources,
                "RawToTemplateAffine": np.round(raw_to_tpl, 10).tolist()})
            bidsio.save_nifti(brain_img, anat / f"{prefix}_desc-brain_mask.nii.gz")
            bidsio.write_json(anat / f"{prefix}_desc-brain_mask.json",
                              {"Type": "Brain", "Resolution": resolution})
        bidsio.save_nifti(truth_img, anat / f"{prefix}_desc-groundtruth_mask.nii.gz")
        bidsio.write_json(anat / f"{prefix}_desc-groundtruth_mask.json", {
            "Type": "ROI", "Resolution": resolution,
            "Description": "Ground truth: voxels of the regions whose intensity differs between "
                           "the groups (" + "; ".join(chosen["name"]) + "); the same for every "
                           "participant. In template space."})
        per = chosen[["name", "index", "n_voxels"]].rename(columns={"name": "region"})
        per["atrophied"] = int(groups[i] == 1)
        per["expected_loss"] = chosen["expected_loss"] * (groups[i] == 1)
        bidsio.write_tsv(per, anat / f"sub-{lab}_desc-groundtruth_regions.tsv")
        rows.append({"participant_id": f"sub-{lab}", "group": LEVELS[groups[i]], "onset": 0,
                     "duration": 1, "relevant_features": ";".join(chosen["name"]),
                     "rot_x_deg": rot[0], "rot_y_deg": rot[1], "rot_z_deg": rot[2],
                     "trans_x_mm": trans[0], "trans_y_mm": trans[1], "trans_z_mm": trans[2],
                     "raw_to_template_affine": ",".join(f"{v:.10g}" for v in
                                                        raw_to_tpl[:3].ravel())})

    params = dict(n_subjects=n_subjects, seed=seed, atlas=str(atlas), regions=list(wanted),
                  severity=float(severity), voxel_size=voxel_size, space=space,
                  edge_fwhm=float(edge_fwhm), bias=float(bias), noise=float(noise),
                  jitter=float(jitter), atlas_label=atl.name, grid_shape=list(shape),
                  space_label=SPACE, bias_fwhm_mm=BIAS_FWHM)
    reproduce = command_line(params)

    # ---- raw dataset ---------------------------------------------------------------------
    bidsio.write_dataset_description(root, "xaibids simulated dataset: t1-atrophy", "raw", TOOL,
                                     "Simulated T1w images with regional atrophy.")
    frame = participants_frame(groups, LEVELS, subj).assign(age=ages, sex=sexes)
    columns = group_sidecar(LEVELS, (
        "no atrophy", f"intensity loss up to {severity:g} in " + ", ".join(chosen["name"])))
    columns["age"] = {"Description": "Simulated age, drawn independently of the group (noise "
                                     "column).", "Units": "year"}
    columns["sex"] = {"Description": "Simulated sex, drawn independently of the group (noise "
                                     "column).", "Levels": {"F": "female", "M": "male"}}
    bidsio.write_participants(root, frame, columns)
    if not write_raw:
        bidsio.write_scans_placeholders(root, subj)
    text = _readme(params, chosen, reproduce, n0=int((groups == 0).sum()))
    bidsio.write_text(root / "README", text)

    # ---- derivatives -----------------------------------------------------------------------
    bidsio.write_dataset_description(
        deriv, "xaibids simulated fMRIPrep-style anatomical derivatives", "derivative", TOOL,
        "Simulated preprocessed T1w, brain masks and atrophy ground truth in fMRIPrep's layout.",
        extra={"DatasetLinks": {"raw": "../../"}, "SourceDatasets": [{"URL": "bids:raw:"}]})
    bidsio.write_bidsignore(deriv, T1_BIDSIGNORE)
    bidsio.write_json(deriv / "simulation.json", {
        "Kind": "t1-atrophy", "Tool": TOOL, "Version": __version__, "CommandLine": reproduce,
        "Parameters": params})
    exp = dict(zip(chosen["index"], chosen["expected_loss"]))
    feats = pd.DataFrame({
        "feature": table["name"], "index": table["index"],
        "relevant": table["index"].isin(chosen["index"]).astype(int),
        "n_voxels": table["n_voxels"],
        "expected_loss": [exp.get(i, 0.0) for i in table["index"]],
    })
    bidsio.write_tsv(feats, deriv / "groundtruth_features.tsv")
    bidsio.write_tsv(pd.DataFrame(rows), deriv / "groundtruth.tsv")
    bidsio.write_text(deriv / "README", text)
    return params


def _readme(params: dict, chosen: pd.DataFrame, reproduce: str, n0: int) -> str:
    n1 = params["n_subjects"] - n0
    regions = "\n".join(f"  - `{r.name}` (atlas index {r.index}, {r.n_voxels} voxels, mean "
                        f"loss {r.expected_loss:.3f})" for r in chosen.itertuples())
    raw = ("- `sub-<label>/anat/sub-<label>_T1w.nii.gz`: the raw T1w (int16), the subject's "
           "image moved by its head-position jitter (rotations ≤ 2°, translations ≤ 2 mm, × "
           f"`--jitter` {params['jitter']:g}) and resampled trilinearly, then Rician noise. The "
           "header keeps the template grid's affine.\n"
           if params["space"] != "template" else
           "- `sub-<label>/sub-<label>_scans.tsv`: empty (written with `--space template`: "
           "no raw images).\n")
    tpl = ("  - `sub-<label>_space-MNI152NLin2009cAsym_desc-preproc_T1w.nii.gz` (+ JSON with "
           "`RawToTemplateAffine`): the same subject without the jitter (a perfect "
           "registration), independent Rician noise draw;\n"
           "  - `sub-<label>_space-MNI152NLin2009cAsym_desc-brain_mask.nii.gz`;\n"
           if params["space"] != "raw" else "")
    return f"""# xaibids simulated dataset: `t1-atrophy`

Generated by `{TOOL}` (xaibids {__version__}) with

    {reproduce}

T1-weighted volumes for a two-group study of regional atrophy (the setting of Kan et al. 2020: a 3D
CNN on whole T1 volumes, maps ranked by atlas region). Every image is nilearn's MNI152
template (ICBM152 2009a symmetric, skull-stripped, intensities mapped to 0–1000) on a
{params['voxel_size']} mm grid ({'×'.join(map(str, params['grid_shape']))} voxels), multiplied by

    (1 − severity · S(v) · [group = atrophy]) · (1 + bias · f(v))

with `severity` = {params['severity']:g}, `S` the union of the affected regions of the atlas
`{params['atlas']}` smoothed with a Gaussian of FWHM {params['edge_fwhm']:g} mm (smooth edges;
`S` ≈ 1 in the interior of large regions), and `f` a per-subject unit-SD Gaussian random field
of FWHM {params['bias_fwhm_mm']:g} mm (between-subject intensity variability, `bias` =
{params['bias']:g}), then Rician noise of SD {params['noise']:g} × the 99th percentile of the
brain. The intensity loss stands for the volume loss of atrophy after spatial normalization.

Groups (`participants.tsv`, column `group`): `control` ({n0}) and `atrophy` ({n1}); `age` and
`sex` are noise columns drawn independently of the group.

Affected regions (the ground truth):
{regions}

## Layout

- `participants.tsv` / `.json`: `participant_id`, `group`, `age`, `sex`.
{raw}- `derivatives/fmriprep/sub-<label>/anat/`, fMRIPrep names (space label
  `MNI152NLin2009cAsym`, fMRIPrep's default; the grid is nilearn's 2009a release of that
  template, about a millimetre away):
{tpl}  - `sub-<label>_space-MNI152NLin2009cAsym_desc-groundtruth_mask.nii.gz`: **ground truth**,
    1 in the voxels of the affected regions (the same for every participant);
  - `sub-<label>_desc-groundtruth_regions.tsv`: the affected regions (`region`, `index`,
    `n_voxels`), `atrophied` (1 for the atrophy group) and the participant's mean fractional
    intensity loss per region, `expected_loss` (0 for controls).
- `derivatives/fmriprep/groundtruth_features.tsv`: **ground truth** per atlas region:
  `feature` (region name), `index`, `relevant` (1 = affected), `n_voxels` on the grid,
  `expected_loss` (mean of `severity · S` over the region, for the atrophy group).
- `derivatives/fmriprep/groundtruth.tsv`: per participant `group`, `relevant_features`
  (`;`-separated affected regions), and the head-position jitter of the raw image:
  `rot_x_deg` … `trans_z_mm` and `raw_to_template_affine` (first three rows of the 4 × 4
  world-space matrix, row-major: raw voxel `v` shows the template image at world point
  `A · affine · v`).
- `derivatives/fmriprep/simulation.json`: every parameter, the seed and the command line.

Files that the BIDS schema does not know are listed in `derivatives/fmriprep/.bidsignore`.
The same command with the same seed gives byte-identical files.
"""
