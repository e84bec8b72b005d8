"""``voxel-patterns``: the overlapping category patterns of Gotsopoulos et al. 2018 (§2.4–2.5, scenarios 1–3).

Gotsopoulos et al. 2018 builds its simulations from real fMRI samples whose voxels were randomly permuted
(spatially white) and z-scored per voxel, i.e. unit-variance noise, and adds "normally
distributed noise" of low mean to the voxels of each category's pattern: "Gaussian noise with
mean 0.05 and unit variance was added to the regions" (scenario 2; scenario 3: 0.05 on the left
side, 0.07 on the right). Each sample here is one volume ("trial") of a subject::

    x(v) = n(v) + [v ∈ P_c] · (μ_c(v) + σ_e · e(v)),   n, e ~ N(0, 1) independent

with ``c`` the subject's category (its ``group``), ``P_c`` the category's pattern, ``μ_c(v)``
the effect mean (``effect_mean``, 0.05; in scenario 3 ``effect_mean_right``, 0.07, on the right
half) and ``σ_e`` = ``effect_sd`` (1, the seed's "unit variance").

Patterns (fractions of the ``N`` voxels of the mask; voxels drawn at random, like the seed's
permuted voxels), for the seed's five categories:

Scenario 1 — "overlapping patterns with same size"
    five disjoint blocks ``B_1 … B_5`` of N/20 voxels; category ``k`` = ``B_k ∪ B_(k+1)``
    (cyclically): N/10 voxels, half shared with the next category and half with the previous
    one, no voxel important for one category only.
Scenario 2 — "complex patterns, same magnitudes"
    category 2: N/5 voxels; category 3: N/10, half of them inside category 2's pattern;
    categories 4 and 5: the same N/10 voxels (disjoint from 2 and 3); category 1: N/100 voxels,
    a subset of the pattern of 4 and 5.
Scenario 3 — "complex patterns, multiple magnitudes"
    the layout of scenario 2 twice: on the left half (world x < 0) with mean 0.05, and on the
    right half with mean 0.07 and the patterns shifted among categories — category ``k`` gets
    the right-half pattern of category ``k + 1`` (5 → 1). This shift is the one that fits the
    seed's discussion (§4.2.3): category 2 has the largest effect size; categories 3 and 4 the
    same size, with voxels exclusive to category 3.

A dataset with ``n_classes`` < 5 uses the first ``n_classes`` categories of the layout (the
layout itself is always the seed's five-category one). With ``design="between"`` (the default)
each subject belongs to one category (``group`` = ``cat1`` … ``cat<n>``) and has ``n_trials``
volumes of that category. With ``design="within"``, as in Gotsopoulos et al. 2018's data (every subject saw
every category, §2.1–2.2), each subject's ``n_trials`` volumes cycle through the categories in
a random order, the events' ``trial_type`` names each volume's category, and
``participants.tsv`` has no class column (classify with ``--target trial_type``). Which voxels
separate the classes of *this* dataset (``informative``) is not the union of the patterns:
a voxel with the same effect in every class present carries no class information (with two
classes of scenario 1, the block shared by categories 1 and 2).
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nb
import numpy as np
import pandas as pd

from xaibids import __version__
from xaibids.simulate import bidsio
from xaibids.simulate.base import stream
from xaibids.simulate.write import TOOL

DERIVATIVE = "patterns"
TASK = "patterns"
N_CATEGORIES = 5
TR = 10.0  # nominal: one volume per trial (the seed averages 7 TRs, 11.9 s, per sample)
GRIDS = ("box", "mni")
OPTIONS = ("scenario", "n_classes", "n_trials", "design", "grid", "voxel_size", "grid_size",
           "effect_mean", "effect_mean_right", "effect_sd")
DESIGNS = ("between", "within")
PATTERN_BIDSIGNORE = ["groundtruth*", "simulation.json"]


def levels(n_classes: int) -> list[str]:
    return [f"cat{k + 1}" for k in range(n_classes)]


def _count(n: int, fraction: float) -> int:
    return max(1, round(fraction * n))


def layout_scenario1(order: np.ndarray) -> list[np.ndarray]:
    """Five categories of N/10 voxels, each half-shared with its two ring neighbours."""
    size = _count(len(order), 0.05)
    blocks = [order[k * size:(k + 1) * size] for k in range(N_CATEGORIES)]
    return [np.concatenate([blocks[k], blocks[(k + 1) % N_CATEGORIES]])
            for k in range(N_CATEGORIES)]


def layout_scenario2(order: np.ndarray) -> list[np.ndarray]:
    """Category 1: N/100 ⊂ pattern of 4 = 5 (N/10); 2: N/5; 3: N/10, half inside 2's."""
    n = len(order)
    n2, n3, n45, n1 = _count(n, 0.2), _count(n, 0.1), _count(n, 0.1), _count(n, 0.01)
    p2 = order[:n2]
    half = n3 // 2
    p3 = np.concatenate([p2[:half], order[n2:n2 + n3 - half]])
    start = n2 + n3 - half
    p45 = order[start:start + n45]
    p1 = p45[:n1]
    return [p1, p2, p3, p45, p45.copy()]


