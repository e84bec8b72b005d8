"""xaibids-simulate bold: fMRIPrep-style derivatives with a painted ground truth.

The fast tests use a small block atlas on the MNI brain mask (loading the bundled 1 mm
Harvard-Oxford atlas takes ~20 s); the default atlas is exercised by a slow test.
"""

from __future__ import annotations

import json

import nibabel as nb
import numpy as np
import pandas as pd
import pytest
from scipy import stats

from xaibids.simulate import simulate
from xaibids.simulate.bidsio import tree_digest, validate, validator_available

needs_validator = pytest.mark.skipif(not validator_available(),
                                     reason="bids-validator-deno not installed")
FUNC = "derivatives/fmriprep/sub-{s}/func/sub-{s}_task-rest"
PREFIX = FUNC + "_space-MNI152NLin6Asym_res-2"


@pytest.fixture(scope="module")
def block_atlas(tmp_path_factory):
    """~56 cubic regions (40 mm) tiling nilearn's 4 mm MNI brain mask, plus a labels TSV."""
    from nilearn.datasets import load_mni152_brain_mask

    mask = load_mni152_brain_mask(resolution=4)
    inside = np.asarray(mask.dataobj) > 0
    ijk = np.indices(inside.shape) // 10
    block = ijk[0] * 10000 + ijk[1] * 100 + ijk[2]
    labels = np.zeros(inside.shape, dtype=np.int16)
    ids, counts = np.unique(block[inside], return_counts=True)
    keep = ids[counts >= 40]
    for n, bid in enumerate(keep, start=1):
        labels[(block == bid) & inside] = n
    folder = tmp_path_factory.mktemp("atlas")
    path = folder / "tpl-MNI152NLin6Asym_atlas-Blocks_dseg.nii.gz"
    nb.save(nb.Nifti1Image(labels, mask.affine), path)
    pd.DataFrame({"index": range(1, len(keep) + 1),
                  "name": [f"block{n:02d}" for n in range(1, len(keep) + 1)]}).to_csv(
        folder / "tpl-MNI152NLin6Asym_atlas-Blocks_dseg.tsv", sep="\t", index=False)
    return path


OPTS = dict(voxel_size=6, n_timepoints=40, burn_in=20)


@pytest.fixture(scope="module")
def bold_dataset(block_atlas, tmp_path_factory):
    out = tmp_path_factory.mktemp("bold") / "ds"
    simulate("bold", out, n_subjects=4, seed=3, atlas=str(block_atlas), **OPTS)
    return out


@needs_validator
def test_bold_valid_bids(bold_dataset):
    found = validate(bold_dataset)
    assert found["errors"] == [], found["errors"]


def test_bold_files_and_headers(bold_dataset):
    out = bold_dataset
    parts = pd.read_csv(out / "participants.tsv", sep="\t")
    assert sorted(parts["group"]) == ["control", "control", "hyperexcitable", "hyperexcitable"]
    for s in ("01", "04"):
        bold = nb.load(out / (PREFIX.format(s=s) + "_desc-preproc_bold.nii.gz"))
        mask = nb.load(out / (PREFIX.format(s=s) + "_desc-brain_mask.nii.gz"))
        truth = nb.load(out / (PREFIX.format(s=s) + "_desc-groundtruth_mask.nii.gz"))
        assert bold.shape[3] == 40 and bold.header.get_zooms() == (6.0, 6.0, 6.0, 2.0)
        assert bold.shape[:3] == mask.shape == truth.shape
        assert np.allclose(bold.affine, mask.affine)
        side = json.loads((out / (PREFIX.format(s=s) + "_desc-preproc_bold.json")).read_text())
        assert side["RepetitionTime"] == 2.0 and side["TaskName"] == "rest"
        data = np.asarray(bold.dataobj)
        inside = np.asarray(mask.dataobj) > 0
        assert (data[~inside] == 0).all() and data[inside].mean() > 500
        assert (np.asarray(truth.dataobj)[~inside] == 0).all()
        raw = nb.load(out / f"sub-{s}/func/sub-{s}_task-rest_bold.nii.gz")
        assert raw.header.get_zooms()[3] == 2.0 and raw.shape[3] == 40
        conf = pd.read_csv(out / (FUNC.format(s=s) + "_desc-confounds_timeseries.tsv"),
                           sep="\t", na_values="n/a")
        for col in ("trans_x", "rot_z_derivative1_power2", "global_signal", "csf",
                    "white_matter_power2", "framewise_displacement", "a_comp_cor_00",
                    "cosine00", "std_dvars"):
            assert col in conf.columns
        assert len(conf) == 40 and np.isnan(conf["framewise_displacement"][0])
    feats = pd.read_csv(out / "derivatives/fmriprep/groundtruth_features.tsv", sep="\t")
    assert feats["relevant"].sum() == max(1, round(0.05 * (feats["node"] != "n/a").sum()))


