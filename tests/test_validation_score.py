"""Scoring an xaibids OUTPUT_DIR against simulated ground truth, and ``xaibids-validate``."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from xaibids.cli.validate import main as validate_main
from xaibids.fileio import write_timeseries_tsv
from xaibids.simulate import simulate
from xaibids.validation import (
    COLUMNS,
    GroundTruth,
    euclidean_distance,
    overlap_fraction,
    roi_detection,
    score_maps,
    score_output,
    weighted_jaccard,
)
from xaibids.validation.groundtruth import run_key


@pytest.fixture(scope="module")
def boxes(tmp_path_factory):
    root = tmp_path_factory.mktemp("boxes")
    simulate("boxes", root / "bids", n_subjects=4, seed=2, n_timepoints=40, n_features=6,
             window=5, n_target=3)
    return root / "bids"


@pytest.fixture(scope="module")
def rnn(tmp_path_factory):
    root = tmp_path_factory.mktemp("rnn")
    simulate("rnn-ei", root / "bids", n_subjects=4, seed=3, n_nodes=10, k=4, prevalence=0.2,
             n_timepoints=30, burn_in=10)
    return root / "bids"


def fake_output(bids, out, make_map, method="ig"):
    """Write maps named as the group level names them (source entities minus stat)."""
    deriv = bids / "derivatives" / "timeseries"
    maps = {}
    for mask_path in sorted(deriv.glob("sub-*/func/*_desc-groundtruth_mask.tsv")):
        mask = pd.read_csv(mask_path, sep="\t")
        sub = mask_path.name.split("_")[0]
        name = mask_path.name.replace("_desc-groundtruth_mask.tsv",
                                      f"_desc-{method}_attribution.tsv")
        data = make_map(mask.to_numpy().astype(bool))
        path = out / sub / "func" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        write_timeseries_tsv(data, list(mask.columns), path)
        maps[sub] = (data, mask.to_numpy().astype(bool), list(mask.columns))
    return maps


def test_run_key_matches_map_and_mask():
    assert run_key("sub-01_task-rest_atlas-SmallWorld_desc-ig_attribution.tsv") == run_key(
        "sub-01_task-rest_atlas-SmallWorld_desc-groundtruth_mask.tsv")
    assert run_key("sub-01_task-rest_run-1_atlas-A_desc-ig_attribution.tsv") != run_key(
        "sub-01_task-rest_run-2_atlas-A_desc-groundtruth_mask.tsv")


def test_groundtruth_loads_from_raw_or_derivative(boxes, rnn):
    gt = GroundTruth.load(boxes)
    assert gt.root == boxes / "derivatives" / "timeseries"
    assert GroundTruth.load(gt.root).root == gt.root
    assert len(gt.masks) == 4
    # boxes: the relevant half depends on the class, so there is no dataset-level truth
    assert gt.dataset_relevant() is None
    assert len(gt.relevant_features("sub-01")) == 3
    assert gt.relevant_features("sub-99") is None
    gt_rnn = GroundTruth.load(rnn)
    truth = pd.read_csv(gt_rnn.root / "groundtruth_features.tsv", sep="\t")
    assert gt_rnn.dataset_relevant() == set(truth.loc[truth["relevant"] == 1, "feature"])


def test_score_output_equals_direct_metrics(boxes, tmp_path):
    rng = np.random.default_rng(0)
    maps = fake_output(boxes, tmp_path, lambda m: m * 0.5 + np.abs(rng.normal(0, 0.1, m.shape)))
    gt = GroundTruth.load(boxes)
    table = score_output(tmp_path, boxes)
    assert list(table.columns) == COLUMNS
    per = table[table["subject"].notna()].set_index(["subject", "metric"])["value"]
    for sub, (data, mask, names) in maps.items():
        assert per[(sub, "overlap")] == pytest.approx(overlap_fraction(data, mask), abs=1e-6)
        assert per[(sub, "weighted_jaccard")] == pytest.approx(weighted_jaccard(data, mask),
                                                               abs=1e-6)
        assert per[(sub, "euclidean_distance")] == pytest.approx(
            euclidean_distance(data, mask), abs=1e-6)
        relevant = np.array([n in gt.relevant_features(sub) for n in names])
        assert per[(sub, "roi_f1")] == pytest.approx(roi_detection(data, relevant)["f1"])
    mean = table[table["subject"].isna()].set_index("metric")
    assert mean.loc["overlap", "value"] == pytest.approx(
        np.mean([overlap_fraction(d, m) for d, m, _ in maps.values()]), abs=1e-6)
    assert mean.loc["overlap", "n"] == 4
    assert mean.loc["overlap", "sd"] == pytest.approx(
        np.std([overlap_fraction(d, m) for d, m, _ in maps.values()], ddof=1), abs=1e-6)
    assert not any(table["metric"].str.startswith("group_"))  # boxes: no dataset-level truth


def test_perfect_maps_score_perfectly_with_importance(rnn, tmp_path):
    maps = fake_output(rnn, tmp_path, lambda m: m / m.sum())
    gt = GroundTruth.load(rnn)
    names = next(iter(maps.values()))[2]
    relevant = gt.dataset_relevant()
    (tmp_path / "group").mkdir()
    pd.DataFrame({"feature": names, "importance_norm": [float(n in relevant) for n in names],
                  "selected": [n in relevant for n in names]}).to_csv(
        tmp_path / "group" / "desc-ig_importance.tsv", sep="\t", index=False)
    table = score_output(tmp_path, rnn)
    mean = table[table["subject"].isna()].set_index("metric")["value"]
    for metric in ("overlap", "weighted_jaccard", "roi_f1", "group_roi_f1", "importance_f1",
                   "feature_accuracy", "group_roi_precision", "importance_recall"):
        assert mean[metric] == pytest.approx(1.0), metric
    for metric in ("euclidean_distance", "feature_fdr", "group_roi_for", "importance_fdr"):
        assert mean[metric] == pytest.approx(0.0), metric


def test_score_maps_in_memory_skips_unattributed():
    mask = np.zeros((6, 3), dtype=bool)
    mask[1:3, 0] = True
    good = mask * 1.0
    good[:, 0] += 0.5  # feature a dominates at every time point: its median is the largest
    table = score_maps([good, np.full((6, 3), np.nan)], ["a", "b", "c"], ["sub-1", "sub-2"],
                       masks=[mask, mask], relevant=[{"a"}, {"a"}], dataset_relevant={"a"})
    assert set(table["subject"].dropna()) == {"sub-1"}
    group = table[table["metric"] == "group_roi_f1"]
    assert group["value"].item() == 1.0 and group["n"].item() == 1
    with pytest.raises(ValueError, match="2 maps but 1 subjects"):
        score_maps([good, good], ["a", "b", "c"], ["sub-1"])


def test_cli_writes_metrics_table(rnn, tmp_path, capsys):
    fake_output(rnn, tmp_path, lambda m: m + 0.1)
    assert validate_main([str(tmp_path), str(rnn)]) == 0
    out = capsys.readouterr().out
    assert "desc-validation_metrics.tsv" in out and "roi_f1" in out
    table = pd.read_csv(tmp_path / "group" / "desc-validation_metrics.tsv", sep="\t")
    assert list(table.columns) == COLUMNS
    assert {"overlap", "weighted_jaccard", "euclidean_distance", "roi_f1", "feature_fdr",
            "group_roi_f1"} <= set(table["metric"])
    assert set(table["method"]) == {"ig"}
    assert table["subject"].isna().sum() > 0  # dataset-level rows are n/a
    meta = json.loads((tmp_path / "group" / "desc-validation_metrics.json").read_text())
    assert "overlap" in meta["metric"]["Levels"]


def test_cli_errors_are_one_line(rnn, tmp_path, capsys):
    assert validate_main([str(tmp_path), str(rnn)]) == 1
    assert "No attribution maps" in capsys.readouterr().err
    assert validate_main([str(tmp_path), str(tmp_path)]) == 1
    assert "No groundtruth.tsv" in capsys.readouterr().err
    assert validate_main([str(tmp_path), str(rnn), "--threshold", "1.5"]) == 2


def test_end_to_end_group_then_validate(rnn, tmp_path):
    """The real group level's file names are what the scorer finds."""
    from xaibids.cli.run import main as xaibids_main

    out = tmp_path / "out"
    code = xaibids_main([str(rnn), str(out), "group", "-d",
                         f"timeseries={rnn / 'derivatives' / 'timeseries'}", "--target", "group",
                         "--n-folds", "2", "--n-models", "1", "--epochs", "1", "--ig-steps", "2",
                         "--skip-bids-validation", "-w", str(tmp_path / "work")])
    assert code == 0
    assert validate_main([str(out), str(rnn)]) == 0
    table = pd.read_csv(out / "group" / "desc-validation_metrics.tsv", sep="\t")
    assert set(table["subject"].dropna()) == {f"sub-{i:02d}" for i in range(1, 5)}
    assert {"overlap", "roi_f1", "importance_f1", "group_roi_f1"} <= set(table["metric"])


