"""ICA features: group ICA recovers simulated maps, back-reconstruction equals least squares,
template loading and validation, painting importance into the brain."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nb
import numpy as np
import pandas as pd
import pytest
from nilearn.maskers import NiftiMasker
from nilearn.masking import apply_mask, compute_epi_mask
from scipy.optimize import linear_sum_assignment

from tests.conftest import SHARED_DATA
from xaibids.config import Config
from xaibids.errors import XaibidsError
from xaibids.features.ica import dual_regression, extract_ica_timeseries, group_mask, paint_components
from xaibids.features.ica_templates import (
    IcaError, component_domains, default_component_names, load_ica_template,
)
from xaibids.fileio import read_timeseries_tsv
from xaibids.inputs.layout import BoldRun, SubjectData
from xaibids.workflows.ica import run_group_ica

SPACE = "MNI152NLin6Asym"
GIFT = SHARED_DATA / "gift-lowres-bold"


def _bold_run(deriv: Path, sub: str, img: nb.Nifti1Image, mask: nb.Nifti1Image,
              tr: float) -> BoldRun:
    """Write one run in fMRIPrep naming and return it as collect_bold_runs would."""
    func = deriv / f"sub-{sub}" / "func"
    func.mkdir(parents=True, exist_ok=True)
    prefix = f"sub-{sub}_task-rest_space-{SPACE}"
    bold = func / f"{prefix}_desc-preproc_bold.nii.gz"
    img.to_filename(bold)
    mask_path = func / f"{prefix}_desc-brain_mask.nii.gz"
    mask.to_filename(mask_path)
    entities = {"subject": sub, "task": "rest", "space": SPACE, "desc": "preproc",
                "suffix": "bold", "datatype": "func", "extension": ".nii.gz"}
    return BoldRun(subject=sub, bold=str(bold), mask=str(mask_path), confounds=None,
                   entities=entities, metadata={"RepetitionTime": tr})


def _config(root: Path, n_components: int) -> Config:
    cfg = Config()
    cfg.workflow.confounds = "none"  # the simulated and GIFT runs have no confounds table
    cfg.workflow.ica_components = n_components
    cfg.execution.bids_dir = str(root / "bids")
    cfg.execution.derivatives = {"fmriprep": str(root / "deriv")}
    cfg.seeds.random_seed = 3
    return cfg


def _blob_dataset(root: Path, n_subjects=3, n_vols=80, seed=0):
    """Five non-overlapping Gaussian blobs on a 14³ grid of 4 mm, each with an independent
    Laplace (super-Gaussian) source per subject, plus small Gaussian noise."""
    rng = np.random.default_rng(seed)
    shape = (14, 14, 14)
    affine = np.diag([4.0, 4.0, 4.0, 1.0])
    affine[:3, 3] = -28
    ijk = np.indices(shape).reshape(3, -1).T
    centers = [(3, 3, 3), (10, 3, 10), (3, 10, 10), (10, 10, 3), (7, 7, 7)]
    maps = []
    for center in centers:
        d2 = ((ijk - np.array(center)) ** 2).sum(1)
        blob = np.exp(-d2 / (2 * 1.5**2))
        blob[d2 > 6] = 0  # radius 2.45 voxels: the blobs do not overlap
        maps.append(blob)
    maps = np.array(maps)
    assert (np.count_nonzero(maps, axis=0) <= 1).all()
    mask = nb.Nifti1Image(np.ones(shape, np.uint8), affine)
    subjects, sources = [], []
    for s in range(n_subjects):
        src = rng.laplace(size=(n_vols, len(centers)))
        data = 100 + src @ maps + 0.05 * rng.normal(size=(n_vols, ijk.shape[0]))
        img = nb.Nifti1Image(data.T.reshape(shape + (n_vols,)).astype(np.float32), affine)
        run = _bold_run(root / "deriv", f"{s + 1:02d}", img, mask, tr=2.0)
        subjects.append(SubjectData(subject=f"{s + 1:02d}", bold_runs=[run]))
        sources.append(src)
    return subjects, maps, sources


def _best_match(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Hungarian matching of rows of ``a`` to rows of ``b`` by absolute correlation."""
    k = len(a)
    corr = np.abs(np.corrcoef(np.vstack([a, b]))[:k, k:])
    rows, cols = linear_sum_assignment(-corr)
    return cols[np.argsort(rows)], corr[rows, cols][np.argsort(rows)]