def test_bold_confounds_load_with_nilearn(bold_dataset):
    from nilearn.interfaces.fmriprep import load_confounds

    img = str(bold_dataset / (PREFIX.format(s="02") + "_desc-preproc_bold.nii.gz"))
    conf, sample_mask = load_confounds(img, strategy=("motion", "high_pass", "wm_csf"))
    assert conf.shape[0] == 40 and "trans_x" in conf and "csf" in conf and sample_mask is None
    conf, _ = load_confounds(img, strategy=("motion", "high_pass", "compcor"),
                             compcor="anat_combined", n_compcor=5)
    assert [c for c in conf.columns if "comp_cor" in c] == [f"a_comp_cor_{i:02d}"
                                                            for i in range(5)]
    conf, sample_mask = load_confounds(img, strategy=("motion", "scrub", "global_signal"),
                                       fd_threshold=0.2, std_dvars_threshold=3)
    assert "global_signal" in conf


def test_bold_same_seed_byte_identical(bold_dataset, block_atlas, tmp_path):
    again = tmp_path / "again"
    simulate("bold", again, n_subjects=4, seed=3, atlas=str(block_atlas), **OPTS)
    assert tree_digest(again) == tree_digest(bold_dataset)


def _region_means(path, labels, idx):
    data = np.asarray(nb.load(path).dataobj, dtype=float)
    return np.stack([data[labels == i].mean(axis=0) for i in idx], axis=1)  # (T, R)


def _clean_regression(ts, confounds_tsv):
    """Residuals of ``ts`` after the motion parameters and their derivatives, the white-matter
    and CSF signals, cosines and a linear trend."""
    conf = pd.read_csv(confounds_tsv, sep="\t", na_values="n/a").fillna(0)
    motion = ["trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z"]
    cols = ([c for c in conf if c.startswith("cosine")] + motion
            + [f"{m}_derivative1" for m in motion] + ["csf", "white_matter"])
    design = np.column_stack([np.ones(len(ts)), np.linspace(-1, 1, len(ts)), conf[cols]])
    return ts - design @ np.linalg.lstsq(design, ts, rcond=None)[0]


def _labels_on_grid(atlas_path, out):
    from nilearn.image import resample_to_img

    mask = nb.load(out / (PREFIX.format(s="01") + "_desc-brain_mask.nii.gz"))
    labels = np.asarray(resample_to_img(nb.load(atlas_path), mask, interpolation="nearest",
                                        force_resample=True, copy_header=True).dataobj)
    return labels * (np.asarray(mask.dataobj) > 0)


