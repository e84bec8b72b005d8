"""xaibids-simulate t1-atrophy: MNI152 T1w with regional atrophy, raw + fMRIPrep-style."""

from __future__ import annotations

import json

import nibabel as nb
import numpy as np
import pandas as pd
import pytest

from xaibids.cli.simulate import main
from xaibids.simulate import simulate
from xaibids.simulate.bidsio import tree_digest, validate, validator_available
from xaibids.simulate.t1 import apply_jitter

needs_validator = pytest.mark.skipif(not validator_available(),
                                     reason="bids-validator-deno not installed")
ANAT = "derivatives/fmriprep/sub-{s}/anat/sub-{s}_space-MNI152NLin2009cAsym"
OPTS = dict(voxel_size=6, severity=0.3)


@pytest.fixture(scope="module")
def t1_dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("t1") / "ds"
    simulate("t1-atrophy", out, n_subjects=6, seed=3, **OPTS)
    return out


def _load(path) -> np.ndarray:
    return np.asarray(nb.load(path).dataobj, dtype=float)


@needs_validator
def test_t1_valid_bids(t1_dataset):
    assert validate(t1_dataset)["errors"] == []


def test_t1_files_participants_and_jitter(t1_dataset):
    out = t1_dataset
    parts = pd.read_csv(out / "participants.tsv", sep="\t")
    assert list(parts.columns) == ["participant_id", "group", "age", "sex"]
    assert sorted(parts["group"]) == ["atrophy"] * 3 + ["control"] * 3
    truth = pd.read_csv(out / "derivatives/fmriprep/groundtruth.tsv", sep="\t")
    for row in truth.itertuples():
        s = row.participant_id[4:]
        raw = nb.load(out / f"sub-{s}/anat/sub-{s}_T1w.nii.gz")
        pre = nb.load(out / (ANAT.format(s=s) + "_desc-preproc_T1w.nii.gz"))
        mask = _load(out / (ANAT.format(s=s) + "_desc-brain_mask.nii.gz")) > 0
        assert raw.shape == pre.shape == mask.shape and np.allclose(raw.affine, pre.affine)
        assert raw.header.get_zooms() == (6.0, 6.0, 6.0)
        side = json.loads((out / (ANAT.format(s=s) + "_desc-preproc_T1w.json")).read_text())
        mat = np.array(side["RawToTemplateAffine"])
        assert np.allclose(mat[:3].ravel(), [float(v) for v in
                                             row.raw_to_template_affine.split(",")])
        assert max(abs(row.rot_x_deg), abs(row.rot_y_deg), abs(row.rot_z_deg)) <= 2.0
        assert max(abs(row.trans_x_mm), abs(row.trans_y_mm), abs(row.trans_z_mm)) <= 2.0
        # the recorded jitter moves the template-space image onto the raw one (the inverse
        # moves it away)
        r, p = _load(raw.get_filename()), _load(pre.get_filename())

        def corr(a, r=r, mask=mask):
            return np.corrcoef(r[mask], a[mask])[0, 1]

        moved = corr(apply_jitter(p, raw.affine, mat))
        assert moved > corr(p) and moved > corr(apply_jitter(p, raw.affine, np.linalg.inv(mat)))
    assert (truth["relevant_features"] ==
            "Left_Hippocampus;Right_Hippocampus;Left_Precuneous_Cortex").all()