def test_group_ica_recovers_simulated_maps(tmp_path):
    subjects, truth, sources = _blob_dataset(tmp_path)
    cfg = _config(tmp_path, n_components=5)
    runs, comp_path, methods = run_group_ica(cfg, subjects, tmp_path / "out", tmp_path / "work",
                                             smoothing_fwhm=None, n_init=1)
    comp_path = Path(comp_path)
    assert comp_path == (tmp_path / "out" / "atlases" / "atlas-CanICA5"
                         / f"atlas-CanICA5_space-{SPACE}_desc-ica_components.nii.gz")
    maps = nb.load(comp_path).get_fdata().reshape(-1, 5).T
    match, corr = _best_match(maps, truth)
    print("best-match |r| of recovered vs simulated maps:", np.round(corr, 3))
    assert corr.min() > 0.95
    assert sorted(match) == list(range(5))
    # the components table and sidecar beside the maps
    table = pd.read_csv(comp_path.with_name(comp_path.name.replace(".nii.gz", ".tsv")), sep="\t")
    assert table["name"].tolist() == ["IC01", "IC02", "IC03", "IC04", "IC05"]
    meta = json.loads(comp_path.with_name(comp_path.name.replace(".nii.gz", ".json")).read_text())
    assert meta["RandomSeed"] == 3 and meta["Algorithm"] == "CanICA"
    assert (comp_path.parent / f"atlas-CanICA5_space-{SPACE}_desc-brain_mask.nii.gz").exists()
    # every run's timecourses, BIDS-named, follow the simulated sources
    assert [r[0] for r in runs] == ["sub-01", "sub-02", "sub-03"]
    for (label, tsv), src in zip(runs, sources):
        assert Path(tsv).name == f"{label}_task-rest_desc-ica_timeseries.tsv"
        ts = read_timeseries_tsv(tsv)
        assert list(ts.columns) == table["name"].tolist()
        for k in range(5):
            r = abs(np.corrcoef(ts.iloc[:, k], src[:, match[k]])[0, 1])
            assert r > 0.95, (label, k, r)
        side = json.loads(Path(tsv).with_suffix(".json").read_text())
        assert side["RepetitionTime"] == 2.0 and side["SamplingFrequency"] == 0.5
        assert side["NumberOfComponents"] == 5 and side["ICAMode"] == "group"
        assert side["Sources"][0].startswith("bids:fmriprep:sub-")
        assert side["ICAComponents"].startswith("bids::atlases/atlas-CanICA5/")
    assert "[@varoquaux2010]" in methods and "[@beckmann2009]" in methods
    assert not (tmp_path / "work" / "ica" / "cleaned").exists()


def test_group_ica_recovers_regions_of_simulated_bold(tmp_path):
    """``xaibids-simulate bold`` with an atlas of eight octants of the brain: each region carries
    its own RNN node's BOLD signal (coupled in time, as in Strock et al. 2025, but spatial ICA needs only
    spatially independent maps, which non-overlapping regions are) under smooth noise, drift
    and motion. Group ICA with the default smoothing and confound regression finds every
    octant. At the simulator's default 0 dB per-voxel SNR the smooth noise hides them (best
    match 0.16-0.53 in a trial run), so this runs at 10 dB (0.78-0.85 there)."""
    from nilearn import datasets
    from nilearn.image import resample_to_img

    from xaibids.cli.simulate import main as simulate
    from xaibids.inputs.layout import build_layout, collect_bold_runs

    mask = datasets.load_mni152_brain_mask(resolution=2)
    brain = np.asarray(mask.dataobj) > 0
    ijk = np.indices(brain.shape)
    centre = [int(np.median(axis)) for axis in np.nonzero(brain)]
    octants = (1 + (ijk[0] > centre[0]) + 2 * (ijk[1] > centre[1])
               + 4 * (ijk[2] > centre[2])).astype(np.int16) * brain
    nb.Nifti1Image(octants, mask.affine).to_filename(tmp_path / "octants.nii.gz")
    pd.DataFrame({"index": range(1, 9), "name": [f"octant{i}" for i in range(1, 9)]}).to_csv(
        tmp_path / "octants.tsv", sep="\t", index=False)
    ds = tmp_path / "sim"
    assert simulate(["bold", str(ds), "--n-subjects", "4", "--atlas",
                     str(tmp_path / "octants.nii.gz"), "--k", "4", "--snr-db", "10"]) == 0
    cfg = _config(tmp_path, n_components=8)
    cfg.workflow.confounds = "simple"  # the simulated motion and drift are in its confounds
    cfg.execution.bids_dir = str(ds)
    cfg.execution.derivatives = {"fmriprep": str(ds / "derivatives" / "fmriprep")}
    layout = build_layout(ds, cfg.execution.derivatives, None)
    subjects = [SubjectData(subject=s, bold_runs=collect_bold_runs(layout, s, {}, [], [], None,
                                                                   True))
                for s in layout.get_subjects()]
    _, comp_path, _ = run_group_ica(cfg, subjects, tmp_path / "out", tmp_path / "work")
    components = nb.load(comp_path)
    labels = np.rint(resample_to_img(nb.load(tmp_path / "octants.nii.gz"),
                                     components.slicer[..., 0], interpolation="nearest",
                                     force_resample=True, copy_header=True).get_fdata())
    inside = labels > 0
    truth = np.array([(labels[inside] == k).astype(float) for k in range(1, 9)])
    match, corr = _best_match(components.get_fdata()[inside].T, truth)
    print("best-match |r| of group ICA components vs simulated regions:", np.round(corr, 3))
    assert sorted(match) == list(range(8))
    assert corr.min() > 0.7


