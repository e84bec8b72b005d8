"""Template-mode ICA as a Nipype participant workflow on a small fMRIPrep-like dataset."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import nibabel as nb
import numpy as np
import pandas as pd
import pytest
from nilearn.image import resample_to_img
from nilearn.interfaces.fmriprep import load_confounds_strategy
from nilearn.maskers import NiftiMasker
from nilearn.masking import apply_mask

from xaibids.levels.participant import collect_inputs
from xaibids.config import Config
from xaibids.errors import XaibidsError
from xaibids.fileio import read_timeseries_tsv
from xaibids.outputs.boilerplate import cited_keys, workflow_description
from xaibids.workflows.base import init_xaibids_participant_wf
from xaibids.workflows.ica import init_ica_timeseries_wf, prepare_ica_template

NAMES = ["SC1", "AUD1", "VIS1", "OUT1"]
DOMAINS = ["SC", "AUD", "VIS", "OUT"]


def _template(folder: Path) -> Path:
    """Four Gaussian maps on a 6 mm grid (not the BOLD's 8 mm one); OUT1 lies outside the
    brain mask of ``make_fmriprep_dataset``. The TSV beside it lists them out of order."""
    folder.mkdir(parents=True, exist_ok=True)
    shape = (27, 32, 27)
    affine = np.array([[6.0, 0, 0, -80], [0, 6, 0, -112], [0, 0, 6, -72], [0, 0, 0, 1]])
    xyz = np.indices(shape).reshape(3, -1).T @ affine[:3, :3].T + affine[:3, 3]
    centers = [(0, -18, -10), (-45, -20, 10), (20, -80, 10), (0, 60, 75)]
    data = np.stack([np.exp(-((xyz - c) ** 2).sum(1) / (2 * 15.0**2)).reshape(shape)
                     for c in centers], axis=-1).astype(np.float32)
    path = folder / "tpl.nii.gz"
    nb.Nifti1Image(data, affine).to_filename(path)
    pd.DataFrame({"index": [4, 3, 2, 1], "name": NAMES[::-1], "domain": DOMAINS[::-1]}).to_csv(
        folder / "tpl.tsv", sep="\t", index=False)
    return path


@pytest.fixture(scope="module")
def ica_run(fmriprep_dataset, tmp_path_factory):
    bids_dir, deriv = fmriprep_dataset
    root = tmp_path_factory.mktemp("ica_wf")
    template = _template(root / "template")
    cfg = Config()
    ex = cfg.execution
    ex.bids_dir, ex.output_dir, ex.work_dir = str(bids_dir), str(root / "out"), str(root / "work")
    ex.derivatives = {"fmriprep": str(deriv)}
    cfg.workflow.features = "ica"
    cfg.workflow.ica_template = str(template)
    subjects = collect_inputs(cfg, SimpleNamespace(space=None, name="none"))
    crash = {s.subject: root / "crash" / s.subject for s in subjects}
    wf = init_xaibids_participant_wf(cfg, subjects, None, None, crash)
    wf.run(plugin="Linear")
    return cfg, subjects, template, root


def _direct(run, template: Path) -> np.ndarray:
    """Independent computation: nilearn cleaning, resampled maps, lstsq with an intercept."""
    img = nb.load(run.bold)
    conf, sample_mask = load_confounds_strategy(run.bold, denoise_strategy="simple")
    data = NiftiMasker(mask_img=run.mask, detrend=True, standardize=None, t_r=2.0).fit_transform(
        img, confounds=conf, sample_mask=sample_mask)
    maps = resample_to_img(nb.load(template), img, interpolation="continuous",
                           force_resample=True, copy_header=True)
    masked = apply_mask(maps, run.mask)
    design = np.c_[masked.T, np.ones(masked.shape[1])]
    return np.linalg.lstsq(design, data.T.astype(float), rcond=None)[0][:-1].T


def test_template_timeseries_named_and_equal_lstsq(ica_run):
    cfg, subjects, template, root = ica_run
    out = Path(cfg.execution.output_dir)
    tsvs = sorted(out.glob("sub-*/func/*_desc-ica_timeseries.tsv"))
    assert [p.name for p in tsvs] == [f"sub-{s}_task-rest_desc-ica_timeseries.tsv"
                                      for s in ("01", "02")]
    for tsv, subject in zip(tsvs, subjects):
        got = read_timeseries_tsv(tsv)
        assert list(got.columns) == NAMES  # the template's names, in volume order
        assert got["OUT1"].isna().all()  # outside the brain mask → n/a
        expected = _direct(subject.bold_runs[0], template)
        np.testing.assert_allclose(got[NAMES[:3]].to_numpy(), expected[:, :3], rtol=1e-5,
                                   atol=1e-5 * np.abs(expected[:, :3]).max())
        side = json.loads(tsv.with_suffix(".json").read_text())
        assert side["ICAMode"] == "template" and side["ICATemplate"] == "tpl.nii.gz"
        assert side["ICATemplateResampling"] == "continuous"
        assert side["SamplingFrequency"] == pytest.approx(0.5)
        assert side["RepetitionTime"] == 2.0
        assert side["Coverage"]["OUT1"] < 0.5 < min(side["Coverage"][n] for n in NAMES[:3])
        assert side["Sources"][0].startswith("bids:fmriprep:sub-")
        assert side["ConfoundStrategy"] == "simple" and side["ConfoundRegressors"]


def test_template_boilerplate_cites(ica_run):
    cfg, subjects, template, root = ica_run
    wf = init_xaibids_participant_wf(cfg, subjects, None, None,
                                     {s.subject: root for s in subjects})
    text = workflow_description(wf)
    assert text.count("dual regression") == 1 and "tpl.nii.gz" in text
    assert set(cited_keys(text)) == {"nipype1", "pybids", "nilearn", "beckmann2009",
                                          "erhardt2011"}


def test_stage2_maps_and_template_errors(ica_run, tmp_path, caplog):
    cfg, subjects, template, root = ica_run
    files = prepare_ica_template(template, tmp_path / "work")
    run = subjects[0].bold_runs[0]
    wf = init_ica_timeseries_wf(run, files, cfg.workflow, str(tmp_path / "out"), ["bids:x:y"],
                                stage2=True)
    wf.base_dir = str(tmp_path / "work")
    wf.run(plugin="Linear")
    maps = sorted((tmp_path / "out").glob("sub-01/func/*_desc-ica_components.nii.gz"))
    assert [p.name for p in maps] == [
        "sub-01_task-rest_space-MNI152NLin6Asym_desc-ica_components.nii.gz"]
    img = nb.load(maps[0])
    assert img.shape == nb.load(run.bold).shape[:3] + (4,)
    assert json.loads(Path(str(maps[0]).replace(".nii.gz", ".json")).read_text())[
        "ComponentNames"] == NAMES
    # a template in another space than the BOLD: resampled, with a warning
    other = tmp_path / "other"
    other.mkdir()
    shutil.copy(template, other / "tpl.nii.gz")
    (other / "tpl.json").write_text(json.dumps({"Space": "MNI152NLin2009cAsym"}))
    with caplog.at_level("WARNING", logger="xaibids"):
        init_ica_timeseries_wf(run, prepare_ica_template(other / "tpl.nii.gz", tmp_path / "w3"),
                               cfg.workflow, str(tmp_path / "out"), [])
    assert "is in MNI152NLin6Asym but the ICA template tpl.nii.gz is in MNI152NLin2009cAsym" \
        in caplog.text
    # errors reach the user as XaibidsError naming the file
    bad = tmp_path / "bad"
    bad.mkdir()
    shutil.copy(template, bad / "tpl.nii.gz")
    pd.DataFrame({"index": [1, 2], "name": ["a", "b"]}).to_csv(bad / "tpl.tsv", sep="\t",
                                                               index=False)
    with pytest.raises(XaibidsError, match="tpl.tsv has 2 row"):
        prepare_ica_template(bad / "tpl.nii.gz", tmp_path / "w2")
    no_template = Config()
    no_template.workflow.features = "ica"
    with pytest.raises(XaibidsError, match="group level"):
        init_xaibids_participant_wf(no_template, subjects, None, None, {})


def test_roi_builder_unchanged_by_ica_branch(fmriprep_dataset, tmp_path):
    """features=roi still builds the ROI workflow (names of the per-run sub-workflows)."""
    bids_dir, deriv = fmriprep_dataset
    cfg = Config()
    cfg.execution.bids_dir, cfg.execution.work_dir = str(bids_dir), str(tmp_path)
    cfg.execution.derivatives = {"fmriprep": str(deriv)}
    subjects = collect_inputs(cfg, SimpleNamespace(space=None, name="none"))
    atlas = SimpleNamespace(name="X", labels=pd.DataFrame({"index": [1], "name": ["a"]}),
                            space=None, source="")
    atlas_files = (tmp_path / "a.nii.gz", tmp_path / "a.tsv")
    for path in atlas_files:
        path.write_text("")  # the builder only checks that they exist
    wf = init_xaibids_participant_wf(cfg, subjects, atlas, tuple(map(str, atlas_files)),
                                     {s.subject: tmp_path for s in subjects})
    names = wf.list_node_names()
    assert any("roi_timeseries_task_rest_wf" in n for n in names)
    assert not any("ica_timeseries" in n for n in names)
