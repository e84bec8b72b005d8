"""Group level end to end on a small fMRIPrep-like dataset (plumbing; the science is tested
in the learning tests)."""

import json

import nibabel as nb
import numpy as np
import pandas as pd
import pytest

from tests.conftest import make_fmriprep_dataset
from xaibids.cli.run import main
from xaibids.features.atlases import load_atlas
from xaibids.inputs.validation import run_validator, summarize_errors

FAST = ["--atlas", "aal", "--n-folds", "2", "--n-models", "2", "--epochs", "2",
        "--skip-bids-validation", "--omp-nthreads", "1"]


@pytest.fixture(scope="module")
def group_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("group")
    bids_dir, deriv = make_fmriprep_dataset(root, subjects=tuple(f"{i:02d}" for i in range(1, 9)),
                                            n_vols=20)
    out = root / "out"
    code = main([str(bids_dir), str(out), "group", "-d", f"fmriprep={deriv}",
                 "-w", str(root / "work"), *FAST])
    return code, bids_dir, deriv, out, root


def test_group_runs_participant_step_and_writes_maps(group_run):
    code, bids_dir, deriv, out, root = group_run
    assert code == 0
    atlas = load_atlas("aal")
    ts = sorted(out.glob("sub-*/func/*_stat-mean_timeseries.tsv"))
    maps = sorted(out.glob("sub-*/func/*_desc-ig_attribution.tsv"))
    assert len(ts) == len(maps) == 8
    # each subject has its own map (outputs must not share one scratch file's inode)
    assert maps[0].read_bytes() != maps[1].read_bytes()
    frame = pd.read_csv(maps[0], sep="\t")
    assert frame.shape == (20, len(atlas.labels))
    assert np.isclose(frame.to_numpy().sum(), 1.0, atol=1e-4)  # normalized by the sum
    nii = nb.load(str(maps[0]).replace(".tsv", ".nii.gz"))
    np.testing.assert_array_equal(nii.affine, atlas.img.affine)
    assert nii.shape == atlas.img.shape
    meta = json.loads(maps[0].with_suffix(".json").read_text())
    assert meta["Sources"][0].startswith("bids::sub-01/func/")
    assert meta["Model"] == "stdnn" and len(meta["ModelSeeds"]) == 2
    perf = pd.read_csv(out / "group" / "desc-performance_metrics.tsv", sep="\t")
    assert {"fold", "n_models", "accuracy", "balanced_accuracy", "loss"} <= set(perf.columns)
    table = pd.read_csv(out / "group" / "desc-ig_importance.tsv", sep="\t")
    assert {"feature", "importance", "importance_norm", "selected", "cohens_d"} <= set(table.columns)
    assert table["importance_norm"].max() == pytest.approx(1.0)
    assert summarize_errors(run_validator(out)) == []


def test_group_reads_timeseries_derivatives_without_extraction(group_run):
    code, bids_dir, deriv, out, root = group_run
    out2 = root / "out2"
    code = main([str(bids_dir), str(out2), "group", "-d", f"timeseries={out}",
                 "-w", str(root / "work2"), *FAST, "--random-seed", "3"])
    assert code == 0
    assert not list(out2.glob("sub-*/func/*_timeseries.tsv"))  # nothing extracted again
    maps = sorted(out2.glob("sub-*/func/*_desc-ig_attribution.tsv"))
    assert len(maps) == 8
    meta = json.loads(maps[0].with_suffix(".json").read_text())
    assert meta["Sources"][0].startswith("bids:timeseries:sub-01/func/")


def test_group_unknown_target_is_a_clear_error(group_run, capsys):
    code, bids_dir, deriv, out, root = group_run
    code = main([str(bids_dir), str(root / "out3"), "group", "-d", f"fmriprep={deriv}",
                 "--target", "diagnosis", *FAST])
    assert code == 1
    err = capsys.readouterr().err
    assert "--target 'diagnosis' is not a column" in err and "group" in err
    assert not (root / "out3").exists()


@pytest.mark.parametrize("option, phrase", [
    (["--attribution", "ig", "gbp"], "--attribution gbp: not available"),
    (["--model", "cnn3d"], "--model cnn3d is not available"),
    (["--permutations", "10"], "--permutations is not available"),
    (["--reports-only"], "--reports-only is not available"),
])
def test_unimplemented_group_choices_stop_before_work(group_run, capsys, option, phrase):
    code, bids_dir, deriv, out, root = group_run
    code = main([str(bids_dir), str(root / "out4"), "group", "-d", f"fmriprep={deriv}",
                 *FAST, *option])
    assert code == 1
    assert phrase in capsys.readouterr().err
    assert not (root / "out4").exists()


def test_group_boilerplate_names_the_configuration(group_run):
    code, bids_dir, deriv, out, root = group_run
    text = (out / "logs" / "CITATION.md").read_text()
    for phrase in ("NiftiLabelsMasker", "2-fold stratified cross-validation", "ensemble of 2",
                   "Integrated Gradients", "at most 2 epochs", "master seed 0"):
        assert phrase in text
    bib = (out / "logs" / "CITATION.bib").read_text()
    for key in ("nipype1", "pybids", "nilearn", "pytorch", "sundararajan2017", "captum"):
        assert "{" + key + "," in bib
    assert "[@" not in (out / "logs" / "CITATION.html").read_text()


def test_group_boilerplate_only_trains_nothing(group_run):
    code, bids_dir, deriv, out, root = group_run
    out5 = root / "out5"
    code = main([str(bids_dir), str(out5), "group", "-d", f"timeseries={out}",
                 "-w", str(root / "work5"), *FAST, "--boilerplate-only", "--n-models", "7"])
    assert code == 0
    assert "an ensemble of 7 models" in (out5 / "logs" / "CITATION.md").read_text()
    assert not (out5 / "group").exists()
