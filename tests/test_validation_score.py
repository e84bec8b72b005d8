"""Scoring an xaibids OUTPUT_DIR against simulated ground truth, and ``xaibids-validate``."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from xaibids.cli.validate import main as validate_main
from xaibids.features.io import write_timeseries_tsv
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
