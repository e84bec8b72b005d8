"""Bad-input catalogue, participant level and options (docs/errors.md).

Every case: exit code 1, one ``xaibids: error:`` line naming the file and the fix, no traceback
(unless ``-v``), and OUTPUT_DIR not created.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import stat
from contextlib import contextmanager
from pathlib import Path

import nibabel as nb
import numpy as np
import pandas as pd
import pytest

from tests.conftest import make_fmriprep_dataset
from xaibids.fileio import write_timeseries_tsv
from xaibids.features.timeseries import ExtractionError, extract_roi_timeseries

BOLD = "sub-01/func/sub-01_task-rest_space-MNI152NLin6Asym_res-2_desc-preproc_bold"
MASK = "sub-01/func/sub-01_task-rest_space-MNI152NLin6Asym_res-2_desc-brain_mask.nii.gz"
BASE = ["--skip-bids-validation", "--atlas", "aal", "--nprocs", "1"]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """Two subjects, 12 volumes (read-only use: cases modify copies)."""
    return make_fmriprep_dataset(tmp_path_factory.mktemp("errors"), n_vols=12)



def assert_clean_error(code, err, *phrases):
    assert code == 1, err
    assert "Traceback" not in err, err
    assert err.count("xaibids: error: ") == 1, err
    message = err.split("xaibids: error: ", 1)[1]
    for phrase in phrases:
        assert phrase in message, message
    return message


def _write(path, text):
    path.write_text(text)


def _bold_3d(deriv):
    path = deriv / f"{BOLD}.nii.gz"
    img = nb.load(path)
    nb.save(nb.Nifti1Image(np.asarray(img.dataobj)[..., 0], img.affine), path)


def _cut(path, keep):
    """Keep the first ``keep`` fraction of a file (an interrupted copy; the header survives)."""
    data = path.read_bytes()
    path.write_bytes(data[:int(len(data) * keep)])


# (case id, function(bids, deriv) that breaks the copies, phrases the message must hold)
BROKEN = [
    ("no-dataset-description", lambda b, d: (b / "dataset_description.json").unlink(),
     ["has no dataset_description.json", "top folder"]),
    ("dataset-description-invalid-json",
     lambda b, d: _write(b / "dataset_description.json", '{"Name": "x",'),
     ["dataset_description.json is not valid JSON", "line 1", "json.tool"]),
    ("derivatives-description-invalid-json",
     lambda b, d: _write(d / "dataset_description.json", "{'Name': 1}"),
     ["fmriprep/dataset_description.json is not valid JSON"]),
    ("raw-sidecar-invalid-json",
     lambda b, d: _write(b / "sub-01/func/sub-01_task-rest_bold.json", '{"RepetitionTime": 2'),
     ["sub-01_task-rest_bold.json is not valid JSON", "json.tool"]),
    ("bold-sidecar-invalid-json", lambda b, d: _write(d / f"{BOLD}.json", "{bad"),
     ["desc-preproc_bold.json is not valid JSON"]),
    ("confounds-sidecar-invalid-json",
     lambda b, d: _write(d / "sub-01/func/sub-01_task-rest_desc-confounds_timeseries.json", "["),
     ["desc-confounds_timeseries.json is not valid JSON"]),
    ("zero-byte-bold", lambda b, d: (d / f"{BOLD}.nii.gz").write_bytes(b""),
     ["desc-preproc_bold.nii.gz is an empty file", "rerun fMRIPrep"]),
    ("garbage-bold", lambda b, d: (d / f"{BOLD}.nii.gz").write_bytes(os.urandom(2000)),
     ["desc-preproc_bold.nii.gz is not a readable NIfTI", "truncated"]),
    ("truncated-bold-data", lambda b, d: _cut(d / f"{BOLD}.nii.gz", 0.6),
     ["desc-preproc_bold.nii.gz is truncated", "header promises", "copy it again"]),
    ("truncated-mask-data", lambda b, d: _cut(d / MASK, 0.5),
     ["brain mask", "desc-brain_mask.nii.gz is truncated"]),
    ("3d-bold", lambda b, d: _bold_3d(d),
     ["desc-preproc_bold.nii.gz has shape (20, 24, 20)", "4D BOLD series"]),
    ("zero-byte-mask", lambda b, d: (d / MASK).write_bytes(b""),
     ["brain mask", "desc-brain_mask.nii.gz is an empty file"]),
]


@pytest.mark.parametrize("breaker, phrases", [c[1:] for c in BROKEN], ids=[c[0] for c in BROKEN])
def test_broken_input_stops_before_writing(dataset, tmp_path, run_cli, breaker, phrases):
    bids_dir, deriv = dataset
    bids, fmriprep = tmp_path / "bids", tmp_path / "fmriprep"
    shutil.copytree(bids_dir, bids)
    shutil.copytree(deriv, fmriprep)
    breaker(bids, fmriprep)
    out = tmp_path / "out"
    code, err = run_cli([bids, out, "participant", "-d", f"fmriprep={fmriprep}",
                         "-w", tmp_path / "work", *BASE])
    assert_clean_error(code, err, *phrases)
    assert not out.exists()


@pytest.mark.parametrize("content, phrases", [
    ('{"bold": {"task": "rest"', ["is not valid JSON", "line 1"]),
    ('["bold"]', ["must map data types to queries"]),
    ('{"func": {"task": "rest"}}', ["unknown data type(s) ['func']"]),
    ('{"bold": {"task": "nback"}}', ["No preprocessed BOLD", "--bids-filter-file"]),
], ids=["invalid-json", "not-a-mapping", "unknown-key", "selects-nothing"])
def test_bids_filter_file_errors(dataset, tmp_path, run_cli, content, phrases):
    bids_dir, deriv = dataset
    filt = tmp_path / "filter.json"
    filt.write_text(content)
    out = tmp_path / "out"
    code, err = run_cli([bids_dir, out, "participant", "-d", f"fmriprep={deriv}",
                         "--bids-filter-file", filt, *BASE])
    message = assert_clean_error(code, err, *phrases)
    if "selects" not in phrases[0] and "No preprocessed" not in phrases[0]:
        assert str(filt) in message
    assert not out.exists()


def test_atlas_dataset_invalid_json(dataset, tmp_path, run_cli):
    """A BIDS-Atlas folder given to --atlas whose description is broken: named, with the fix."""
    bids_dir, deriv = dataset
    atlas_dir = tmp_path / "atlas-ds"
    atlas_dir.mkdir()
    (atlas_dir / "dataset_description.json").write_text('{"Name": "x", "DatasetType": ')
    out = tmp_path / "out"
    code, err = run_cli([bids_dir, out, "participant", "-d", f"fmriprep={deriv}",
                         *BASE, "--atlas", atlas_dir])
    assert_clean_error(code, err, f"{atlas_dir / 'dataset_description.json'} is not valid JSON",
                       "line 1", "json.tool")
    assert not out.exists()


def test_config_file_invalid_toml_is_exit_1(dataset, tmp_path, run_cli):
    bids_dir, deriv = dataset
    bad = tmp_path / "config.toml"
    bad.write_text("[execution\nbids_dir = 1")
    out = tmp_path / "out"
    code, err = run_cli([bids_dir, out, "participant", "--config-file", bad])
    assert_clean_error(code, err, f"Could not read the configuration file {bad}", "Fix the file")
    assert "usage:" not in err  # an input file, not a usage error
    assert not out.exists()


@pytest.mark.parametrize("label", ["../01", "sub-../../etc", "01/..", "a/b", "01 02", "ü"])
def test_participant_label_with_path_characters_refused(dataset, tmp_path, run_cli, label):
    bids_dir, deriv = dataset
    out = tmp_path / "out"
    code, err = run_cli([bids_dir, out, "participant", "-d", f"fmriprep={deriv}",
                         "--participant-label", label, *BASE])
    assert_clean_error(code, err, "is not a BIDS label", "letters and digits")
    assert not out.exists()
    assert not (tmp_path / "etc").exists()


def test_verbose_shows_the_traceback(dataset, tmp_path, run_cli):
    bids_dir, deriv = dataset
    code, err = run_cli([bids_dir, tmp_path / "out", "participant", "-d", f"fmriprep={deriv}",
                         "--participant-label", "../01", "-v", *BASE])
    assert code == 1 and "Traceback" in err and "xaibids: error: " in err


def test_output_below_a_file(dataset, tmp_path, run_cli):
    bids_dir, deriv = dataset
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    code, err = run_cli([bids_dir, blocker / "out", "participant", "-d", f"fmriprep={deriv}",
                         *BASE])
    assert_clean_error(code, err, "output directory", f"{blocker} is a file")


def test_output_not_writable_simulated(dataset, tmp_path, run_cli, monkeypatch):
    """As root, permissions do not stop writes: deny access the way os.access reports it."""
    bids_dir, deriv = dataset
    locked = tmp_path / "locked"
    locked.mkdir()
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode, **kw: (
        False if str(p) == str(locked) else real_access(p, mode, **kw)))
    code, err = run_cli([bids_dir, locked / "out", "participant", "-d", f"fmriprep={deriv}",
                         *BASE])
    assert_clean_error(code, err, f"output directory {locked / 'out'} is not writable",
                       "permissions")
    assert not (locked / "out").exists()
    code, err = run_cli([bids_dir, tmp_path / "out", "participant", "-d", f"fmriprep={deriv}",
                         "-w", locked, *BASE])
    assert_clean_error(code, err, f"work directory {locked} is not writable")


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores file permissions")
def test_output_not_writable_chmod(dataset, tmp_path, run_cli):
    bids_dir, deriv = dataset
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        code, err = run_cli([bids_dir, locked / "out", "participant", "-d",
                             f"fmriprep={deriv}", *BASE])
    finally:
        locked.chmod(stat.S_IRWXU)
    assert_clean_error(code, err, "is not writable")


def test_disk_full_is_a_clean_error(dataset, tmp_path, run_cli, monkeypatch):
    """ENOSPC half-way through writing the run's configuration: the message names the file (not
    the temporary one), no traceback, and neither the file nor its temporary copy is left."""
    real_write_text = Path.write_text

    def full(self, text, *args, **kwargs):
        if self.name.startswith(".config.toml."):
            real_write_text(self, text[:len(text) // 2], *args, **kwargs)
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))  # as write() does: no file
        return real_write_text(self, text, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", full)
    bids_dir, deriv = dataset
    out = tmp_path / "out"
    code, err = run_cli([bids_dir, out, "participant", "-d", f"fmriprep={deriv}", *BASE])
    assert_clean_error(code, err, "No space left on device", str(out / "logs" / "config.toml"),
                       "free space")
    assert not (out / "logs" / "config.toml").exists()
    assert not list((out / "logs").glob(".config.toml.*"))


def test_disk_full_leaves_no_partial_timeseries(tmp_path, monkeypatch):
    path = tmp_path / "sub-01_timeseries.tsv"

    def half_then_full(self, target, *args, **kwargs):
        Path(target).write_text("roi-1\troi-2\n0.1\t")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(pd.DataFrame, "to_csv", half_then_full)
    with pytest.raises(OSError) as exc:
        write_timeseries_tsv(np.ones((3, 2)), ["roi-1", "roi-2"], path)
    assert exc.value.errno == errno.ENOSPC
    assert list(tmp_path.iterdir()) == []  # neither the file nor its temporary copy


def test_nan_in_bold_inside_mask_is_refused(dataset, tmp_path):
    from xaibids.features.atlases import load_atlas

    bids_dir, deriv = dataset
    img = nb.load(deriv / f"{BOLD}.nii.gz")
    data = img.get_fdata(dtype=np.float32)
    for value in (np.nan, np.inf):
        data[10, 12, 10, 3] = value
        bad = tmp_path / "sub-01_task-rest_space-MNI152NLin6Asym_desc-preproc_bold.nii.gz"
        nb.save(nb.Nifti1Image(data, img.affine, img.header), bad)
        atlas = load_atlas("aal")
        with pytest.raises(ExtractionError, match=r"preproc_bold.nii.gz holds NaN or infinite "
                                                  r"values in 1 voxel\(s\) inside the brain mask"):
            extract_roi_timeseries(bad, deriv / MASK, atlas.img, atlas.labels, confounds="none",
                                   metadata={"RepetitionTime": 2.0})


@contextmanager
def read_only(root):
    """Make everything under *root* unwritable (chmod a-w) for the block, then check nothing
    under it changed: a snapshot of sizes and mtimes, since root ignores permissions."""
    def snapshot():
        return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
                for p in sorted(root.rglob("*"))}

    before = snapshot()
    modes = {p: p.stat().st_mode for p in [root, *root.rglob("*")]}
    for p, mode in modes.items():
        p.chmod(mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    try:
        yield
    finally:
        for p in sorted(modes, key=lambda p: len(p.parts)):
            p.chmod(modes[p])
    assert snapshot() == before


def test_input_dataset_read_only(dataset, tmp_path, run_cli):
    """Participant level: nothing is written into BIDS_DIR or the fMRIPrep derivatives."""
    bids_dir, deriv = dataset
    ro = tmp_path / "ro"
    shutil.copytree(bids_dir, ro / "bids")
    shutil.copytree(deriv, ro / "fmriprep")
    out = tmp_path / "out"
    with read_only(ro):
        code, err = run_cli([ro / "bids", out, "participant", "-d", f"fmriprep={ro / 'fmriprep'}",
                             "-w", tmp_path / "work", "--participant-label", "01", *BASE])
        assert code == 0, err
    assert len(list(out.glob("sub-01/func/*_timeseries.tsv"))) == 1


def test_derivatives_sink_replaces_files_atomically(tmp_path, monkeypatch):
    """DerivativesDataSink stages its files and renames them into place: a write that fails
    half-way leaves the earlier complete file and sidecar untouched, and no staging folder."""
    from niworkflows.interfaces.bids import DerivativesDataSink as Base

    from xaibids.interfaces.bids import DerivativesDataSink

    source = tmp_path / "sub-01_task-rest_space-MNI152NLin6Asym_bold.nii.gz"
    source.write_bytes(b"")
    out = tmp_path / "out"

    def sink(values):
        tsv = tmp_path / "values.tsv"
        tsv.write_text(values)
        return DerivativesDataSink(base_directory=str(out), source_file=str(source),
                                   in_file=str(tsv), atlas="AAL", statistic="mean",
                                   suffix="timeseries", extension=".tsv",
                                   Atlas="AAL").run().outputs

    first = sink("roi-1\n1.0\n")
    final = (out / "sub-01" / "func" /
             "sub-01_task-rest_space-MNI152NLin6Asym_atlas-AAL_stat-mean_timeseries.tsv")
    assert first.out_file == str(final) and first.out_meta == str(final.with_suffix(".json"))
    assert final.read_text() == "roi-1\n1.0\n"
    assert json.loads(final.with_suffix(".json").read_text())["Atlas"] == "AAL"

    original = Base._run_interface

    def half_then_full(self, runtime):
        runtime = original(self, runtime)  # writes into the staging folder ...
        Path(self._results["out_file"][0]).write_text("roi-1\n2.")  # ... is cut off ...
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))  # ... by a full disk

    monkeypatch.setattr(Base, "_run_interface", half_then_full)
    with pytest.raises(OSError):
        sink("roi-1\n2.0\n")
    assert final.read_text() == "roi-1\n1.0\n"
    assert sorted(p.name for p in out.rglob("*")) == sorted(
        ["sub-01", "func", final.name, final.with_suffix(".json").name])


@pytest.mark.parametrize("n_vols, phrase", [(12, "no signal is left"), (40, "more than half"),
                                            (120, None)])
def test_confounds_that_eat_the_run_are_warned_about(tmp_path, caplog, n_vols, phrase):
    """nilearn's 'simple' strategy on fMRIPrep's columns is 24 motion + 2 tissue regressors +
    cosines; with the constant and the trend that is all of a short run."""
    from xaibids.features.timeseries import confounds_for

    _, deriv = make_fmriprep_dataset(tmp_path, subjects=("01",), n_vols=n_vols)
    bold = next(deriv.glob("sub-01/func/*_desc-preproc_bold.nii.gz"))
    with caplog.at_level("WARNING", logger="xaibids"):
        conf, _ = confounds_for(str(bold), "simple")
    assert len(conf) == n_vols
    warned = [r.getMessage() for r in caplog.records if "regresses" in r.getMessage()]
    if phrase is None:
        assert not warned
    else:
        assert len(warned) == 1 and phrase in warned[0] and "--confounds simple" in warned[0]
