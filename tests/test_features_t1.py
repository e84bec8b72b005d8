"""T1w preprocessing of ``--features t1``: template grid, ANTs registration, normalization,
template-space input, the Nipype interface and the registration reportlet."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import nibabel as nb
import numpy as np
import pandas as pd
import pytest
from scipy import ndimage

from xaibids.features import t1
from xaibids.features.t1 import (
    T1Error,
    grid_mask,
    load_template,
    normalize_intensity,
    plot_registration,
    preprocess_t1,
    register_to_template,
    template_grid,
)
from xaibids.simulate.t1 import rigid_matrix

SHARED_T1 = Path(__file__).resolve().parents[2] / "shared" / "data" / "ds002748-t1w"
#: The known input → template transform of the synthetic raw image: rotations of 3°, −2°, 4°,
#: translations of 4, −3, 5 mm and scalings of 1.04 and 0.97.
KNOWN = rigid_matrix(np.array([3.0, -2.0, 4.0]), np.array([4.0, -3.0, 5.0])) @ np.diag(
    [1.04, 0.97, 1.0, 1.0])


def _brain_points(step: int = 40) -> np.ndarray:
    _, mask = load_template()
    ijk = np.argwhere(np.asarray(mask.dataobj) > 0)[::step]
    return nb.affines.apply_affine(mask.affine, ijk)


def displacement_mm(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Distance (mm) between where two 4 × 4 world transforms put the template brain's voxels."""
    xyz = _brain_points()
    return np.linalg.norm(nb.affines.apply_affine(a, xyz) - nb.affines.apply_affine(b, xyz), axis=1)


def moved_template(input_to_template: np.ndarray) -> nb.Nifti1Image:
    """The 2 mm template as a scanner would give it after the head moved: voxel ``v`` shows the
    template at ``input_to_template @ affine @ v``. Stored as LAS with the first two axes
    swapped (A, L, S), so a wrong RAS ↔ LPS or axis-order conversion cannot go unnoticed."""
    from nilearn.datasets import load_mni152_template

    tpl = load_mni152_template(resolution=2)
    affine = tpl.affine
    vox = np.linalg.inv(affine) @ input_to_template @ affine
    data = ndimage.affine_transform(tpl.get_fdata(), vox[:3, :3], offset=vox[:3, 3], order=1)
    data = 1000 * data[::-1]  # flip i: L → R becomes R → L
    flip = np.eye(4)
    flip[0, 0], flip[0, 3] = -1, data.shape[0] - 1
    swap = np.eye(4)[:, [1, 0, 2, 3]]
    img = nb.Nifti1Image(data.transpose(1, 0, 2).astype(np.float32), affine @ flip @ swap)
    img.header.set_xyzt_units("mm")
    assert nb.aff2axcodes(img.affine) == ("A", "L", "S")
    return img


@pytest.fixture(scope="module")
def raw_run(tmp_path_factory):
    """``preprocess_t1`` of the moved template (raw path), with its reportlet."""
    root = tmp_path_factory.mktemp("t1raw")
    raw = root / "sub-01_T1w.nii.gz"
    moved_template(KNOWN).to_filename(raw)
    out = root / "out.nii.gz"
    start = time.perf_counter()
    info = preprocess_t1(raw, out, report_file=root / "registration.svg", random_seed=3)
    return raw, out, info, root, time.perf_counter() - start


# --------------------------------------------------------------------------- grid
def test_template_is_the_bundled_symmetric_one():
    img, mask = load_template()
    assert t1.TEMPLATE_SPACE == "MNI152NLin2009aSym"
    assert img.shape == mask.shape == (197, 233, 189)
    assert np.allclose(img.affine, mask.affine) and np.allclose(np.diag(img.affine)[:3], 1)
    assert set(np.unique(np.asarray(mask.dataobj))) == {0, 1}


def test_default_grid_shape_and_affine():
    shape, affine = template_grid()
    assert shape == (57, 69, 60) == t1.DEFAULT_GRID_SHAPE
    assert np.allclose(affine[:3, :3], np.diag([3.0, 3.0, 3.0]))
    assert np.allclose(affine[:3, 3], [-84, -119, -84])
    assert not np.allclose(affine, np.eye(4))
    # the grid's field of view holds the whole template brain, with the margin around it
    xyz = _brain_points(step=1)
    ijk = nb.affines.apply_affine(np.linalg.inv(affine), xyz)
    assert ijk.min() >= 3.5 and np.all(ijk.max(0) <= np.array(shape) - 1 - 3.5)
    assert template_grid(1.0, 0)[0] == (145, 181, 155)
    assert template_grid(6.0)[0] == (33, 39, 34)


