"""Bad-input catalogue, group level (docs/errors.md): participants.tsv, TR, run lengths,
timeseries values. Every case stops before OUTPUT_DIR is created, and before any training."""

from __future__ import annotations

import json
import logging
import shutil

import numpy as np
import pandas as pd
import pytest

from tests.conftest import make_fmriprep_dataset
from tests.test_errors_inputs import assert_clean_error
from xaibids.fileio import write_timeseries_tsv
from xaibids.learning import assemble_dataset

SUBJECTS = tuple(f"{i:02d}" for i in range(1, 7))
FAST = ["--atlas", "aal", "--n-folds", "2", "--n-models", "1", "--epochs", "1",
        "--skip-bids-validation", "--omp-nthreads", "1", "--nprocs", "1"]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """Six subjects (classes b, a, b, a, b, a), 12 volumes; modified only in copies."""
    return make_fmriprep_dataset(tmp_path_factory.mktemp("group_errors"), subjects=SUBJECTS,
                                 n_vols=12)



def _participants(bids, **columns):
    table = pd.DataFrame({"participant_id": [f"sub-{s}" for s in SUBJECTS], **columns})
    table.to_csv(bids / "participants.tsv", sep="\t", index=False)


CASES = [
    ("missing", lambda b: (b / "participants.tsv").unlink(), [],
     ["participants.tsv does not exist", "participant_id column"]),
    ("no-target-column", lambda b: _participants(b, site=list("xxxyyy")), [],
     ["--target 'group' is not a column of", "participants.tsv", "site"]),
    ("one-class", lambda b: _participants(b, group=["a"] * 6), [],
     ["only one class ('a')", "at least two"]),
    ("fewer-per-class-than-folds", lambda b: _participants(b, group=list("ababab")),
     ["--n-folds", "4"], ["fewer subjects per class than the 4 folds", "'a': 3", "at most 3"]),
    ("continuous", lambda b: _participants(b, group=["23.5", "31.2", "45.9", "27.1", "60.3", "38.8"]),
     [], ["looks continuous", "6 distinct numeric values", "categories"]),
    ("many-integers", lambda b: _participants(b, group=["1", "2"] * 3), ["--target", "age"], []),
    ("all-missing", lambda b: _participants(b, group=["n/a"] * 6), [],
     ["has a value in column 'group'"]),
    ("duplicate-rows", lambda b: pd.DataFrame({"participant_id": ["sub-01", "sub-01"] + [
        f"sub-{s}" for s in SUBJECTS[2:]], "group": list("ababab")}).to_csv(
        b / "participants.tsv", sep="\t", index=False), [], ["lists 'sub-01' more than once"]),
    ("cv-group-too-few", lambda b: _participants(b, group=list("ababab"), site=list("xxxxxx")),
     ["--cv-group", "site"], ["1 distinct value(s)", "fewer than the 2 folds"]),
]