def _voxel_truth(root, n_subjects=3):
    """A hand-made voxel ground truth: a 2 mm mask of one box, the same for every subject."""
    import nibabel as nb

    root.mkdir(parents=True)
    fine = np.zeros((12, 12, 12), dtype=np.uint8)
    fine[2:6, 2:6, 2:6] = 1  # 2 x 2 x 2 voxels of the 4 mm grid below
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    subjects = [f"sub-{i:02d}" for i in range(1, n_subjects + 1)]
    for sub in subjects:
        anat = root / sub / "anat"
        anat.mkdir(parents=True)
        nb.Nifti1Image(fine, affine).to_filename(
            anat / f"{sub}_space-MNI152NLin2009cAsym_desc-groundtruth_mask.nii.gz")
    pd.DataFrame({"participant_id": subjects, "relevant_features": ["boxregion"] * n_subjects}
                 ).to_csv(root / "groundtruth.tsv", sep="\t", index=False)
    pd.DataFrame({"feature": ["boxregion", "other1", "other2"], "relevant": [1, 0, 0]}).to_csv(
        root / "groundtruth_features.tsv", sep="\t", index=False)
    return subjects


def test_each_subjects_own_voxel_truth_is_read(tmp_path):
    """Masks are resampled once per distinct file content: different masks stay apart."""
    import nibabel as nb

    from xaibids.validation.groundtruth import GroundTruth

    subjects = _voxel_truth(tmp_path / "truth", n_subjects=2)
    other = tmp_path / "truth" / "sub-02" / "anat" / (
        "sub-02_space-MNI152NLin2009cAsym_desc-groundtruth_mask.nii.gz")
    fine = np.zeros((12, 12, 12), dtype=np.uint8)
    fine[6:10, 6:10, 6:10] = 1
    nb.Nifti1Image(fine, np.diag([2.0, 2.0, 2.0, 1.0])).to_filename(other)
    truth = GroundTruth.load(tmp_path / "truth")
    grid = nb.Nifti1Image(np.zeros((6, 6, 6), np.float32), np.diag([4.0, 4.0, 4.0, 1.0]))
    masks = [truth.read_volume_mask(
        f"{sub}_space-MNI152NLin2009cAsym_res-4_desc-ig_attribution.nii.gz", grid)
        for sub in subjects]
    assert masks[0][1:3, 1:3, 1:3].all() and masks[0].sum() == 8
    assert masks[1][3:5, 3:5, 3:5].all() and masks[1].sum() == 8