@pytest.mark.parametrize("resolution, margin", [(0.0, 4), (11, 4), ("x", 4), (3.0, -1), (3.0, 1.5)])
def test_grid_arguments_are_checked(resolution, margin):
    with pytest.raises(T1Error):
        template_grid(resolution, margin)


def test_grid_mask_is_the_template_brain_on_the_grid():
    mask = grid_mask()
    shape, affine = template_grid()
    assert mask.shape == shape and np.allclose(mask.affine, affine)
    assert mask.get_data_dtype() == np.uint8
    assert mask.header.get_sform(coded=True)[1] == 4
    _, tmask = load_template()
    volume_1mm = int(np.asarray(tmask.dataobj).sum())
    assert abs(int(np.asarray(mask.dataobj).sum()) * 27 / volume_1mm - 1) < 0.03


# --------------------------------------------------------------------------- nibabel ↔ ANTs
def test_ants_conversion_keeps_world_positions():
    import ants

    img = moved_template(np.eye(4))
    aimg = t1.to_ants(img)
    np.testing.assert_array_equal(aimg.numpy(), img.get_fdata(dtype=np.float32))
    for ijk in ([0, 0, 0], [10, 20, 30], [100, 5, 70]):
        lps = ants.transform_index_to_physical_point(aimg, ijk)
        ras = nb.affines.apply_affine(img.affine, ijk)
        assert np.allclose(lps, ras * [-1, -1, 1], atol=1e-4)
    back = t1.from_ants(aimg)
    assert np.allclose(back.affine, img.affine, atol=1e-5)
    np.testing.assert_array_equal(back.get_fdata(), aimg.numpy())


# --------------------------------------------------------------------------- normalization
def test_normalize_intensity_zscores_inside_the_mask():
    rng = np.random.default_rng(0)
    data = rng.gamma(2.0, 300.0, (20, 22, 18)).astype(np.float32)
    mask = np.zeros(data.shape, bool)
    mask[4:16, 5:18, 3:15] = True
    out = normalize_intensity(data, mask)
    assert out.dtype == np.float32
    assert abs(out[mask].mean()) < 1e-5 and abs(out[mask].std() - 1) < 1e-5
    assert np.all(out[~mask] == 0)
    # scale and offset of the input do not matter
    np.testing.assert_allclose(normalize_intensity(3 * data + 50, mask), out, atol=1e-5)
    with pytest.raises(T1Error, match="constant"):
        normalize_intensity(np.ones_like(data), mask)
    with pytest.raises(T1Error, match="fewer than 2"):
        normalize_intensity(data, np.zeros_like(mask))


# --------------------------------------------------------------------------- registration
def test_registration_recovers_a_known_affine(raw_run):
    """The moved (and reoriented) template comes back: high correlation with the template,
    the recovered input → template matrix within a millimetre of the applied one."""
    raw, out, info, _, _ = raw_run
    reg = info["Registration"]
    assert reg["Correlation"] > 0.85
    recovered = np.array(reg["InputToTemplateAffine"])
    assert np.allclose(np.array(reg["TemplateToInputAffine"]) @ recovered, np.eye(4), atol=1e-6)
    error = displacement_mm(np.linalg.inv(recovered), np.linalg.inv(KNOWN))
    assert error.mean() < 1.5 and error.max() < 2.5, (error.mean(), error.max())
    # without registration the image is far off (so the test is not trivially met)
    assert displacement_mm(np.eye(4), np.linalg.inv(KNOWN)).mean() > 5


def test_raw_output_on_the_grid_normalized_in_the_brain(raw_run):
    _, out, info, _, _ = raw_run
    img = nb.load(out)
    shape, affine = template_grid()
    assert img.shape == shape and np.allclose(img.affine, affine)
    assert img.get_data_dtype() == np.float32
    assert img.header.get_sform(coded=True)[1] == 4 and img.header.get_qform(coded=True)[1] == 4
    data = img.get_fdata()
    mask = np.asarray(grid_mask().dataobj) > 0
    assert np.all(data[~mask] == 0)
    assert abs(data[mask].mean()) < 1e-4 and abs(data[mask].std() - 1) < 1e-4
    template, tmask = load_template()
    tpl = t1.resample(template, shape, affine, support=np.asarray(tmask.dataobj) > 0)
    assert np.corrcoef(data[mask], tpl[mask])[0, 1] > 0.9
    assert info["GridShape"] == list(shape) and info["VoxelSize"] == [3.0] * 3
    assert info["TemplateSpace"] == "MNI152NLin2009aSym"
    assert info["BrainVoxels"] == int(mask.sum())
    assert {"BiasFieldCorrection", "Normalization", "Mask", "Resampling"} <= set(info)
    assert "Sources" not in info
    json.dumps(info)