def test_t1_atrophy_where_the_truth_says(t1_dataset):
    out = t1_dataset
    parts = pd.read_csv(out / "participants.tsv", sep="\t")
    feats = pd.read_csv(out / "derivatives/fmriprep/groundtruth_features.tsv", sep="\t")
    rel = feats[feats["relevant"] == 1]
    assert sorted(rel["feature"]) == sorted(
        ["Left_Hippocampus", "Right_Hippocampus", "Left_Precuneous_Cortex"])
    assert (rel["expected_loss"] > 0.5 * 0.3).all() and (rel["expected_loss"] < 0.3).all()
    truth = _load(out / (ANAT.format(s="01") + "_desc-groundtruth_mask.nii.gz")) > 0
    brain = _load(out / (ANAT.format(s="01") + "_desc-brain_mask.nii.gz")) > 0
    from scipy import ndimage

    far = brain & ~ndimage.binary_dilation(truth, iterations=3)
    imgs = {g: np.mean([_load(out / (ANAT.format(s=p[4:]) + "_desc-preproc_T1w.nii.gz"))
                        for p in parts.loc[parts["group"] == g, "participant_id"]], axis=0)
            for g in ("control", "atrophy")}
    inside = imgs["atrophy"][truth].mean() / imgs["control"][truth].mean()
    outside = imgs["atrophy"][far].mean() / imgs["control"][far].mean()
    expected = np.average(rel["expected_loss"], weights=rel["n_voxels"])
    assert abs((1 - inside) - expected) < 0.05, (inside, expected)
    assert abs(outside - 1) < 0.03
    per = pd.read_csv(out / "derivatives/fmriprep/sub-01/anat/"
                      "sub-01_desc-groundtruth_regions.tsv", sep="\t")
    assert list(per.columns) == ["region", "index", "n_voxels", "atrophied", "expected_loss"]


def test_t1_same_seed_identical_other_seed_differs(t1_dataset, tmp_path):
    simulate("t1-atrophy", tmp_path / "same", n_subjects=6, seed=3, **OPTS)
    assert tree_digest(tmp_path / "same") == tree_digest(t1_dataset)
    simulate("t1-atrophy", tmp_path / "other", n_subjects=6, seed=4, **OPTS)
    a, b = tree_digest(tmp_path / "other"), tree_digest(t1_dataset)
    assert a.keys() == b.keys()
    assert a["sub-01/anat/sub-01_T1w.nii.gz"] != b["sub-01/anat/sub-01_T1w.nii.gz"]


@needs_validator
def test_t1_template_only(tmp_path):
    out = tmp_path / "tpl"
    simulate("t1-atrophy", out, n_subjects=2, seed=1, voxel_size=8, space="template",
             regions=["Right_Amygdala"])
    assert not list(out.glob("sub-*/anat/*_T1w.nii.gz"))
    assert (out / "sub-01/sub-01_scans.tsv").is_file()
    assert (out / (ANAT.format(s="02") + "_desc-preproc_T1w.nii.gz")).is_file()
    assert validate(out)["errors"] == []


@pytest.mark.parametrize("kwargs, message", [
    (dict(severity=1.5), "--severity"),
    (dict(regions=["Left_Hipocampus"]), "did you mean Left_Hippocampus"),
    (dict(space="native"), "--space"),
    (dict(voxel_size=2.5), "--voxel-size"),
    (dict(jitter=-1), "--jitter"),
])
def test_t1_bad_options(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        simulate("t1-atrophy", tmp_path / "x", n_subjects=2, **kwargs)
    assert not (tmp_path / "x").exists()


def test_t1_cli(tmp_path, capsys):
    out = tmp_path / "cli"
    assert main(["t1-atrophy", str(out), "--n-subjects", "2", "--voxel-size", "8",
                 "--regions", "Left_Hippocampus", "Right_Amygdala", "--severity", "0.4"]) == 0
    assert "wrote the t1-atrophy dataset" in capsys.readouterr().out
    sim = json.loads((out / "derivatives/fmriprep/simulation.json").read_text())
    assert sim["Parameters"]["regions"] == ["Left_Hippocampus", "Right_Amygdala"]
    assert "--regions Left_Hippocampus Right_Amygdala --severity 0.4" in sim["CommandLine"]
    assert main(["t1-atrophy", str(tmp_path / "bad"), "--severity", "0"]) == 1
    assert "--severity" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["t1-atrophy", "--help"])
    assert exc.value.code == 0
