"""--features trials: single-trial activation maps (Gotsopoulos et al. 2018 §2.3), from the plain functions to
the command line on a simulated within-subject voxel-patterns dataset."""

from __future__ import annotations

import json

import nibabel as nb
import numpy as np
import pandas as pd
import pytest

from xaibids.errors import XaibidsError
from xaibids.features.timeseries import ExtractionError
from xaibids.features.trials import extract_trial_maps, read_events, trial_windows
from xaibids.learning.dataset import assemble_trial_dataset
from xaibids.learning.training import inner_split
from xaibids.simulate import simulate
from xaibids.stats._common import statistical_units

TR = 2.0


def test_trial_windows_midpoints_short_events_and_missing():
    times = np.arange(10) * TR  # volumes start at 0, 2, ..., 18 s; middles at 1, 3, ...
    windows = trial_windows([0.0, 4.0, 5.0, np.nan, 30.0, 17.5], [4.0, 2.0, 0.5, 2.0, 2.0, 10.0],
                            times, TR)
    assert windows[0].tolist() == [0, 1]  # middles 1 and 3 lie in [0, 4)
    assert windows[1].tolist() == [2]  # [4, 6): middle 5
    assert windows[2].tolist() == [2]  # [5, 5.5) holds no middle: the volume acquired at 5 s
    assert windows[3].tolist() == []  # no onset
    assert windows[4].tolist() == []  # after the run
    assert windows[5].tolist() == [9]  # runs past the end: the last volume only


def test_trial_windows_skip_censored_volumes():
    kept = np.array([0, 1, 3, 4])  # volume 2 censored
    windows = trial_windows([4.0, 0.0], [2.0, 6.0], kept * TR, TR)
    assert windows[0].tolist() == []  # its only volume was censored
    assert windows[1].tolist() == [0, 1]  # positions into the kept volumes


def _run(tmp_path, n_vols=8, events=None):
    rng = np.random.default_rng(0)
    data = rng.normal(size=(3, 3, 2, n_vols)).astype(np.float32)
    affine = np.diag([4.0, 4.0, 4.0, 1.0])
    img = nb.Nifti1Image(data, affine)
    img.header.set_zooms((4.0, 4.0, 4.0, TR))
    bold = tmp_path / "sub-01_task-x_bold.nii.gz"
    img.to_filename(bold)
    mask = np.ones((3, 3, 2), dtype=np.uint8)
    mask[0, 0, 0] = 0
    nb.Nifti1Image(mask, affine).to_filename(tmp_path / "mask.nii.gz")
    path = tmp_path / "sub-01_task-x_events.tsv"
    (events if events is not None else pd.DataFrame(
        {"onset": [0.0, 4.0, 40.0], "duration": [4.0, 2.0, 2.0],
         "trial_type": ["a", "b", "a"]})).to_csv(path, sep="\t", index=False, na_rep="n/a")
    return bold, tmp_path / "mask.nii.gz", path, data, mask


def test_extract_trial_maps_averages_each_events_volumes(tmp_path):
    bold, mask_file, events, data, mask = _run(tmp_path)
    result = extract_trial_maps(bold, mask_file, events, confounds="none", detrend=False,
                                standardize="none", metadata={"RepetitionTime": TR})
    out = result.img.get_fdata()
    assert out.shape == (3, 3, 2, 2)  # the third event lies after the run: dropped
    assert result.n_dropped == 1
    inside = mask > 0
    np.testing.assert_allclose(out[..., 0][inside], data[..., :2].mean(axis=3)[inside], atol=1e-5)
    np.testing.assert_allclose(out[..., 1][inside], data[..., 2][inside], atol=1e-5)
    assert (out[0, 0, 0] == 0).all()  # outside the mask
    assert result.events["trial_type"].tolist() == ["a", "b"]
    assert result.events["n_volumes"].tolist() == [2, 1]


def test_extract_trial_maps_zscores_voxels_first(tmp_path):
    bold, mask_file, events, data, mask = _run(tmp_path)
    result = extract_trial_maps(bold, mask_file, events, confounds="none", detrend=False,
                                standardize="zscore_sample", metadata={"RepetitionTime": TR})
    z = (data - data.mean(axis=3, keepdims=True)) / data.std(axis=3, ddof=1, keepdims=True)
    np.testing.assert_allclose(result.img.get_fdata()[..., 0][mask > 0],
                               z[..., :2].mean(axis=3)[mask > 0], atol=1e-4)