def pattern_means(scenario: int, n_vox: int, left: np.ndarray, rng: np.random.Generator,
                  effect_mean: float, effect_mean_right: float) -> np.ndarray:
    """``(5, n_vox)`` effect means: ``μ_c(v)``, 0 outside category ``c``'s pattern."""
    means = np.zeros((N_CATEGORIES, n_vox))
    if scenario in (1, 2):
        order = rng.permutation(n_vox)
        layout = layout_scenario1(order) if scenario == 1 else layout_scenario2(order)
        for k, vox in enumerate(layout):
            means[k, vox] = effect_mean
        return means
    left_idx = np.flatnonzero(left)
    right_idx = np.flatnonzero(~left)
    left_layout = layout_scenario2(left_idx[rng.permutation(len(left_idx))])
    right_layout = layout_scenario2(right_idx[rng.permutation(len(right_idx))])
    for k in range(N_CATEGORIES):
        means[k, left_layout[k]] = effect_mean
        means[k, right_layout[(k + 1) % N_CATEGORIES]] = effect_mean_right
    return means


def _grid(grid: str, voxel_size: int, grid_size: int):
    if grid == "box":
        affine = np.diag([float(voxel_size)] * 3 + [1.0])
        affine[:3, 3] = -(grid_size - 1) / 2.0 * voxel_size
        return np.ones((grid_size,) * 3, dtype=bool), affine
    from xaibids.simulate.bold import _template_grid

    mask_img, _ = _template_grid(voxel_size)
    return np.asarray(mask_img.dataobj) > 0, mask_img.affine


def _img(data, affine, voxel_size, tr=None) -> nb.Nifti1Image:
    img = nb.Nifti1Image(data, affine)
    if tr is None:
        img.header.set_xyzt_units("mm")
    else:
        img.header.set_xyzt_units("mm", "sec")
        img.header.set_zooms((float(voxel_size),) * 3 + (float(tr),))
    if data.dtype != np.uint8:
        img.header.set_slope_inter(1.0, 0.0)
    return img


