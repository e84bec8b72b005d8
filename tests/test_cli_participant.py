"""Participant level end to end: outputs equal nilearn's, selection, errors, execution."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import nibabel as nb
import numpy as np
import pytest
from nilearn.image import resample_to_img
from nilearn.interfaces.fmriprep import load_confounds_strategy
from nilearn.maskers import NiftiLabelsMasker

from tests.conftest import make_fmriprep_dataset
from xaibids.levels.participant import collect_inputs
from xaibids.cli.command import configure, parse_args
from xaibids.cli.run import main
from xaibids.features.atlases import load_atlas
from xaibids.fileio import read_timeseries_tsv
from xaibids.inputs.validation import run_validator, summarize_errors


@pytest.fixture(scope="module")
def participant_run(fmriprep_dataset, tmp_path_factory):
    bids_dir, deriv = fmriprep_dataset
    out = tmp_path_factory.mktemp("run") / "out"
    work = out.parent / "work"
    code = main([str(bids_dir), str(out), "participant", "-d", f"fmriprep={deriv}",
                 "--atlas", "harvard-oxford", "-w", str(work), "--nprocs", "2"])
    return code, bids_dir, deriv, out


def test_timeseries_equal_nilearn_masker(participant_run):
    code, bids_dir, deriv, out = participant_run
    assert code == 0
    atlas = load_atlas("harvard-oxford")
    tsvs = sorted(out.glob("sub-*/func/*_atlas-HarvardOxford_stat-mean_timeseries.tsv"))
    assert [p.name.split("_")[0] for p in tsvs] == ["sub-01", "sub-02"]
    for tsv in tsvs:
        sub = tsv.name.split("_")[0]
        bold = deriv / sub / "func" / f"{sub}_task-rest_space-MNI152NLin6Asym_res-2_desc-preproc_bold.nii.gz"
        mask = str(bold).replace("desc-preproc_bold", "desc-brain_mask")
        img = nb.load(bold)
        labels_img = resample_to_img(atlas.img, img, interpolation="nearest",
                                     force_resample=True, copy_header=True)
        conf, sample_mask = load_confounds_strategy(str(bold), denoise_strategy="simple")
        masker = NiftiLabelsMasker(labels_img=labels_img, mask_img=mask, detrend=True,
                                   standardize=None, t_r=2.0)
        expected = masker.fit_transform(img, confounds=conf, sample_mask=sample_mask)
        got = read_timeseries_tsv(tsv)
        assert list(got.columns) == atlas.region_names
        sidecar = json.loads(tsv.with_suffix(".json").read_text())
        for index, value in masker.region_ids_.items():
            if index == "background":
                continue
            name = atlas.labels.set_index("index").loc[int(value), "name"]
            if sidecar["Coverage"][name] >= 0.5:
                np.testing.assert_allclose(got[name].to_numpy(), expected[:, index], atol=1e-6)
            else:
                assert got[name].isna().all()
        assert sidecar["ConfoundStrategy"] == "simple"
        assert sidecar["SamplingFrequency"] == pytest.approx(0.5)
        assert sidecar["Sources"][0].startswith("bids:fmriprep:")


def test_output_is_valid_bids_derivative(participant_run):
    code, bids_dir, deriv, out = participant_run
    report = run_validator(out)
    assert summarize_errors(report) == []
    desc = json.loads((out / "dataset_description.json").read_text())
    assert desc["DatasetType"] == "derivative"
    assert desc["GeneratedBy"][0]["Name"] == "xaibids"
    assert {"logs", "group"} <= set((out / ".bidsignore").read_text().splitlines())
    assert (out / "logs" / "CITATION.md").read_text().count("NiftiLabelsMasker") == 1


def test_config_roundtrip_and_config_file(participant_run, tmp_path):
    code, bids_dir, deriv, out = participant_run
    saved = out / "logs" / "config.toml"
    config, _ = parse_args([str(bids_dir), str(tmp_path / "o"), "participant",
                            "--config-file", str(saved), "--confounds", "compcor"])
    assert config.execution.derivatives == {"fmriprep": str(deriv)}
    assert config.workflow.atlas == "harvard-oxford"
    assert config.workflow.confounds == "compcor"  # the command line wins
    assert config.execution.output_dir == str(tmp_path / "o")


@pytest.fixture(scope="module")
def multi_dataset(tmp_path_factory):
    return make_fmriprep_dataset(tmp_path_factory.mktemp("multi"), subjects=("01", "02", "03"),
                                 tasks=("rest", "nback"), runs=(1, 2), n_vols=12)


def _selected(bids_dir, deriv, tmp_path, *options):
    config, extra = parse_args([str(bids_dir), str(tmp_path / "out"), "participant",
                                "-d", f"fmriprep={deriv}", "--atlas", "aal", *options])
    subjects = collect_inputs(config, configure(config, extra))
    return sorted(Path(r.bold).name.split("_space")[0] for s in subjects for r in s.bold_runs)


def test_selection_options(multi_dataset, tmp_path):
    bids_dir, deriv = multi_dataset
    assert len(_selected(bids_dir, deriv, tmp_path)) == 12
    assert _selected(bids_dir, deriv, tmp_path, "--participant_label", "sub-02") == [
        "sub-02_task-nback_run-1", "sub-02_task-nback_run-2",
        "sub-02_task-rest_run-1", "sub-02_task-rest_run-2"]
    assert _selected(bids_dir, deriv, tmp_path, "--participant-label", "01", "03", "-t", "rest") == [
        "sub-01_task-rest_run-1", "sub-01_task-rest_run-2",
        "sub-03_task-rest_run-1", "sub-03_task-rest_run-2"]
    filt = tmp_path / "filter.json"
    filt.write_text(json.dumps({"bold": {"task": "nback", "run": 2}}))
    assert _selected(bids_dir, deriv, tmp_path, "--bids-filter-file", str(filt)) == [
        "sub-01_task-nback_run-2", "sub-02_task-nback_run-2", "sub-03_task-nback_run-2"]



def test_console_script_help_and_version():
    proc = subprocess.run([sys.executable, "-m", "xaibids.cli.run", "--version"],
                          capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.startswith("xaibids v")


def _assert_clear_error(code, stderr, *phrases):
    assert code == 1
    assert "Traceback" not in stderr
    message = stderr.split("xaibids: error: ", 1)[1]
    for phrase in phrases:
        assert phrase in message, message


def test_error_missing_dataset_description(multi_dataset, tmp_path, run_cli):
    bids_dir, deriv = multi_dataset
    broken = tmp_path / "bids"
    shutil.copytree(bids_dir, broken)
    (broken / "dataset_description.json").unlink()
    out = tmp_path / "out"
    code, err = run_cli([broken, out, "participant", "-d", f"fmriprep={deriv}",
                          "--skip-bids-validation"])
    _assert_clear_error(code, err, "dataset_description.json", str(broken))
    assert not out.exists()


def test_error_no_matching_subjects(multi_dataset, tmp_path, run_cli):
    bids_dir, deriv = multi_dataset
    out = tmp_path / "out"
    code, err = run_cli([bids_dir, out, "participant", "-d", f"fmriprep={deriv}",
                          "--participant-label", "09", "--skip-bids-validation"])
    _assert_clear_error(code, err, "sub-09", "Available: sub-01, sub-02, sub-03")
    assert not out.exists()
    code, err = run_cli([bids_dir, out, "participant", "-d", f"fmriprep={deriv}",
                          "-t", "motor", "--skip-bids-validation"])
    _assert_clear_error(code, err, "No preprocessed BOLD", "--task-id")
    assert not out.exists()


def test_error_output_inside_input(multi_dataset, tmp_path, run_cli):
    bids_dir, deriv = multi_dataset
    code, err = run_cli([bids_dir, bids_dir / "derivatives" / "xaibids", "participant"])
    _assert_clear_error(code, err, "inside the input dataset")
    assert not (bids_dir / "derivatives").exists()
    code, err = run_cli([bids_dir, tmp_path / "out", "participant", "-w", bids_dir / "work"])
    _assert_clear_error(code, err, "work directory")


def test_error_unknown_atlas(multi_dataset, tmp_path, run_cli):
    bids_dir, deriv = multi_dataset
    out = tmp_path / "out"
    code, err = run_cli([bids_dir, out, "participant", "-d", f"fmriprep={deriv}",
                          "--atlas", "harvard_oxfrod", "--skip-bids-validation"])
    _assert_clear_error(code, err, "Unknown atlas name 'harvard_oxfrod'", "harvard-oxford")
    assert not out.exists()


def test_error_missing_fmriprep_derivatives(multi_dataset, tmp_path, run_cli):
    bids_dir, deriv = multi_dataset
    partial = tmp_path / "fmriprep"
    shutil.copytree(deriv, partial)
    for conf in (partial / "sub-02" / "func").glob("*task-rest_run-1_desc-confounds*"):
        conf.unlink()
    out = tmp_path / "out"
    code, err = run_cli([bids_dir, out, "participant", "-d", f"fmriprep={partial}",
                          "--skip-bids-validation"])
    _assert_clear_error(code, err, "sub-02", "confounds", "--confounds none")
    assert not out.exists()
    code, err = run_cli([bids_dir, out, "participant", "--skip-bids-validation"])
    _assert_clear_error(code, err, "-d fmriprep=PATH")


def test_error_invalid_bids_reported_readably(multi_dataset, tmp_path, run_cli):
    bids_dir, deriv = multi_dataset
    broken = tmp_path / "bids"
    shutil.copytree(bids_dir, broken)
    (broken / "sub-01" / "func" / "sub-01_task-rest_run-1_bolt.nii.gz").write_bytes(b"")
    code, err = run_cli([broken, tmp_path / "out", "participant", "-d", f"fmriprep={deriv}"])
    _assert_clear_error(code, err, "not valid BIDS", "sub-01_task-rest_run-1_bolt.nii.gz",
                        "--skip-bids-validation")
    assert not (tmp_path / "out").exists()


def test_atlas_in_other_space_warns_and_resamples(tmp_path, run_cli):
    bids_dir, deriv = make_fmriprep_dataset(tmp_path, subjects=("01",), n_vols=12,
                                            space="MNI152NLin2009cAsym")
    out = tmp_path / "out"
    code, err = run_cli([bids_dir, out, "participant", "-d", f"fmriprep={deriv}",
                          "--atlas", "aal", "--skip-bids-validation", "-w", tmp_path / "w"])
    assert code == 0, err
    assert "MNI152NLin2009cAsym but the AAL atlas is in MNI152NLin6Asym" in err
    sidecar = next(out.glob("sub-01/func/*_timeseries.json"))
    assert json.loads(sidecar.read_text())["AtlasResampling"] == "nearest"


def test_failed_subject_others_finish(tmp_path, run_cli):
    bids_dir, deriv = make_fmriprep_dataset(tmp_path, subjects=("01", "02"), n_vols=12)
    bad = deriv / "sub-02" / "func" / "sub-02_task-rest_space-MNI152NLin6Asym_res-2_desc-preproc_bold.nii.gz"
    img = nb.load(bad)
    data = img.get_fdata(dtype=np.float32)
    data[10, 12, 10, 3] = np.nan  # inside the brain mask: only extraction reads the voxels
    nb.save(nb.Nifti1Image(data, img.affine, img.header), bad)
    plugin = tmp_path / "plugin.yml"
    plugin.write_text("plugin: Linear\nplugin_args: {}\n")
    out = tmp_path / "out"
    code, err = run_cli([bids_dir, out, "participant", "-d", f"fmriprep={deriv}",
                          "--skip-bids-validation", "--use-plugin", plugin, "-w", tmp_path / "w"])
    assert code == 1
    assert "sub-01: done" in err and "sub-02: FAILED" in err
    assert list(out.glob("sub-01/func/*_timeseries.tsv"))
    assert not list(out.glob("sub-02/func/*_timeseries.tsv"))
    crash = list((out / "logs" / "sub-02").glob("*/crash-*.txt"))
    assert crash and "NaN or infinite values" in crash[0].read_text()
    # the terminal gets the message and the crash file, the crash file keeps the traceback
    assert (f"sub-02: {bad} holds NaN or infinite values in 1 voxel(s) inside the brain mask"
            in err) and f"(traceback in the crash file {crash[0]})" in err
    assert "Traceback" not in err and "Traceback" in crash[0].read_text()


def test_nipype_crash_records_lose_their_traceback_in_the_terminal():
    import logging

    from xaibids.errors import CrashTracebackFilter

    record = logging.LogRecord("nipype.workflow", logging.ERROR, __file__, 1,
                               "Saving crash info to %s\n%s", ("/x/crash-1.txt", "Traceback ..."),
                               None)
    assert CrashTracebackFilter().filter(record)
    assert record.getMessage() == "Saving crash info to /x/crash-1.txt"
    other = logging.LogRecord("nipype.workflow", logging.ERROR, __file__, 1, "Node %s failed",
                              ("extract",), None)
    assert CrashTracebackFilter().filter(other) and other.getMessage() == "Node extract failed"