def test_group_ica_same_seed_same_maps_and_stage2(tmp_path):
    subjects, truth, _ = _blob_dataset(tmp_path, n_subjects=2, n_vols=40, seed=1)
    cfg = _config(tmp_path, n_components=5)
    _, first, _ = run_group_ica(cfg, subjects, tmp_path / "a", tmp_path / "wa",
                                smoothing_fwhm=None, n_init=1, stage2=True)
    _, second, _ = run_group_ica(cfg, subjects, tmp_path / "b", tmp_path / "wb",
                                 smoothing_fwhm=None, n_init=1)
    np.testing.assert_array_equal(nb.load(first).get_fdata(), nb.load(second).get_fdata())
    assert Path(first).read_bytes() == Path(second).read_bytes()  # no time stamp in the gzip
    sub_maps = sorted((tmp_path / "a").glob("sub-*/func/*_desc-ica_components.nii.gz"))
    assert [p.name for p in sub_maps] == [
        f"sub-{s}_task-rest_space-{SPACE}_desc-ica_components.nii.gz" for s in ("01", "02")]
    group = nb.load(first).get_fdata().reshape(-1, 5).T
    for path in sub_maps:
        own = nb.load(path).get_fdata().reshape(-1, 5).T
        _, corr = _best_match(own, truth)
        assert corr.min() > 0.9
        assert np.all(np.abs(np.corrcoef(np.vstack([own, group]))[:5, 5:]).diagonal() > 0.9)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_dictlearning_option_recovers_maps(tmp_path):
    subjects, truth, _ = _blob_dataset(tmp_path, n_subjects=2, n_vols=60, seed=2)
    runs, comp, methods = run_group_ica(_config(tmp_path, 5), subjects, tmp_path / "out",
                                        tmp_path / "work", algorithm="dictlearning",
                                        smoothing_fwhm=None, alpha=1.0)
    assert Path(comp).parent.name == "atlas-DictLearning5" and len(runs) == 2
    _, corr = _best_match(nb.load(comp).get_fdata().reshape(-1, 5).T, truth)
    print("DictLearning best-match |r|:", np.round(corr, 3))
    assert corr.min() > 0.9
    assert "[@mensch2016]" in methods and "[@varoquaux2010]" not in methods


def test_dictlearning_without_components_is_a_clear_error(tmp_path):
    subjects, _, _ = _blob_dataset(tmp_path, n_subjects=2, n_vols=30, seed=2)
    with pytest.raises(XaibidsError, match="found no component.*--ica-alpha"):
        run_group_ica(_config(tmp_path, 3), subjects, tmp_path / "out", tmp_path / "work",
                      algorithm="dictlearning", smoothing_fwhm=None, alpha=1e4)