@pytest.mark.parametrize("events, message", [
    (pd.DataFrame({"onset": [0.0], "trial_type": ["a"]}), "no duration column"),
    (pd.DataFrame({"onset": ["soon"], "duration": [1.0]}), "non-numeric"),
    (pd.DataFrame({"onset": [0.0], "duration": [-1.0]}), "negative duration"),
    (pd.DataFrame({"onset": [100.0], "duration": [1.0]}), "No event"),
])
def test_extract_trial_maps_bad_events_name_the_file(tmp_path, events, message):
    bold, mask_file, path, _, _ = _run(tmp_path, events=events)
    with pytest.raises(ExtractionError, match=message) as err:
        extract_trial_maps(bold, mask_file, path, confounds="none")
    assert path.name in str(err.value)


def test_read_events_reads_na_as_missing(tmp_path):
    path = tmp_path / "events.tsv"
    path.write_text("onset\tduration\ttrial_type\n0\t1\ta\nn/a\t1\tn/a\n")
    events = read_events(path)
    assert np.isnan(events.loc[1, "onset"]) and pd.isna(events.loc[1, "trial_type"])


def _trial_files(tmp_path, subject, labels, grid=(2, 2, 2), value=0.0):
    func = tmp_path / subject / "func"
    func.mkdir(parents=True)
    data = np.full(grid + (len(labels),), value, dtype=np.float32) + np.arange(len(labels))
    path = func / f"{subject}_task-x_trials.nii.gz"
    nb.Nifti1Image(data, np.eye(4)).to_filename(path)
    pd.DataFrame({"onset": np.arange(len(labels)), "duration": 1.0,
                  "trial_type": labels}).to_csv(
        func / f"{subject}_task-x_trials.tsv", sep="\t", index=False, na_rep="n/a")
    return (subject, str(path))


def test_assemble_trial_dataset_target_from_events_or_participants(tmp_path):
    runs = [_trial_files(tmp_path, "sub-01", ["a", "b", None]),
            _trial_files(tmp_path, "sub-02", ["b", "a", "a"], value=10.0)]
    participants = pd.DataFrame({"group": ["x", "y"]}, index=["sub-01", "sub-02"])
    mask = np.ones((2, 2, 2), dtype=bool)
    mask[0, 0, 0] = False
    ds = assemble_trial_dataset(runs, participants, "trial_type", mask=mask)
    assert ds.classes == ["a", "b"]
    assert ds.y.tolist() == [0, 1, 1, 0, 0]  # the unlabelled third trial of sub-01 left out
    assert ds.subjects == ["sub-01"] * 2 + ["sub-02"] * 3
    assert ds.sample_index.tolist() == [0, 1, 0, 1, 2]
    assert ds.X.shape == (5, 1, 8) and ds.grid == (2, 2, 2)
    assert ds.X[3, 0, 1] == 11.0 and ds.X[3, 0, 0] == 0.0  # volume 1 of sub-02; masked voxel
    by_subject = assemble_trial_dataset(runs, participants, "group")
    assert by_subject.y.tolist() == [0, 0, 0, 1, 1, 1]
    with pytest.raises(ValueError, match="neither a column of participants.tsv"):
        assemble_trial_dataset(runs, participants, "condition")


def test_class_mean_maps_average_units_then_classes():
    from xaibids.stats.volumes import class_mean_maps

    maps = np.array([[[1.0, 0.0]], [[3.0, 0.0]], [[0.0, 2.0]], [[np.nan, np.nan]]])
    y = np.array([0, 0, 1, 1])
    units = ["s1|0", "s2|0", "s1|1", "s2|1"]
    out = class_mean_maps(maps, y, 3, units)
    np.testing.assert_allclose(out, [[2.0, 0.0], [0.0, 2.0], [0.0, 0.0]])  # NaN row skipped
    # two samples of one unit count once
    out = class_mean_maps(maps[:3], y[:3], 2, ["s1|0", "s1|0", "s1|1"])
    np.testing.assert_allclose(out[0], [2.0, 0.0])


