"""xaibids-simulate voxel-patterns: Gotsopoulos et al. 2018's overlapping category patterns (scenarios 1-3)."""

from __future__ import annotations

import json

import nibabel as nb
import numpy as np
import pandas as pd
import pytest

from xaibids.cli.simulate import main
from xaibids.simulate import simulate
from xaibids.simulate.bidsio import tree_digest, validate, validator_available
from xaibids.simulate.voxels import layout_scenario1, layout_scenario2, pattern_means
from xaibids.validation.groundtruth import GroundTruth

needs_validator = pytest.mark.skipif(not validator_available(),
                                     reason="bids-validator-deno not installed")
DERIV = "derivatives/patterns"
OPTS = dict(n_subjects=6, n_trials=6, scenario=1)


@pytest.fixture(scope="module")
def vp_dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("vp") / "ds"
    simulate("voxel-patterns", out, seed=3, **OPTS)
    return out


@needs_validator
def test_voxels_valid_bids(vp_dataset):
    assert validate(vp_dataset)["errors"] == []


def test_voxels_files_and_truth_tables(vp_dataset):
    out = vp_dataset
    parts = pd.read_csv(out / "participants.tsv", sep="\t")
    assert sorted(parts["group"]) == ["cat1"] * 3 + ["cat2"] * 3
    img = nb.load(out / "sub-02/func/sub-02_task-patterns_bold.nii.gz")
    assert img.shape == (20, 20, 20, 6) and img.header.get_zooms() == (4.0, 4.0, 4.0, 10.0)
    events = pd.read_csv(out / "sub-02/func/sub-02_task-patterns_events.tsv", sep="\t")
    group = parts.set_index("participant_id").loc["sub-02", "group"]
    assert len(events) == 6 and (events["trial_type"] == group).all()
    feats = pd.read_csv(out / DERIV / "groundtruth_features.tsv", sep="\t")
    assert len(feats) == 8000
    assert feats["pattern_cat1"].sum() == feats["pattern_cat2"].sum() == 800  # N/10 each
    shared = (feats["pattern_cat1"] & feats["pattern_cat2"]).sum()
    assert shared == 400  # 50 % overlap with the next category
    # the shared block has the same effect in both classes: not informative
    assert feats["relevant"].sum() == 800
    assert (feats["relevant"] == (feats["pattern_cat1"] ^ feats["pattern_cat2"])).all()
    for lv in ("cat1", "cat2"):
        mask = np.asarray(nb.load(out / DERIV / f"groundtruth_class-{lv}_mask.nii.gz").dataobj)
        assert np.array_equal(mask[feats["i"], feats["j"], feats["k"]], feats[f"pattern_{lv}"])
    subj_truth = np.asarray(nb.load(out / DERIV / "sub-01/func/"
                                    "sub-01_task-patterns_desc-groundtruth_mask.nii.gz").dataobj)
    assert np.array_equal(subj_truth[feats["i"], feats["j"], feats["k"]], feats["relevant"])
    truth = GroundTruth.load(out)
    assert truth.dataset_relevant() == set(feats.loc[feats["relevant"] == 1, "feature"])
    assert truth.relevant_features("sub-05") == truth.dataset_relevant()


def test_voxels_same_seed_identical_other_seed_differs(vp_dataset, tmp_path):
    simulate("voxel-patterns", tmp_path / "same", seed=3, **OPTS)
    assert tree_digest(tmp_path / "same") == tree_digest(vp_dataset)
    simulate("voxel-patterns", tmp_path / "other", seed=4, **OPTS)
    a, b = tree_digest(tmp_path / "other"), tree_digest(vp_dataset)
    assert a.keys() == b.keys()
    assert a[f"{DERIV}/groundtruth_features.tsv"] != b[f"{DERIV}/groundtruth_features.tsv"]
    assert a["sub-01/func/sub-01_task-patterns_bold.nii.gz"] != \
        b["sub-01/func/sub-01_task-patterns_bold.nii.gz"]


def test_layouts_follow_the_seed():
    order = np.random.default_rng(0).permutation(10000)
    s1 = [set(p) for p in layout_scenario1(order)]
    assert all(len(p) == 1000 for p in s1)
    for k in range(5):  # half shared with the next, half with the previous category
        assert len(s1[k] & s1[(k + 1) % 5]) == 500 and len(s1[k] & s1[(k + 2) % 5]) == 0
    assert all(len(p - set().union(*(s1[j] for j in range(5) if j != k))) == 0
               for k, p in enumerate(s1))  # no voxel important for one category only
    p1, p2, p3, p4, p5 = (set(p) for p in layout_scenario2(order))
    assert (len(p1), len(p2), len(p3), len(p4)) == (100, 2000, 1000, 1000)
    assert p4 == p5 and p1 <= p4 and len(p3 & p2) == 500 and not (p4 & (p2 | p3))
    left = np.arange(10000) < 5000
    m = pattern_means(3, 10000, left, np.random.default_rng(1), 0.05, 0.07)
    assert set(np.unique(m[:, left])) == {0, 0.05} and set(np.unique(m[:, ~left])) == {0, 0.07}
    size = (m != 0).sum(axis=1)
    assert size[1] == size.max() and size[2] == size[3]  # Gotsopoulos et al. 2018 §4.2.3
    p = m != 0
    only3 = p[2] & ~p[[0, 1, 3, 4]].any(axis=0)
    only4 = p[3] & ~p[[0, 1, 2, 4]].any(axis=0)
    assert only3.sum() > 0 and only4.sum() == 0