def test_dual_regression_equals_lstsq_and_stage2_recovers_maps():
    rng = np.random.default_rng(0)
    n_vols, n_vox, k = 120, 400, 4
    maps = rng.gamma(1.0, size=(k, n_vox)) * (rng.random((k, n_vox)) < 0.3)
    tcs = rng.laplace(size=(n_vols, k))
    data = tcs @ maps + 5.0 + 0.01 * rng.normal(size=(n_vols, n_vox))
    result = dual_regression(data, maps, demean=True, stage2=True)
    design = np.c_[maps.T, np.ones(n_vox)]
    expected = np.linalg.lstsq(design, data.T, rcond=None)[0][:k].T
    np.testing.assert_allclose(result.timecourses, expected, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(result.timecourses, tcs, atol=0.01)
    # stage 2: maps scaled by each timecourse's standard deviation (variance normalization)
    np.testing.assert_allclose(result.maps, maps * tcs.std(0)[:, None], atol=0.02)
    plain = dual_regression(data, maps, demean=False)
    np.testing.assert_allclose(plain.timecourses, np.linalg.lstsq(maps.T, data.T, rcond=None)[0].T)
    with pytest.raises(IcaError, match="share their voxels"):
        dual_regression(data[:, :10], maps)
    with pytest.raises(IcaError, match="more volumes"):
        dual_regression(data[:3], maps, stage2=True)


@pytest.mark.skipif(not GIFT.is_dir(), reason="shared GIFT test data not available")
def test_gift_group_ica_and_template_mode_equal_direct_lstsq(tmp_path):
    files = sorted(GIFT.glob("sub-*_lowres.nii.gz"))
    assert len(files) == 6
    runs = []
    for path in files:
        img = nb.load(path)
        sub = path.name.split("_")[0][4:]
        runs.append(_bold_run(tmp_path / "deriv", sub, img, compute_epi_mask(img), tr=1.0))
    group, other = runs[:3], runs[3:]
    cfg = _config(tmp_path, n_components=6)
    written, comp_path, _ = run_group_ica(
        cfg, [SubjectData(subject=r.subject, bold_runs=[r]) for r in group],
        tmp_path / "out", tmp_path / "work", n_init=1)
    comp_path = Path(comp_path)
    mask = nb.load(next(comp_path.parent.glob("*_desc-brain_mask.nii.gz")))
    assert np.array_equal(np.asarray(mask.dataobj) > 0,
                          np.all([np.asarray(nb.load(r.mask).dataobj) > 0 for r in group], 0))
    maps = apply_mask(nb.load(comp_path), mask)
    assert maps.shape == (6, int(np.asarray(mask.dataobj).sum()))

    def direct(bold, mask_img, masked_maps):
        masker = NiftiMasker(mask_img=mask_img, detrend=True, standardize=None, t_r=1.0)
        data = masker.fit_transform(bold)
        design = np.c_[masked_maps.T, np.ones(masked_maps.shape[1])]
        return np.linalg.lstsq(design, data.T.astype(np.float64), rcond=None)[0][:-1].T

    for (label, tsv), run in zip(written, group):
        got = read_timeseries_tsv(tsv).to_numpy()
        expected = direct(run.bold, mask, maps)
        assert got.shape == (50, 6) and label == f"sub-{run.subject}"
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5 * np.abs(expected).max())
    # template mode: the group maps of the first three subjects, named by the TSV beside them
    template = load_ica_template(comp_path)
    assert template.names == default_component_names(6)
    for run in other:
        result = extract_ica_timeseries(run.bold, run.mask, template.img, template.names,
                                        confounds="none", min_coverage=0.0,
                                        metadata=run.metadata)
        own_mask = nb.load(run.mask)
        expected = direct(run.bold, own_mask, apply_mask(template.img, own_mask))
        assert not result.maps_resampled
        np.testing.assert_allclose(result.data, expected, rtol=1e-5,
                                   atol=1e-5 * np.abs(expected).max())
        assert (result.coverage > 0.5).all()


def test_group_ica_refuses_bad_inputs(tmp_path):
    subjects, _, _ = _blob_dataset(tmp_path, n_subjects=1, n_vols=6)
    with pytest.raises(XaibidsError, match="keeps 6 volume"):
        run_group_ica(_config(tmp_path, 8), subjects, tmp_path / "out", tmp_path / "work")
    with pytest.raises(XaibidsError, match="needs preprocessed BOLD"):
        run_group_ica(_config(tmp_path, 5), [SubjectData(subject="09")], tmp_path / "out",
                      tmp_path / "work")
    with pytest.raises(XaibidsError, match="Unknown ICA algorithm"):
        run_group_ica(_config(tmp_path, 5), subjects, tmp_path / "o", tmp_path / "w",
                      algorithm="pca")
    other = SubjectData(subject="02", bold_runs=[BoldRun(
        "02", subjects[0].bold_runs[0].bold, subjects[0].bold_runs[0].mask, None,
        {**subjects[0].bold_runs[0].entities, "space": "MNI152NLin2009cAsym"}, {})])
    with pytest.raises(XaibidsError, match="one template space"):
        run_group_ica(_config(tmp_path, 5), subjects + [other], tmp_path / "o", tmp_path / "w")