def test_statistical_units_split_subjects_with_several_classes():
    assert statistical_units(["s1", "s1", "s2"], [0, 0, 1]) == ["s1", "s1", "s2"]
    assert statistical_units(["s1", "s1", "s2", "s2"], [0, 1, 0, 1]) == \
        ["s1|0", "s1|1", "s2|0", "s2|1"]
    assert statistical_units(None, [0, 1]) is None


def test_inner_split_of_subjects_with_several_classes(caplog):
    units = np.repeat([f"s{i}" for i in range(10)], 4)
    y = np.tile([0, 1, 0, 1], 10)
    fit, val = inner_split(y, units, 0.2, seed=0)
    assert len(set(units[val])) == 2 and not set(units[val]) & set(units[fit])
    assert "stratify" not in caplog.text


def test_simulated_within_design(tmp_path):
    out = tmp_path / "ds"
    simulate("voxel-patterns", out, n_subjects=3, seed=1, n_trials=6, n_classes=3,
             design="within", grid_size=8)
    participants = pd.read_csv(out / "participants.tsv", sep="\t")
    assert list(participants.columns) == ["participant_id"]
    for sub in ("01", "02", "03"):
        events = pd.read_csv(out / f"sub-{sub}/func/sub-{sub}_task-patterns_events.tsv", sep="\t")
        assert sorted(events["trial_type"]) == ["cat1", "cat1", "cat2", "cat2", "cat3", "cat3"]
    assert json.loads((out / "task-patterns_events.json").read_text())["trial_type"]["Levels"]
    assert "column `trial_type`" in (out / "README").read_text()
    from xaibids.simulate.bidsio import tree_digest, validate, validator_available

    again = tmp_path / "again"
    simulate("voxel-patterns", again, n_subjects=3, seed=1, n_trials=6, n_classes=3,
             design="within", grid_size=8)
    assert tree_digest(again) == tree_digest(out)
    if validator_available():
        assert validate(out)["errors"] == []
    with pytest.raises(ValueError, match="--n-trials of at least --n-classes"):
        simulate("voxel-patterns", tmp_path / "bad", n_subjects=2, n_trials=2, n_classes=3,
                 design="within")


# --------------------------------------------------------------------------- command line
@pytest.fixture(scope="module")
def trials_run(tmp_path_factory):
    """A within-subject voxel-patterns dataset through participant, group and validation."""
    from xaibids.cli.run import main
    from xaibids.cli.validate import main as validate

    root = tmp_path_factory.mktemp("trials")
    bids = root / "ds"
    simulate("voxel-patterns", bids, n_subjects=8, seed=1, n_trials=24, design="within",
             grid_size=8, effect_mean=1.0)
    out = root / "out"
    common = [str(bids), str(out), "--features", "trials", "--confounds", "none",
              "-d", f"patterns={bids / 'derivatives' / 'patterns'}", "-w", str(root / "work"),
              "--skip-bids-validation", "--nprocs", "1"]
    assert main(common[:2] + ["participant"] + common[2:]) == 0
    assert main(common[:2] + ["group"] + common[2:] + [
        "--target", "trial_type", "--model", "linear", "--n-folds", "4", "--n-models", "2",
        "--epochs", "40", "--random-seed", "3"]) == 0
    assert validate([str(out), str(bids / "derivatives" / "patterns")]) == 0
    return bids, out


def test_trials_participant_outputs(trials_run):
    _, out = trials_run
    func = out / "sub-01" / "func"
    maps = nb.load(func / "sub-01_task-patterns_trials.nii.gz")
    events = pd.read_csv(func / "sub-01_task-patterns_trials.tsv", sep="\t")
    assert maps.shape == (8, 8, 8, 24) and len(events) == 24
    assert (events["n_volumes"] == 1).all()
    assert (func / "sub-01_task-patterns_desc-brain_mask.nii.gz").exists()
    sidecar = json.loads((func / "sub-01_task-patterns_trials.json").read_text())
    assert sidecar["NumberOfTrials"] == 24 and sidecar["Standardize"] == "none"