def test_same_seed_same_bytes(raw_run, tmp_path):
    """With one ITK thread, a rerun with the same seed writes the same bytes."""
    raw, out, info, _, _ = raw_run
    again = tmp_path / "again.nii.gz"
    info2 = preprocess_t1(raw, again, random_seed=3)
    if t1._itk_threads and t1._itk_threads[0] == 1:
        assert again.read_bytes() == out.read_bytes()
        assert info2["Registration"]["TemplateToInputAffine"] == \
            info["Registration"]["TemplateToInputAffine"]
    else:  # ITK started with several threads in this process: rounding differs, results close
        a, b = nb.load(out).get_fdata(), nb.load(again).get_fdata()
        assert np.corrcoef(a.ravel(), b.ravel())[0, 1] > 0.999


def test_simulated_raw_jitter_is_undone(tmp_path):
    """``xaibids-simulate t1-atrophy --space raw``: the recovered transform matches the
    simulator's head-position jitter (noise, bias field, 2 mm voxels)."""
    from xaibids.simulate import simulate

    simulate("t1-atrophy", tmp_path, n_subjects=2, seed=1, space="raw")
    truth = pd.read_csv(tmp_path / "derivatives/fmriprep/groundtruth.tsv", sep="\t")
    row = truth.iloc[0]
    applied = np.eye(4)
    values = [float(v) for v in row["raw_to_template_affine"].split(",")]
    applied[:3] = np.array(values).reshape(3, 4)
    label = row["participant_id"]
    registered, info = register_to_template(tmp_path / label / "anat" / f"{label}_T1w.nii.gz")
    template, mask = load_template()
    assert registered.shape == template.shape and np.allclose(registered.affine, template.affine)
    assert info["correlation"] > 0.8
    error = displacement_mm(np.array(info["template_to_input"]), np.linalg.inv(applied))
    assert error.mean() < 1.5, error.mean()
    assert set(info["seconds"]) == {"n4", "registration"}


def test_unreadable_and_empty_inputs_name_the_file(tmp_path):
    bad = tmp_path / "sub-01_T1w.nii.gz"
    bad.write_bytes(b"not a nifti")
    with pytest.raises(T1Error, match="sub-01_T1w"):
        preprocess_t1(bad, tmp_path / "out.nii.gz")
    zeros = tmp_path / "sub-02_T1w.nii.gz"
    nb.Nifti1Image(np.zeros((8, 8, 8), np.float32), np.eye(4)).to_filename(zeros)
    with pytest.raises(T1Error, match="only zeros"):
        preprocess_t1(zeros, tmp_path / "out.nii.gz")


# --------------------------------------------------------------------------- template space
def fmriprep_like(root: Path, shift_mm: float = 0.0) -> tuple[Path, Path]:
    """A template-space T1w as fMRIPrep writes it (skull kept: a bright shell outside the
    brain) and its brain mask, on the 2 mm template grid."""
    from nilearn.datasets import load_mni152_brain_mask, load_mni152_template

    tpl = load_mni152_template(resolution=2)
    brain = load_mni152_brain_mask(resolution=2).get_fdata() > 0
    shell = (ndimage.binary_dilation(brain, iterations=4)
             & ~ndimage.binary_dilation(brain, iterations=2))
    data = 800 * tpl.get_fdata() + 1500 * shell
    mask = ndimage.shift(brain.astype(float), (shift_mm / 2, 0, 0), order=0) > 0
    t1w = root / "sub-01_space-MNI152NLin2009cAsym_desc-preproc_T1w.nii.gz"
    mask_file = root / "sub-01_space-MNI152NLin2009cAsym_desc-brain_mask.nii.gz"
    nb.Nifti1Image(data.astype(np.float32), tpl.affine).to_filename(t1w)
    nb.Nifti1Image(mask.astype(np.uint8), tpl.affine).to_filename(mask_file)
    return t1w, mask_file