def test_group_mask_intersection_and_union(tmp_path):
    affine = np.eye(4)
    a = np.zeros((6, 6, 6), np.uint8)
    a[:4] = 1
    b = np.zeros((6, 6, 6), np.uint8)
    b[2:] = 1
    paths = []
    for i, data in enumerate((a, b)):
        paths.append(tmp_path / f"m{i}.nii.gz")
        nb.Nifti1Image(data, affine).to_filename(paths[-1])
    inter = np.asarray(group_mask(paths, "intersection").dataobj)
    union = np.asarray(group_mask(paths, "union").dataobj)
    assert np.array_equal(inter, a & b) and np.array_equal(union, a | b)
    c = np.zeros((6, 6, 6), np.uint8)
    c[5:] = 1
    nb.Nifti1Image(c * 0, affine).to_filename(tmp_path / "empty.nii.gz")
    with pytest.raises(IcaError, match="empty"):
        group_mask([paths[0], tmp_path / "empty.nii.gz"])
    with pytest.raises(IcaError, match="mask mode"):
        group_mask(paths, "mean")


def _template(path: Path, n=3, shape=(5, 5, 5)) -> Path:
    data = np.zeros(shape + (n,), np.float32)
    for k in range(n):
        data[k, k, k, k] = 1.0 + k
    nb.Nifti1Image(data, np.eye(4)).to_filename(path)
    return path


def test_load_ica_template_names_order_and_domains(tmp_path):
    nii = _template(tmp_path / "neuromark.nii.gz")
    tpl = load_ica_template(nii)
    assert tpl.names == ["IC01", "IC02", "IC03"] and tpl.labels_path is None
    assert component_domains(tpl) == {}
    # TSV beside it, rows out of order, 1-based index, 'group' column as domain
    pd.DataFrame({"index": [3, 1, 2], "name": ["VIS", "SC", "AUD"],
                  "group": ["visual", "subcortical", "auditory"]}).to_csv(
        tmp_path / "neuromark.tsv", sep="\t", index=False)
    (tmp_path / "neuromark.json").write_text(json.dumps({"Space": SPACE}))
    tpl = load_ica_template(nii)
    assert tpl.names == ["SC", "AUD", "VIS"] and tpl.space == SPACE
    assert component_domains(tpl) == {"SC": "subcortical", "AUD": "auditory", "VIS": "visual"}
    assert default_component_names(100)[:2] == ["IC001", "IC002"]


@pytest.mark.parametrize("rows, message", [
    ({"index": [1, 2], "name": ["a", "b"]}, "2 row"),
    ({"index": [1, 2, 2], "name": ["a", "b", "c"]}, "once each"),
    ({"index": [1, 2, 3], "name": ["a", "b", "a"]}, "unique"),
    ({"index": [1, 2, 3], "label": ["a", "b", "c"]}, "needs 'name'"),
])
def test_load_ica_template_refuses_bad_tables(tmp_path, rows, message):
    nii = _template(tmp_path / "maps.nii.gz")
    pd.DataFrame(rows).to_csv(tmp_path / "maps.tsv", sep="\t", index=False)
    with pytest.raises(IcaError, match=message) as err:
        load_ica_template(nii)
    assert "maps.tsv" in str(err.value)


def test_load_ica_template_refuses_bad_images(tmp_path):
    nb.Nifti1Image(np.ones((4, 4, 4), np.float32), np.eye(4)).to_filename(tmp_path / "m3.nii.gz")
    with pytest.raises(IcaError, match="must be 4D"):
        load_ica_template(tmp_path / "m3.nii.gz")
    data = np.ones((4, 4, 4, 2), np.float32)
    data[..., 1] = 0
    nb.Nifti1Image(data, np.eye(4)).to_filename(tmp_path / "z.nii.gz")
    with pytest.raises(IcaError, match="all-zero volume"):
        load_ica_template(tmp_path / "z.nii.gz")
    with pytest.raises(IcaError, match="does not exist"):
        load_ica_template(tmp_path / "missing.nii.gz")


def test_paint_components_weights_maps(tmp_path):
    nii = _template(tmp_path / "maps.nii.gz")
    img = nb.load(nii)
    painted = paint_components(img, [0.5, 0.0, 2.0], normalize=False).get_fdata()
    data = img.get_fdata()
    np.testing.assert_allclose(painted, 0.5 * data[..., 0] + 2.0 * data[..., 2])
    assert painted.shape == img.shape[:3]
    normalized = paint_components(nii, {"IC02": 1.0, "IC03": -1.0},
                                  names=["IC01", "IC02", "IC03"]).get_fdata()
    assert normalized[1, 1, 1] == pytest.approx(1.0) and normalized[2, 2, 2] == pytest.approx(-1.0)
    assert normalized[0, 0, 0] == 0
    with pytest.raises(IcaError, match="2 weights for 3"):
        paint_components(img, [1.0, 2.0])
    with pytest.raises(IcaError, match="unknown components"):
        paint_components(img, {"X": 1.0}, names=["IC01", "IC02", "IC03"])