@pytest.mark.parametrize("breaker, options, phrases", [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_participants_tsv_errors(dataset, tmp_path, run_cli, breaker, options, phrases):
    bids_dir, deriv = dataset
    bids = tmp_path / "bids"
    shutil.copytree(bids_dir, bids)
    breaker(bids)
    out = tmp_path / "out"
    if not phrases:  # the 'age' column does not exist: checked like --target
        phrases = ["--target 'age' is not a column"]
    code, err = run_cli([bids, out, "group", "-d", f"fmriprep={deriv}", "-w", tmp_path / "w",
                         *FAST, *options])
    assert_clean_error(code, err, *phrases)
    assert not out.exists() and not (tmp_path / "w").exists()


def test_many_unique_integers_look_continuous():
    from xaibids.inputs.checks import looks_continuous

    assert looks_continuous([str(i) for i in range(20, 40)])
    assert not looks_continuous(["0", "1"] * 20)
    assert not looks_continuous(["ctl", "asd", "1.5"])
    assert not looks_continuous([str(i) for i in range(5)])  # a few numeric classes are fine


def test_different_tr_across_runs(dataset, tmp_path, run_cli):
    bids_dir, deriv = dataset
    fmriprep = tmp_path / "fmriprep"
    shutil.copytree(deriv, fmriprep)
    sidecar = fmriprep / "sub-03/func/sub-03_task-rest_space-MNI152NLin6Asym_res-2_desc-preproc_bold.json"
    sidecar.write_text(json.dumps({"RepetitionTime": 0.8, "TaskName": "rest"}))
    out = tmp_path / "out"
    code, err = run_cli([bids_dir, out, "group", "-d", f"fmriprep={fmriprep}", *FAST])
    assert_clean_error(code, err, "different repetition times", "TR 0.8 s in sub-03_task-rest",
                       "TR 2 s in", "--bids-filter-file")
    assert not out.exists()


def _timeseries_dataset(root, lengths, inf_at=None):
    """XCP-D-like timeseries derivatives of the six subjects."""
    deriv = root / "ts"
    deriv.mkdir()
    (deriv / "dataset_description.json").write_text(json.dumps(
        {"Name": "ts", "BIDSVersion": "1.10.0", "DatasetType": "derivative",
         "GeneratedBy": [{"Name": "xcp_d"}]}))
    rng = np.random.default_rng(0)
    for sub, n in zip(SUBJECTS, lengths):
        func = deriv / f"sub-{sub}" / "func"
        func.mkdir(parents=True)
        data = rng.normal(size=(n, 3))
        if sub == inf_at:
            data[2, 1] = np.inf
        write_timeseries_tsv(data, ["r1", "r2", "r3"],
                             func / f"sub-{sub}_task-rest_atlas-Toy_stat-mean_timeseries.tsv")
    return deriv


def test_infinite_values_in_timeseries(dataset, tmp_path, run_cli):
    bids_dir, _ = dataset
    deriv = _timeseries_dataset(tmp_path, [12] * 6, inf_at="04")
    out = tmp_path / "out"
    code, err = run_cli([bids_dir, out, "group", "-d", f"ts={deriv}", *FAST])
    assert_clean_error(code, err, "sub-04_task-rest_atlas-Toy_stat-mean_timeseries.tsv holds "
                                  "infinite values (column(s) r2)", "'n/a'")
    assert not out.exists()


def test_run_lengths_error_policy(dataset, tmp_path, run_cli):
    bids_dir, _ = dataset
    deriv = _timeseries_dataset(tmp_path, [12, 12, 9, 12, 12, 12])
    out = tmp_path / "out"
    code, err = run_cli([bids_dir, out, "group", "-d", f"ts={deriv}", *FAST,
                         "--run-length", "error"])
    assert_clean_error(code, err, "different lengths (9 time points in", "sub-03_task-rest",
                       "--run-length crop")
    assert not out.exists()


def test_run_lengths_crop_policy_warns(tmp_path, caplog):
    deriv = _timeseries_dataset(tmp_path, [12, 12, 9, 12, 12, 12])
    runs = [(f"sub-{s}", str(next((deriv / f"sub-{s}" / "func").glob("*.tsv")))) for s in SUBJECTS]
    table = pd.DataFrame({"group": list("ababab")}, index=[f"sub-{s}" for s in SUBJECTS])
    with caplog.at_level(logging.WARNING, logger="xaibids"):
        ds = assemble_dataset(runs, table, "group")
    assert ds.X.shape == (6, 9, 3) and "cropping all to the first 9" in caplog.text


def test_all_zero_region_warns_and_nan_is_kept(tmp_path, caplog):
    runs, rng = [], np.random.default_rng(1)
    for i, sub in enumerate(SUBJECTS):
        data = rng.normal(size=(10, 3))
        data[:, 2] = 0.0  # a region outside the data: all zero in every run
        data[4, 0] = np.nan
        runs.append((f"sub-{sub}", str(write_timeseries_tsv(data, ["r1", "r2", "r3"],
                                                            tmp_path / f"{sub}.tsv"))))
    table = pd.DataFrame({"group": list("ababab")}, index=[f"sub-{s}" for s in SUBJECTS])
    with caplog.at_level(logging.WARNING, logger="xaibids"):
        ds = assemble_dataset(runs, table, "group")
    assert "1 feature(s) are constant or n/a in every run (e.g. r3)" in caplog.text
    assert np.isnan(ds.X[:, 4, 0]).all()
    with pytest.raises(ValueError, match=r"holds infinite values \(column\(s\) r1\)"):
        bad = tmp_path / "bad.tsv"
        bad.write_text("r1\tr2\tr3\ninf\t1\t2\n1\t2\t3\n")
        assemble_dataset(runs[:5] + [("sub-06", str(bad))], table, "group")


def test_input_datasets_read_only_at_group_level(dataset, tmp_path, run_cli):
    """Group level: BIDS_DIR and a timeseries derivatives dataset, both chmod a-w, are read
    and never written to (training, attributions and the group tables all go to OUTPUT_DIR)."""
    from tests.test_errors_inputs import read_only

    bids_dir, _ = dataset
    ro = tmp_path / "ro"
    shutil.copytree(bids_dir, ro / "bids")
    deriv = _timeseries_dataset(ro, [12] * 6)
    out = tmp_path / "out"
    with read_only(ro):
        code, err = run_cli([ro / "bids", out, "group", "-d", f"ts={deriv}",
                             "-w", tmp_path / "work", *FAST])
        assert code == 0, err
    assert len(list(out.glob("sub-*/func/*_desc-ig_attribution.tsv"))) == 6
    assert (out / "dataset_description.json").exists()


def test_failed_training_node_reads_like_an_error(dataset, tmp_path, run_cli, monkeypatch):
    """A node of the group training graph that fails ends the run with one paragraph: the
    node's message and where the crash files are, no Python traceback."""
    import xaibids.learning.ensemble as ensemble

    def broken(*args, **kwargs):
        raise ValueError("the training data hold something impossible")

    monkeypatch.setattr(ensemble, "train_fold_chunk", broken)  # in-process with Linear
    plugin = tmp_path / "plugin.yml"
    plugin.write_text("plugin: Linear\nplugin_args: {}\n")
    bids, deriv = dataset
    code, err = run_cli([bids, tmp_path / "out", "group", "-d", f"fmriprep={deriv}",
                         "-w", tmp_path / "work", "--use-plugin", plugin] + FAST)
    assert code == 1
    assert ("xaibids: error: The group training graph failed: the training data hold "
            "something impossible. The tracebacks are in the crash file(s) in") in err
    # xaibids' own output is that one line, not a Python traceback (Nipype's crash records are
    # shortened by a filter tested in test_cli_participant.py; in a shared test process
    # Nipype's handlers may still hold an earlier test's closed stream and print a
    # "--- Logging error ---" dump, so the whole of stderr is not checked here)
    assert [line for line in err.splitlines() if line.startswith("xaibids: error")] == [
        line for line in err.splitlines() if "The group training graph failed" in line]
    assert not err.rstrip().endswith("something impossible")
