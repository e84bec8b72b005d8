"""A rerun over finished outputs is a no-op unless asked to overwrite (issue #11, item 2).

Each level records what it finished in ``logs/finished/``; a rerun with the same settings and
inputs changes no file, one with other settings stops with the differences and changes no file,
``--overwrite`` recomputes and removes the outputs the new settings no longer make.
"""

import hashlib
import json
import shutil

import pandas as pd
import pytest

from tests.conftest import make_fmriprep_dataset

GROUP = ["--atlas", "aal", "--n-folds", "2", "--n-models", "2", "--epochs", "15",
         "--reliability-samples", "0", "--n-bootstrap", "20", "--skip-bids-validation",
         "--omp-nthreads", "1", "--nprocs", "1"]


def _tree(root):
    """Every file below ``root`` with its modification time and content digest."""
    return {str(p.relative_to(root)): (p.stat().st_mtime_ns, hashlib.sha256(p.read_bytes()).hexdigest())
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def participant_out(fmriprep_dataset, tmp_path, run_cli):
    bids_dir, deriv = fmriprep_dataset
    args = [bids_dir, tmp_path / "out", "participant", "-d", f"fmriprep={deriv}",
            "--atlas", "aal", "--skip-bids-validation", "--nprocs", "1"]
    code, err = run_cli(args)
    assert code == 0, err
    return args, tmp_path / "out"


def test_participant_rerun_is_a_no_op(participant_out, run_cli):
    args, out = participant_out
    records = sorted(p.name for p in (out / "logs" / "finished").glob("*.json"))
    assert records == ["sub-01_atlas-AAL.json", "sub-02_atlas-AAL.json"]
    record = json.loads((out / "logs" / "finished" / records[0]).read_text())
    assert record["settings"]["workflow.confounds"] == "simple"
    assert any(name.endswith("_desc-preproc_bold.nii.gz") for name in record["inputs"])
    assert all(rel.startswith("sub-01/") for rel in record["outputs"])
    assert any(rel.endswith("_stat-mean_timeseries.tsv") for rel in record["outputs"])

    before = _tree(out)
    code, err = run_cli(args)
    assert code == 0, err
    assert "Nothing to do" in err
    assert _tree(out) == before


def test_participant_other_settings_refused_then_overwritten(participant_out, run_cli):
    args, out = participant_out
    tsv = next(out.glob("sub-01/func/*_stat-mean_timeseries.tsv"))
    first = pd.read_csv(tsv, sep="\t")
    before = _tree(out)

    code, err = run_cli([*args, "--confounds", "none"])
    assert code == 1
    assert "already holds the ROI timecourses (AAL atlas) of sub-01" in err
    assert "workflow.confounds: 'simple' → 'none'" in err and "--overwrite" in err
    assert _tree(out) == before  # refused before anything was written

    code, err = run_cli([*args, "--confounds", "none", "--overwrite"])
    assert code == 0, err
    again = pd.read_csv(tsv, sep="\t")
    assert not again.equals(first)  # recomputed without confound regression
    record = json.loads((out / "logs" / "finished" / "sub-01_atlas-AAL.json").read_text())
    assert record["settings"]["workflow.confounds"] == "none"


def test_removed_output_is_made_again_alone(participant_out, run_cli):
    args, out = participant_out
    lost = next(out.glob("sub-02/func/*_stat-mean_timeseries.tsv"))
    lost.unlink()
    kept = {p: p.stat().st_mtime_ns for p in out.glob("sub-01/func/*")}
    code, err = run_cli(args)
    assert code == 0, err
    assert "were removed or changed since" in err
    assert lost.is_file()
    assert {p: p.stat().st_mtime_ns for p in out.glob("sub-01/func/*")} == kept


def test_changed_input_is_noticed(fmriprep_dataset, participant_out, tmp_path, run_cli):
    args, out = participant_out
    bids_dir, deriv = fmriprep_dataset
    copy = tmp_path / "deriv-copy"
    shutil.copytree(deriv, copy)
    confounds = next(copy.glob("sub-01/func/*_desc-confounds_timeseries.tsv"))
    table = pd.read_csv(confounds, sep="\t")
    table["global_signal"] += 1.0
    table.to_csv(confounds, sep="\t", index=False, na_rep="n/a")
    code, err = run_cli([bids_dir, out, "participant", "-d", f"fmriprep={copy}",
                         *args[5:]])
    assert code == 1
    assert f"input {confounds.name} changed" in err


@pytest.fixture(scope="module")
def group_dataset(tmp_path_factory):
    return make_fmriprep_dataset(tmp_path_factory.mktemp("rerun-group"),
                                 subjects=("01", "02", "03", "04"), n_vols=16)


def test_group_rerun_no_op_reports_only_and_overwrite(group_dataset, tmp_path, run_cli):
    bids_dir, deriv = group_dataset
    out = tmp_path / "out"
    args = [bids_dir, out, "group", "-d", f"fmriprep={deriv}", *GROUP]
    code, err = run_cli([*args, "--attribution", "ig", "saliency"])
    assert code == 0, err
    saliency = sorted(out.glob("sub-*/func/*_desc-saliency_attribution.*"))
    assert saliency and (out / "group" / "desc-saliency_importance.tsv").is_file()

    before = _tree(out)
    code, err = run_cli([*args, "--attribution", "ig", "saliency"])
    assert code == 0, err
    assert "Nothing to do" in err and _tree(out) == before

    # re-rendered reports are recorded, so they do not count as edited results
    code, err = run_cli([bids_dir, out, "group", "--reports-only"])
    assert code == 0, err
    rendered = _tree(out)
    code, err = run_cli([*args, "--attribution", "ig", "saliency"])
    assert code == 0, err
    assert "Nothing to do" in err and _tree(out) == rendered

    code, err = run_cli([*args, "--attribution", "ig"])
    assert code == 1
    assert "attribution.attribution: ['ig', 'saliency'] → ['ig']" in err
    assert _tree(out) == rendered

    code, err = run_cli([*args, "--attribution", "ig", "--overwrite"])
    assert code == 0, err
    # the replaced run's saliency outputs are gone; the IG ones were written again
    assert not any(p.exists() for p in saliency)
    assert not (out / "group" / "desc-saliency_importance.tsv").exists()
    assert (out / "group" / "desc-ig_importance.tsv").stat().st_mtime_ns != \
        rendered["group/desc-ig_importance.tsv"][0]
    # the participant step's timecourses, made by the first group run, are not the group's
    assert list(out.glob("sub-01/func/*_stat-mean_timeseries.tsv"))