def test_voxel_maps_scored_against_nifti_truth(tmp_path, monkeypatch):
    """t1-style voxel maps (no TSV beside them): voxel accuracy/FDR/FOR and Lewis et al. 2023's metrics
    per subject against the resampled truth, and the region importance against the regions."""
    import nibabel as nb
    import nilearn.image

    resampled = []
    real_resample = nilearn.image.resample_to_img
    monkeypatch.setattr(nilearn.image, "resample_to_img",
                        lambda *a, **k: resampled.append(1) or real_resample(*a, **k))

    subjects = _voxel_truth(tmp_path / "truth")
    out = tmp_path / "out"
    coarse = np.diag([4.0, 4.0, 4.0, 1.0])
    truth = np.zeros((6, 6, 6), dtype=bool)
    truth[1:3, 1:3, 1:3] = True
    rng = np.random.default_rng(0)
    expected = {}
    for i, sub in enumerate(subjects):
        data = rng.uniform(0, 0.3, (6, 6, 6))  # below half the maximum of the box
        data[truth] += 1.0
        if i == 2:  # this subject's map also lights up two false voxels
            data[4, 4, 4] = data[5, 5, 5] = 1.5
        data = data.astype(np.float32).astype(np.float64)  # as written and read back
        path = out / sub / "anat" / f"{sub}_space-MNI152NLin2009cAsym_res-4_desc-ig_attribution.nii.gz"
        path.parent.mkdir(parents=True)
        nb.Nifti1Image(data.astype(np.float32), coarse).to_filename(path)
        selected = data / data.max() > 0.5
        tp, fp = int((selected & truth).sum()), int((selected & ~truth).sum())
        fn, tn = int((~selected & truth).sum()), int((~selected & ~truth).sum())
        scaled = (data - data.min()) / (data.max() - data.min())  # Lewis et al. 2023's [0, 1] rescaling
        expected[sub] = {
            "feature_accuracy": (tp + tn) / truth.size, "feature_fdr": fp / (tp + fp),
            "feature_for": fn / (fn + tn), "roi_recall": tp / (tp + fn),
            "overlap": data[truth].sum() / data.sum(),
            "weighted_jaccard": np.minimum(truth, scaled).sum() / np.maximum(truth, scaled).sum()}
    (out / "group").mkdir()
    pd.DataFrame({"feature": ["boxregion", "other1", "other2"], "importance_norm": [1.0, 0.2, 0.6],
                  "selected": [True, False, True]}).to_csv(
        out / "group" / "desc-ig_importance.tsv", sep="\t", index=False)
    table = score_output(out, tmp_path / "truth")
    assert len(resampled) == 1  # the subjects' identical masks are resampled once
    per = table[table["subject"].notna()].pivot(index="subject", columns="metric", values="value")
    for sub, values in expected.items():
        for metric, value in values.items():
            assert per.loc[sub, metric] == pytest.approx(value, abs=1e-9), (sub, metric)
    assert expected["sub-03"]["feature_fdr"] == pytest.approx(0.2)  # 2 false of 10 selected
    group = table[table["subject"].isna()].set_index("metric")["value"]
    assert group["group_roi_recall"] == 1.0
    # the region table: boxregion ranked first, other2 selected by mistake
    assert group["importance_r_precision"] == 1.0 and group["importance_precision"] == 0.5