def test_bold_motion_artifacts_are_what_the_confounds_remove(bold_dataset, block_atlas,
                                                             tmp_path):
    """The residual motion artefacts (spin history, a widespread drop after movements) survive
    averaging over regions, vary between subjects with their motion, and are what fMRIPrep's
    confounds, read by nilearn's ``simple`` strategy, regress out."""
    from nilearn.interfaces.fmriprep import load_confounds_strategy

    still = tmp_path / "still"
    simulate("bold", still, n_subjects=4, seed=3, atlas=str(block_atlas), motion_artifact=0.0,
             **OPTS)
    labels = _labels_on_grid(block_atlas, bold_dataset)
    idx = pd.read_csv(bold_dataset / "derivatives/fmriprep/groundtruth_features.tsv",
                      sep="\t")["index"].to_numpy()
    mean_fd, explained = [], []
    for s in ("01", "02", "03", "04"):
        moving = bold_dataset / (PREFIX.format(s=s) + "_desc-preproc_bold.nii.gz")
        artefact = (_region_means(moving, labels, idx)
                    - _region_means(still / (PREFIX.format(s=s) + "_desc-preproc_bold.nii.gz"),
                                    labels, idx))
        conf, _ = load_confounds_strategy(str(moving), denoise_strategy="simple")
        design = np.column_stack([np.ones(len(conf)), conf.to_numpy()])
        centred = artefact - artefact.mean(axis=0)
        residual = artefact - design @ np.linalg.lstsq(design, artefact, rcond=None)[0]
        explained.append(1 - (residual**2).sum() / (centred**2).sum())
        mean_fd.append(pd.read_csv(bold_dataset / (FUNC.format(s=s)
                                                   + "_desc-confounds_timeseries.tsv"),
                                   sep="\t", na_values="n/a")["framewise_displacement"].mean())
        # up to a few percent of the baseline (~800) in region means
        assert np.abs(centred).max() > 5.0
    assert min(explained) > 0.9, explained
    assert max(mean_fd) > 1.5 * min(mean_fd), mean_fd  # subjects move to different degrees


def test_bold_subjects_move_to_their_own_degree():
    """The log-normal motion level spreads the subjects' mean framewise displacement as in real
    resting-state cohorts: a median of about 0.15 mm, a few subjects several times that."""
    from xaibids.simulate.base import stream
    from xaibids.simulate.bold import MOTION_LEVEL_SD, framewise_displacement, motion_parameters

    mean_fd = np.array([
        framewise_displacement(motion_parameters(
            stream(0, 3, i), 100, float(np.exp(MOTION_LEVEL_SD * stream(0, 6, i).standard_normal())))
        )[1:].mean() for i in range(200)])
    low, median, high = np.percentile(mean_fd, [5, 50, 95])
    assert 0.1 < median < 0.2 and high / low > 4, (low, median, high)


def test_bold_painted_signals_and_truth(bold_dataset, block_atlas):
    """Region means of the images follow the simulated RNN signals; the truth mask is the
    union of the ground-truth regions."""
    from xaibids.simulate.base import balanced_labels, stream
    from xaibids.simulate.rnn import build_network, clean_signals

    out = bold_dataset
    labels = _labels_on_grid(block_atlas, out)
    feats = pd.read_csv(out / "derivatives/fmriprep/groundtruth_features.tsv", sep="\t")
    relevant = feats.loc[feats["relevant"] == 1, "index"].to_numpy()
    truth = np.asarray(nb.load(
        out / (PREFIX.format(s="03") + "_desc-groundtruth_mask.nii.gz")).dataobj) > 0
    assert np.array_equal(truth, np.isin(labels, relevant))
    params = json.loads((out / "derivatives/fmriprep/simulation.json").read_text())["Parameters"]
    rng0 = stream(3, 0)
    groups = balanced_labels(4, rng0)
    net = build_network(params["n_nodes"], 10, 0.1, 0.05, params["severity"], rng0,
                        excitability=params["excitability"], coupling=params["coupling"])
    assert (params["excitability"], params["coupling"], params["severity"]) == ("local", 0.8, 0.5)
    assert list(feats.index[feats["relevant"] == 1]) == list(net.affected)
    signals = clean_signals(net, groups, 3, 40, 2.0, 0.1, 20)
    idx = feats["index"].to_numpy()
    for s in range(4):
        ts = _region_means(out / (PREFIX.format(s=f"{s + 1:02d}") + "_desc-preproc_bold.nii.gz"),
                           labels, idx)
        conf = out / (FUNC.format(s=f"{s + 1:02d}") + "_desc-confounds_timeseries.tsv")
        ts = _clean_regression(ts, conf)
        clean = _clean_regression(signals[s], conf)  # same filter on both sides
        r = np.array([np.corrcoef(ts[:, j], clean[:, j])[0, 1] for j in range(len(idx))])
        # 0 dB per voxel against the largest regional variance (that of the hyperexcitable
        # regions): most regions' own signal is weak next to the noise
        assert np.median(r) > 0.5 and r.min() > 0.0