def test_trials_group_outputs_and_scores(trials_run):
    _, out = trials_run
    func = out / "sub-01" / "func"
    attribution = nb.load(func / "sub-01_task-patterns_desc-ig_attribution.nii.gz")
    sidecar = json.loads((func / "sub-01_task-patterns_desc-ig_attribution.json").read_text())
    assert attribution.shape == (8, 8, 8, 24)
    assert sidecar["TrialVolume"] == list(range(24)) and len(set(sidecar["Fold"])) == 1
    assert len(sidecar["TrueLabel"]) == 24
    perf = pd.read_csv(out / "group" / "desc-performance_metrics.tsv", sep="\t")
    assert perf.loc[perf["fold"].astype(str) == "all", "balanced_accuracy"].item() > 0.9
    assert (out / "group" / "desc-ig_importance.nii.gz").exists()  # a box in no template space
    metrics = pd.read_csv(out / "group" / "desc-validation_metrics.tsv", sep="\t")
    value = metrics[metrics["subject"].isna()].set_index("metric")["value"]
    # Gotsopoulos et al. 2018's voxel accuracy of the informative voxels (10 % of the grid): well above the
    # 0.8 that marking nothing would score, and nearly every informative voxel is found
    assert value["feature_accuracy"] > 0.85
    assert value["group_roi_recall"] > 0.9
    # Gotsopoulos et al. 2018's category maps: each class's group map against its pattern (scenario 1, two
    # classes: cat1 = B1 ∪ B2, cat2 = B2 ∪ B3). The shared block B2 carries no class evidence,
    # and the absolute map of cat1 also holds B3, whose activity is evidence *against* cat1 (seed
    # 004 §4: importance includes voxels relevant to the other categories): about half of each
    # pattern is found, at twice the precision and recall of a random selection of that size
    for label in ("cat1", "cat2"):
        assert (out / "group" / f"desc-ig_class-{label}_importance.nii.gz").exists()
        assert value[f"class_{label}_roi_recall"] >= 0.4
        assert value[f"class_{label}_roi_precision"] > 0.2
    from xaibids.simulate.bidsio import validate, validator_available

    if validator_available():
        assert validate(out)["errors"] == []
    text = (out / "group.html").read_text()
    assert "could not be rendered" not in text and "Voxel map: ig" in text
    assert "trials classified correctly" in (out / "sub-01.html").read_text()


def test_trials_group_errors(trials_run, run_cli, tmp_path):
    bids, out = trials_run
    common = [bids, tmp_path / "o", "group", "--features", "trials", "--confounds", "none",
              "-d", f"patterns={bids / 'derivatives' / 'patterns'}", "--skip-bids-validation"]
    code, err = run_cli(common + ["--target", "condition", "--model", "linear"])
    assert code != 0 and "events.tsv" in err and "trial_type" in err
    code, err = run_cli(common + ["--target", "trial_type", "--model", "stdnn"])
    assert code != 0 and "--model linear" in err
    code, err = run_cli(common + ["--target", "trial_type", "--model", "linear",
                                 "--n-folds", "9"])
    assert code != 0 and "lower --n-folds to at most 8" in err
    code, err = run_cli(common + ["--target", "trial_type", "--model", "linear",
                                 "--cv-group", "site"])
    assert code != 0 and "--cv-group 'site' is not a column of" in err
    assert not (tmp_path / "o").exists()


def test_trials_raw_bold_needs_mask_and_no_confounds(trials_run, run_cli, tmp_path):
    bids, _ = trials_run
    code, err = run_cli([bids, tmp_path / "o", "participant", "--features", "trials",
                         "--confounds", "none", "--skip-bids-validation"])
    assert code != 0 and "no brain mask" in err
    code, err = run_cli([bids, tmp_path / "o", "participant", "--features", "trials",
                         "-d", f"patterns={bids / 'derivatives' / 'patterns'}",
                         "--skip-bids-validation"])
    assert code != 0 and "--confounds none" in err
    assert not (tmp_path / "o").exists()