def test_class_effect_in_pattern_voxels_only(tmp_path):
    out = tmp_path / "effect"
    simulate("voxel-patterns", out, n_subjects=6, seed=2, scenario=2, n_classes=3, n_trials=8,
             grid_size=16, effect_mean=1.0, effect_sd=0.5)
    feats = pd.read_csv(out / DERIV / "groundtruth_features.tsv", sep="\t")
    parts = pd.read_csv(out / "participants.tsv", sep="\t")
    idx = (feats["i"], feats["j"], feats["k"])
    for row in parts.itertuples():
        data = np.asarray(nb.load(out / f"{row.participant_id}/func/{row.participant_id}"
                                  "_task-patterns_bold.nii.gz").dataobj)[idx]  # (V, T)
        pat = feats[f"pattern_{row.group}"].to_numpy() == 1
        assert abs(data[pat].mean() - 1.0) < 0.15 and abs(data[~pat].mean()) < 0.05
        assert abs(data[pat].std() - np.sqrt(1.25)) < 0.1 and abs(data[~pat].std() - 1) < 0.05


def test_default_effect_is_the_seeds(tmp_path):
    out = tmp_path / "s3"
    simulate("voxel-patterns", out, n_subjects=5, seed=0, scenario=3, n_classes=5, n_trials=2)
    feats = pd.read_csv(out / DERIV / "groundtruth_features.tsv", sep="\t")
    means = feats.filter(like="mean_").to_numpy()
    left = feats["x"].to_numpy() < 0
    assert set(np.unique(means[left])) == {0, 0.05}
    assert set(np.unique(means[~left])) == {0, 0.07}
    sim = json.loads((out / DERIV / "simulation.json").read_text())["Parameters"]
    assert sim["effect_sd"] == 1.0 and sim["effect_mean_right"] == 0.07


@needs_validator
def test_mni_grid(tmp_path):
    out = tmp_path / "mni"
    simulate("voxel-patterns", out, n_subjects=2, seed=0, grid="mni", voxel_size=8,
             n_trials=2)
    mask = nb.load(out / DERIV / "sub-01/func/sub-01_task-patterns_desc-brain_mask.nii.gz")
    data = np.asarray(nb.load(out / "sub-01/func/sub-01_task-patterns_bold.nii.gz").dataobj)
    inside = np.asarray(mask.dataobj) > 0
    assert 0 < inside.mean() < 1 and (data[~inside] == 0).all()
    assert validate(out)["errors"] == []


@pytest.mark.parametrize("kwargs, message", [
    (dict(scenario=4), "--scenario"),
    (dict(n_classes=6), "--n-classes"),
    (dict(n_classes=5, n_subjects=3), "--n-subjects"),
    (dict(effect_mean_right=0.1), "scenario 3 only"),
    (dict(grid="mni", grid_size=10), "--grid-size"),
    (dict(grid_size=4), "--grid-size"),
    (dict(n_trials=0), "--n-trials"),
])
def test_voxels_bad_options(tmp_path, kwargs, message):
    kwargs.setdefault("n_subjects", 4)
    with pytest.raises(ValueError, match=message):
        simulate("voxel-patterns", tmp_path / "x", **kwargs)
    assert not (tmp_path / "x").exists()


def test_voxels_cli(tmp_path, capsys):
    out = tmp_path / "cli"
    assert main(["voxel-patterns", str(out), "--n-subjects", "5", "--scenario", "2",
                 "--n-classes", "5", "--n-trials", "3", "--grid-size", "12"]) == 0
    assert "wrote the voxel-patterns dataset" in capsys.readouterr().out
    parts = pd.read_csv(out / "participants.tsv", sep="\t")
    assert sorted(parts["group"]) == [f"cat{k}" for k in range(1, 6)]
    sim = json.loads((out / DERIV / "simulation.json").read_text())
    assert "--scenario 2 --n-classes 5 --n-trials 3" in sim["CommandLine"]
    assert main(["voxel-patterns", str(tmp_path / "bad"), "--n-classes", "7"]) == 1
    assert "--n-classes" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["voxel-patterns", "--help"])
    assert exc.value.code == 0