@pytest.mark.slow
def test_bold_class_signal_in_ground_truth_regions(block_atlas, tmp_path):
    """At the simulator's defaults (``excitability='local'``: the affected regions'
    self-excitation raised in a stable network), region means extracted from the images and
    cleaned of motion and cosine regressors fluctuate more in the truth regions of group
    ``hyperexcitable``; the rest of the network changes far less."""
    out = tmp_path / "ds"
    n = 40
    simulate("bold", out, n_subjects=n, seed=5, atlas=str(block_atlas), voxel_size=8,
             prevalence=0.1)
    labels = _labels_on_grid(block_atlas, out)
    feats = pd.read_csv(out / "derivatives/fmriprep/groundtruth_features.tsv", sep="\t")
    idx = feats["index"].to_numpy()
    rel = feats["relevant"].to_numpy() == 1
    adj = pd.read_csv(out / "derivatives/fmriprep/rnn_adjacency.tsv", sep="\t")
    adj = adj.set_index("node").to_numpy().astype(float)
    group = pd.read_csv(out / "participants.tsv", sep="\t")["group"].to_numpy()
    log_sd = []
    for s in range(1, n + 1):
        ts = _region_means(out / (PREFIX.format(s=f"{s:02d}") + "_desc-preproc_bold.nii.gz"),
                           labels, idx)
        ts = _clean_regression(ts, out / (FUNC.format(s=f"{s:02d}")
                                          + "_desc-confounds_timeseries.tsv"))
        log_sd.append(np.log(ts.std(axis=0)))
    log_sd = np.array(log_sd)
    t, p = stats.ttest_ind(log_sd[group == "hyperexcitable"], log_sd[group == "control"])
    assert (t[rel] > 4).all()
    # the hyperexcitable regions drive their graph neighbours a little (network spillover);
    # regions that are not neighbours of a ground-truth region carry no class signal
    neighbour = (adj[rel].sum(axis=0) > 0) & ~rel
    assert (p[~rel & ~neighbour] < 0.05 / len(idx)).sum() == 0
    assert np.abs(t[neighbour]).mean() < t[rel].mean() / 2


def test_bold_unknown_affected_region(block_atlas, tmp_path):
    with pytest.raises(ValueError, match="not regions of the atlas"):
        simulate("bold", tmp_path / "x", n_subjects=2, atlas=str(block_atlas),
                 affected="Nowhere", **OPTS)
    assert not (tmp_path / "x").exists()


@pytest.mark.slow
@needs_validator
def test_bold_default_harvard_oxford(tmp_path):
    out = tmp_path / "ho"
    simulate("bold", out, n_subjects=2, seed=1, n_timepoints=30, burn_in=20,
             affected="Right_Cingulate_Gyrus_posterior_division,Left_Precuneous_Cortex")
    assert validate(out)["errors"] == []
    feats = pd.read_csv(out / "derivatives/fmriprep/groundtruth_features.tsv", sep="\t")
    assert set(feats.loc[feats["relevant"] == 1, "feature"]) == {
        "Right_Cingulate_Gyrus_posterior_division", "Left_Precuneous_Cortex"}
    ventricles = feats[feats["feature"].str.contains("Ventric")]
    assert len(ventricles) == 2 and ventricles["node"].isna().all()
    conf = pd.read_csv(out / (FUNC.format(s="01") + "_desc-confounds_timeseries.tsv"), sep="\t")
    assert conf["csf"].notna().all()