def test_trials_after_fmriprep_with_confounds_and_regions(tmp_path, run_cli):
    """fMRIPrep's template-space runs: confounds regressed, region statistics of the atlas."""
    from tests.conftest import make_fmriprep_dataset

    bids, fmriprep = make_fmriprep_dataset(tmp_path, subjects=("01", "02", "03", "04"),
                                           tasks=("faces",))
    rng = np.random.default_rng(0)
    for sub in ("01", "02", "03", "04"):
        pd.DataFrame({"onset": np.arange(10) * 8.0, "duration": 4.0,
                      "trial_type": rng.permutation(["face", "house"] * 5)}).to_csv(
            bids / f"sub-{sub}" / "func" / f"sub-{sub}_task-faces_events.tsv", sep="\t",
            index=False)
    out = tmp_path / "out"
    code, err = run_cli([bids, out, "group", "-d", f"fmriprep={fmriprep}", "--features",
                         "trials", "--standardize", "zscore_sample", "--target", "trial_type",
                         "--model", "linear", "--n-folds", "2", "--n-models", "1", "--epochs", "3",
                         "--reliability-samples", "0", "--skip-bids-validation", "-w",
                         tmp_path / "work"])
    assert code == 0, err
    func = out / "sub-01" / "func"
    stem = "sub-01_task-faces_space-MNI152NLin6Asym"
    sidecar = json.loads((func / f"{stem}_trials.json").read_text())
    assert sidecar["ConfoundStrategy"] == "simple" and sidecar["ConfoundRegressors"]
    assert sidecar["NumberOfTrials"] == 10
    assert nb.load(func / f"{stem}_desc-ig_attribution.nii.gz").shape[3] == 10
    group = out / "group"
    assert (group / "space-MNI152NLin6Asym_desc-ig_importance.nii.gz").exists()
    regions = pd.read_csv(group / "desc-ig_regions.tsv", sep="\t")
    assert len(regions) and (regions["share"] >= 0).all()
    importance = pd.read_csv(group / "desc-ig_importance.tsv", sep="\t")
    assert {"mean_face", "mean_house"} <= set(importance.columns)
    methods = (out / "logs" / "CITATION.md").read_text()
    assert "events' column 'trial_type'" in methods and "40 trials" in methods
    assert "keeping each subject's trials within one fold" in methods
    assert "HarvardOxford atlas" in methods and "Co-saliency" not in methods
    assert "[@gotsopoulos2018]" in methods and "The maps of a trial were stabilized" in methods


def test_trials_run_without_events(trials_run, run_cli, tmp_path):
    import shutil

    bids, _ = trials_run
    copy = tmp_path / "ds"
    shutil.copytree(bids, copy)
    (copy / "sub-02" / "func" / "sub-02_task-patterns_events.tsv").unlink()
    code, err = run_cli([copy, tmp_path / "o", "participant", "--features", "trials",
                         "--confounds", "none", "-d",
                         f"patterns={copy / 'derivatives' / 'patterns'}",
                         "--skip-bids-validation"])
    assert code != 0 and "sub-02: no events.tsv for sub-02_task-patterns_bold.nii.gz" in err
    assert not (tmp_path / "o").exists()
    # BIDS inheritance: the dataset's top-level task-patterns_events.tsv applies to sub-02's run
    inherited = pd.DataFrame({"onset": [0.0, 20.0], "duration": 10.0, "trial_type": ["a", "b"]})
    inherited.to_csv(copy / "task-patterns_events.tsv", sep="\t", index=False)
    code, err = run_cli([copy, tmp_path / "o", "participant", "--features", "trials",
                         "--confounds", "none", "-d", f"patterns={copy / 'derivatives' / 'patterns'}",
                         "--participant-label", "02", "--skip-bids-validation"])
    assert code == 0, err
    kept = pd.read_csv(next((tmp_path / "o" / "sub-02").rglob("*_trials.tsv")), sep="\t")
    assert list(kept["trial_type"]) == ["a", "b"]


def test_trials_with_cnn3d_and_gradcam(tmp_path, run_cli):
    """The 3D CNN classifies trial maps too (the grid goes to the model)."""
    bids = tmp_path / "ds"
    simulate("voxel-patterns", bids, n_subjects=4, seed=2, n_trials=8, design="within",
             grid_size=8, effect_mean=1.0)
    out = tmp_path / "out"
    code, err = run_cli([bids, out, "group", "--features", "trials", "--confounds", "none",
                         "-d", f"patterns={bids / 'derivatives' / 'patterns'}",
                         "--target", "trial_type", "--model", "cnn3d", "--n-folds", "2",
                         "--n-models", "1", "--epochs", "2", "--attribution", "ig", "gradcam",
                         "--reliability-samples", "0", "--skip-bids-validation",
                         "-w", tmp_path / "work"])
    assert code == 0, err
    for method in ("ig", "gradcam"):
        img = nb.load(out / "sub-01" / "func" / f"sub-01_task-patterns_desc-{method}_attribution.nii.gz")
        assert img.shape == (8, 8, 8, 8) and np.isfinite(img.get_fdata()).all()