def test_template_space_input(tmp_path):
    t1w, mask_file = fmriprep_like(tmp_path)
    out = tmp_path / "out.nii.gz"
    info = preprocess_t1(t1w, out, mask_file=mask_file, in_template_space=True,
                         space="MNI152NLin2009cAsym")
    img = nb.load(out)
    shape, affine = template_grid()
    assert img.shape == shape and np.allclose(img.affine, affine)
    data = img.get_fdata()
    gmask = np.asarray(grid_mask().dataobj) > 0
    inside = data != 0
    assert not np.any(inside & ~gmask)  # the skull (outside both masks) is gone
    assert inside.sum() > 0.95 * gmask.sum()
    assert abs(data[inside].mean()) < 1e-4 and abs(data[inside].std() - 1) < 1e-4
    assert info["Registration"]["Type"].startswith("none")
    assert info["Registration"]["Correlation"] > 0.9
    assert info["TemplateSpace"] == "MNI152NLin2009cAsym"
    assert "intersection" in info["Mask"]


def test_template_space_mask_is_intersected(tmp_path):
    """Voxels outside the input's own brain mask are 0 even inside the template's."""
    t1w, mask_file = fmriprep_like(tmp_path, shift_mm=12.0)
    out = tmp_path / "out.nii.gz"
    preprocess_t1(t1w, out, mask_file=mask_file, in_template_space=True)
    data = nb.load(out).get_fdata()
    shape, affine = template_grid()
    own = t1.resample_mask(nb.load(mask_file), shape, affine)
    assert np.all(data[~own] == 0)
    assert (np.asarray(grid_mask().dataobj) > 0).sum() > (data != 0).sum()


def test_template_space_input_in_another_space_is_refused(tmp_path):
    t1w, mask_file = fmriprep_like(tmp_path, shift_mm=120.0)
    with pytest.raises(T1Error, match="not in an MNI152 template space"):
        preprocess_t1(t1w, tmp_path / "out.nii.gz", mask_file=mask_file, in_template_space=True)


# --------------------------------------------------------------------------- interface, report
def test_interface_runs_in_its_working_directory(tmp_path, monkeypatch):
    from xaibids.interfaces.t1 import PreprocessT1w

    t1w, mask_file = fmriprep_like(tmp_path)
    work = tmp_path / "node"
    work.mkdir()
    monkeypatch.chdir(work)
    result = PreprocessT1w(in_file=str(t1w), mask_file=str(mask_file), in_template_space=True,
                           resolution=6.0, space="MNI152NLin2009cAsym").run()
    outputs = result.outputs
    assert Path(outputs.out_file).parent == work and Path(outputs.out_report).parent == work
    img = nb.load(outputs.out_file)
    shape, affine = template_grid(6.0)
    assert img.shape == shape and np.allclose(img.affine, affine)
    assert outputs.provenance["GridShape"] == list(shape)
    json.dumps(outputs.provenance)  # goes into the JSON sidecar as is
    assert Path(outputs.out_report).read_text().startswith("<svg")


def test_registration_reportlet(raw_run):
    _, _, _, root, _ = raw_run
    svg = (root / "registration.svg").read_text()
    assert svg.startswith("<svg") and svg.rstrip().endswith("</svg>")
    assert "<image" in svg and "<path" in svg  # slices (rasters) and the mask outline
    again = plot_registration(root / "sub-01_T1w.nii.gz", root / "again.svg")
    twice = plot_registration(root / "sub-01_T1w.nii.gz", root / "twice.svg")
    assert again.read_bytes() == twice.read_bytes()  # deterministic ids, no date


# --------------------------------------------------------------------------- real data
@pytest.mark.slow
@pytest.mark.skipif(not SHARED_T1.exists(), reason="../shared/data/ds002748-t1w not present")
def test_real_raw_t1w(tmp_path):
    """A real raw T1w of ds002748 (288 × 288 × 181, ~0.87 × 0.87 × 1 mm)."""
    raw = SHARED_T1 / "sub-01" / "anat" / "sub-01_T1w.nii.gz"
    out = tmp_path / "out.nii.gz"
    info = preprocess_t1(raw, out, report_file=tmp_path / "reg.svg")
    reg = info["Registration"]
    assert reg["Correlation"] > 0.4, reg["Correlation"]
    img = nb.load(out)
    assert img.shape == (57, 69, 60)
    # the registration is affine and moderate: scalings within 20 %, no flip
    matrix = np.array(reg["InputToTemplateAffine"])[:3, :3]
    assert np.linalg.det(matrix) > 0 and np.all(np.abs(np.linalg.svd(matrix)[1] - 1) < 0.25)
    print(f"preprocess_t1 on {raw.name}: {info['Seconds']} s ({reg['Seconds']}), "
          f"correlation {reg['Correlation']}; "
          f"md5 {hashlib.md5(out.read_bytes()).hexdigest()}")