def simulate_voxel_patterns(root: Path, n_subjects: int = 40, seed: int = 0, scenario: int = 1,
                            n_classes: int = 2, n_trials: int = 20, design: str = "between",
                            grid: str = "box",
                            voxel_size: int = 4, grid_size: int | None = None,
                            effect_mean: float = 0.05, effect_mean_right: float | None = None,
                            effect_sd: float = 1.0) -> dict:
    """Write the ``voxel-patterns`` dataset into the empty (staging) folder ``root``."""
    if scenario not in (1, 2, 3):
        raise ValueError("--scenario must be 1, 2 or 3 (Gotsopoulos et al. 2018 §2.5: 1 overlapping patterns "
                         "of the same size, 2 complex patterns with the same magnitude, 3 "
                         "complex patterns with two magnitudes).")
    if int(n_classes) != n_classes or not 2 <= n_classes <= N_CATEGORIES:
        raise ValueError(f"--n-classes must be between 2 and {N_CATEGORIES} (the seed's "
                         "categories).")
    if design == "between" and n_subjects < n_classes:
        raise ValueError(f"--n-subjects must be at least --n-classes ({n_classes}): one "
                         "subject per class.")
    if n_trials < 1:
        raise ValueError("--n-trials must be at least 1.")
    if design not in DESIGNS:
        raise ValueError(f"--design must be one of {', '.join(DESIGNS)}.")
    if design == "within" and n_trials < n_classes:
        raise ValueError(f"--design within needs --n-trials of at least --n-classes "
                         f"({n_classes}): every subject sees every category.")
    if grid not in GRIDS:
        raise ValueError(f"--grid must be one of {', '.join(GRIDS)}.")
    if int(voxel_size) != voxel_size or not 1 <= voxel_size <= 10:
        raise ValueError("--voxel-size must be a whole number of mm between 1 and 10.")
    if grid == "mni" and voxel_size < 2:
        raise ValueError("--voxel-size must be at least 2 mm with --grid mni.")
    if grid_size is not None and grid != "box":
        raise ValueError("--grid-size applies to --grid box only.")
    grid_size = 20 if grid_size is None else grid_size
    if int(grid_size) != grid_size or not 8 <= grid_size <= 64:
        raise ValueError("--grid-size (voxels per side of the box) must be between 8 and 64.")
    if effect_mean_right is not None and scenario != 3:
        raise ValueError("--effect-mean-right applies to --scenario 3 only (the right half).")
    effect_mean_right = 0.07 if effect_mean_right is None else effect_mean_right
    if effect_sd < 0:
        raise ValueError("--effect-sd must be 0 or positive.")
    n_classes, n_trials, voxel_size, grid_size = (int(n_classes), int(n_trials), int(voxel_size),
                                                  int(grid_size))

    mask, affine = _grid(grid, voxel_size, grid_size)
    ijk = np.argwhere(mask)
    xyz = nb.affines.apply_affine(affine, ijk)
    left = xyz[:, 0] < 0
    n_vox = len(ijk)
    means = pattern_means(scenario, n_vox, left, stream(seed, 0, 0), effect_mean,
                          effect_mean_right)[:n_classes]
    in_pattern = means != 0
    informative = (means != means[:1]).any(axis=0)
    lev = levels(n_classes)

    rng0 = stream(seed, 0)
    groups = rng0.permutation(np.arange(n_subjects) % n_classes).astype(int)
    subj = bidsio.subject_labels(n_subjects)
    deriv = root / "derivatives" / DERIVATIVE
    vox_names = [f"v{i:03d}-{j:03d}-{k:03d}" for i, j, k in ijk]
    informative_names = ";".join(np.asarray(vox_names)[informative])
    mask_img = _img(mask.astype(np.uint8), affine, voxel_size)
    truth_vol = np.zeros(mask.shape, dtype=np.uint8)
    truth_vol[mask] = informative
    truth_img = _img(truth_vol, affine, voxel_size)
    grid_text = (f"{'×'.join(map(str, mask.shape))} voxels of {voxel_size} mm "
                 + ("(a box centred on the origin; every voxel in the mask)" if grid == "box"
                    else "(nilearn's MNI152 grid and brain mask)"))
    rows = []
    for i, lab in enumerate(subj):
        rng = stream(seed, 1, i)
        if design == "within":
            categories = rng.permutation(np.arange(n_trials) % n_classes)
        else:
            categories = np.full(n_trials, groups[i])
        data = rng.standard_normal((n_trials, n_vox))
        for c in np.unique(categories):
            rows_c, pat = np.flatnonzero(categories == c), in_pattern[c]
            data[np.ix_(rows_c, pat)] += means[c, pat] + effect_sd * rng.standard_normal(
                (len(rows_c), int(pat.sum())))
        vol = np.zeros(mask.shape + (n_trials,), dtype=np.float32)
        vol[mask] = data.T.astype(np.float32)
        func = root / f"sub-{lab}" / "func"
        bidsio.save_nifti(_img(vol, affine, voxel_size, TR),
                          func / f"sub-{lab}_task-{TASK}_bold.nii.gz")
        events = pd.DataFrame({"onset": np.arange(n_trials) * TR,
                               "duration": np.full(n_trials, TR),
                               "trial_type": [lev[c] for c in categories]})
        bidsio.write_tsv(events, func / f"sub-{lab}_task-{TASK}_events.tsv")
        dfunc = deriv / f"sub-{lab}" / "func"
        bidsio.save_nifti(mask_img, dfunc / f"sub-{lab}_task-{TASK}_desc-brain_mask.nii.gz")
        bidsio.write_json(dfunc / f"sub-{lab}_task-{TASK}_desc-brain_mask.json",
                          {"Type": "Brain", "Description": f"Simulation grid: {grid_text}."})
        bidsio.save_nifti(truth_img, dfunc / f"sub-{lab}_task-{TASK}_desc-groundtruth_mask.nii.gz")
        bidsio.write_json(dfunc / f"sub-{lab}_task-{TASK}_desc-groundtruth_mask.json", {
            "Type": "ROI",
            "Description": "Ground truth: voxels whose distribution differs between the "
                           "classes of this dataset (the same for every participant); the "
                           "per-class patterns are groundtruth_class-<group>_mask.nii.gz at "
                           "the top of this derivative dataset."})
        rows.append({"participant_id": f"sub-{lab}",
                     "group": lev[groups[i]] if design == "between" else "n/a", "onset": 0,
                     "duration": n_trials, "relevant_features": informative_names})

    params = dict(n_subjects=n_subjects, seed=seed, scenario=scenario, n_classes=n_classes,
                  n_trials=n_trials, design=design, grid=grid, voxel_size=voxel_size,
                  grid_size=grid_size if grid == "box" else None, effect_mean=float(effect_mean),
                  effect_mean_right=float(effect_mean_right) if scenario == 3 else None,
                  effect_sd=float(effect_sd), grid_shape=list(mask.shape), n_voxels=n_vox,
                  repetition_time=TR)
    reproduce = command_line(params)
    counts = {lv: int((groups == k).sum()) for k, lv in enumerate(lev)}

    # ---- raw ---------------------------------------------------------------------------
    bidsio.write_dataset_description(root, "xaibids simulated dataset: voxel-patterns", "raw",
                                     TOOL, "Simulated overlapping voxel patterns (Gotsopoulos et al. 2018).")
    frame = pd.DataFrame({"participant_id": [f"sub-{s}" for s in subj]})
    if design == "between":
        frame["group"] = [lev[c] for c in groups]
    desc = {lv: f"category {k + 1} of Gotsopoulos et al. 2018's scenario {scenario}: "
                f"{int(in_pattern[k].sum())} pattern voxels" for k, lv in enumerate(lev)}
    bidsio.write_participants(root, frame, {"group": {
        "Description": "Simulated category of the participant (the classification target); "
                       "every trial of the participant carries this category's pattern.",
        "Levels": desc}})
    if design == "within":
        bidsio.write_json(root / f"task-{TASK}_events.json", {"trial_type": {
            "Description": "Simulated category of the trial (the classification target, "
                           "--target trial_type).", "Levels": desc}})
    bidsio.write_json(root / f"task-{TASK}_bold.json", {
        "TaskName": TASK, "RepetitionTime": TR,
        "TaskDescription": "Simulated trials: each volume is one sample (trial-average "
                           "activation map) of Gotsopoulos et al. 2018's simulation; RepetitionTime is "
                           "nominal."})
    text = _readme(params, reproduce, lev, counts, in_pattern, informative)
    bidsio.write_text(root / "README", text)

    # ---- derivative with the ground truth -------------------------------------------------
    bidsio.write_dataset_description(
        deriv, "xaibids simulated voxel patterns: ground truth", "derivative", TOOL,
        "Grid mask, per-class pattern masks and the voxel truth table of Gotsopoulos et al. 2018's scenarios.",
        extra={"DatasetLinks": {"raw": "../../"}, "SourceDatasets": [{"URL": "bids:raw:"}]})
    bidsio.write_bidsignore(deriv, PATTERN_BIDSIGNORE)
    bidsio.write_json(deriv / "simulation.json", {
        "Kind": "voxel-patterns", "Tool": TOOL, "Version": __version__,
        "CommandLine": reproduce, "Parameters": params})
    for k, lv in enumerate(lev):
        vol = np.zeros(mask.shape, dtype=np.uint8)
        vol[mask] = in_pattern[k]
        bidsio.save_nifti(_img(vol, affine, voxel_size),
                          deriv / f"groundtruth_class-{lv}_mask.nii.gz")
    feats = pd.DataFrame({"feature": vox_names, "i": ijk[:, 0], "j": ijk[:, 1], "k": ijk[:, 2],
                          "x": xyz[:, 0], "y": xyz[:, 1], "z": xyz[:, 2],
                          "relevant": informative.astype(int)})
    for k, lv in enumerate(lev):
        feats[f"pattern_{lv}"] = in_pattern[k].astype(int)
    for k, lv in enumerate(lev):
        feats[f"mean_{lv}"] = means[k]
    bidsio.write_tsv(feats, deriv / "groundtruth_features.tsv")
    bidsio.write_tsv(pd.DataFrame(rows), deriv / "groundtruth.tsv")
    bidsio.write_text(deriv / "README", text)
    return params


def command_line(params: dict) -> str:
    opts = [f"--n-subjects {params['n_subjects']}", f"--seed {params['seed']}"]
    for key in OPTIONS:
        if params.get(key) is not None:
            opts.append(f"--{key.replace('_', '-')} {params[key]}")
    return "xaibids-simulate voxel-patterns OUT_DIR " + " ".join(opts)


def _readme(params, reproduce, lev, counts, in_pattern, informative) -> str:
    if params["design"] == "within":
        where = ("Classes (events, column `trial_type`; every participant has trials of every "
                 "class, in a random order, as in Gotsopoulos et al. 2018's data):")
        sizes = "\n".join(f"  - `{lv}`: {int(in_pattern[k].sum())} pattern voxels"
                          for k, lv in enumerate(lev))
    else:
        where = "Classes (`participants.tsv`, column `group`):"
        sizes = "\n".join(f"  - `{lv}`: {counts[lv]} participants, {int(in_pattern[k].sum())} "
                          "pattern voxels" for k, lv in enumerate(lev))
    right = (f", {params['effect_mean_right']:g} on the right half (world x ≥ 0)"
             if params["scenario"] == 3 else "")
    return f"""# xaibids simulated dataset: `voxel-patterns`

Generated by `{TOOL}` (xaibids {__version__}) with

    {reproduce}

Scenario {params['scenario']} of the simulations of Gotsopoulos et al. 2018 (§2.4–2.5): unit-variance Gaussian
noise in every voxel (the seed's voxel-permuted, z-scored fMRI samples) and, in the voxels of
the trial's category pattern, added Gaussian noise of mean {params['effect_mean']:g}{right}
and SD {params['effect_sd']:g} (the seed: "Gaussian noise with mean 0.05 and unit variance").
Pattern voxels are drawn at random within the mask. Layouts (fractions of the N voxels):
scenario 1, five categories of N/10 voxels each sharing half with the next and half with the
previous category; scenario 2, category 1 N/100 (a subset of the shared pattern of categories
4 and 5, N/10), category 2 N/5, category 3 N/10 half inside category 2's pattern; scenario 3,
the scenario-2 layout on each half of the grid, the right half with mean 0.07 and patterns
shifted among categories (category k gets the right-half pattern of category k + 1). The first
{len(lev)} of the five categories are the classes of this dataset.

Grid: {'×'.join(map(str, params['grid_shape']))} voxels of {params['voxel_size']} mm
({params['n_voxels']} in the mask, `grid` = `{params['grid']}`).

{where}
{sizes}

Voxels that separate the classes of this dataset (`relevant`): {int(informative.sum())}. A
voxel with the same effect in every class present is not informative (with two classes of
scenario 1: the block shared by categories 1 and 2).

## Layout

- `sub-<label>/func/sub-<label>_task-patterns_bold.nii.gz`: the data, a 4D float32 image of
  {params['n_trials']} volumes, one per trial (sample){'' if params['design'] == 'within' else
  "; every trial belongs to the participant's category"}. `RepetitionTime`
  ({params['repetition_time']:g} s) is nominal. The grid is already the analysis grid (no
  preprocessing needed): `xaibids BIDS_DIR OUT participant --features trials --confounds none
  -d patterns=BIDS_DIR/derivatives/patterns` makes one map per event (here one volume each).
- `sub-<label>/func/sub-<label>_task-patterns_events.tsv`: one row per volume, `trial_type` =
  the category.
- `derivatives/patterns/sub-<label>/func/sub-<label>_task-patterns_desc-brain_mask.nii.gz`:
  the mask of the grid.
- `derivatives/patterns/sub-<label>/func/sub-<label>_task-patterns_desc-groundtruth_mask.nii.gz`:
  **ground truth**, 1 in the informative voxels (the same for every participant).
- `derivatives/patterns/groundtruth_class-<group>_mask.nii.gz`: **ground truth** per class, the
  category's pattern (Gotsopoulos et al. 2018 scores per-category importance maps against these).
- `derivatives/patterns/groundtruth_features.tsv`: **the voxel truth table** for voxel accuracy,
  FDR and FOR (Gotsopoulos et al. 2018 §3.2), one row per voxel of the mask: `feature` (`v<i>-<j>-<k>`), voxel
  indices `i`, `j`, `k`, world coordinates `x`, `y`, `z` (mm), `relevant` (informative for this
  dataset), `pattern_<group>` (1 = in that class's pattern) and `mean_<group>` (effect mean).
- `derivatives/patterns/groundtruth.tsv`: per participant `group`, `onset` 0, `duration` (the
  number of trials) and `relevant_features` (`;`-separated informative voxels).
- `derivatives/patterns/simulation.json`: every parameter, the seed and the command line.

The same command with the same seed gives byte-identical files.
"""
