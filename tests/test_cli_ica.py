"""``--features ica`` through the command line: group ICA at the group level, then template
mode (the group maps of one run as the template of another) through both levels."""

import json

import nibabel as nb
import numpy as np
import pandas as pd
import pytest

from tests.conftest import make_fmriprep_dataset
from xaibids.cli.run import main
from xaibids.features.ica import paint_components
from xaibids.inputs.validation import run_validator, summarize_errors

FAST = ["--n-folds", "2", "--n-models", "2", "--epochs", "2", "--skip-bids-validation",
        "--omp-nthreads", "1", "--reliability-samples", "2", "--n-bootstrap", "50"]
SUBJECTS = tuple(f"{i:02d}" for i in range(1, 9))


@pytest.fixture(scope="module")
def group_ica_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("ica")
    bids_dir, deriv = make_fmriprep_dataset(root, subjects=SUBJECTS, n_vols=30)
    out = root / "out"
    code = main([str(bids_dir), str(out), "group", "-d", f"fmriprep={deriv}",
                 "-w", str(root / "work"), "--features", "ica", "--ica-components", "4", *FAST])
    return code, bids_dir, deriv, out, root


def test_group_ica_writes_components_timecourses_and_maps(group_ica_run):
    code, bids_dir, deriv, out, root = group_ica_run
    assert code == 0
    components = sorted(out.glob("atlases/atlas-*/*_desc-ica_components.nii.gz"))
    assert len(components) == 1 and nb.load(components[0]).shape[3] == 4
    ts = sorted(out.glob("sub-*/func/*_desc-ica_timeseries.tsv"))
    assert len(ts) == len(SUBJECTS)
    assert pd.read_csv(ts[0], sep="\t").shape == (30, 4)
    maps = sorted(out.glob("sub-*/func/*_desc-ig_attribution.nii.gz"))
    assert len(maps) == len(SUBJECTS)
    # the painted map is the component maps weighted by the subject's time-summed importance
    assert np.ptp(np.asarray(nb.load(maps[0]).dataobj)) > 0
    text = (out / "logs" / "CITATION.md").read_text()
    assert "ICA timecourses (4 group ICA components)" in text
    assert "{varoquaux2010," in (out / "logs" / "CITATION.bib").read_text()
    importance = pd.read_csv(out / "group" / "desc-ig_importance.tsv", sep="\t")
    # the group importance in the brain: the component maps weighted by importance_norm
    group_map = sorted(out.glob("group/*desc-ig_importance.nii.gz"))
    assert len(group_map) == 1
    names = pd.read_csv(str(components[0]).replace(".nii.gz", ".tsv"), sep="\t")["name"]
    weights = importance.set_index("feature").loc[names, "importance_norm"].to_numpy()
    expected = paint_components(components[0], weights).get_fdata()
    np.testing.assert_allclose(nb.load(group_map[0]).get_fdata(), expected, atol=1e-6)
    sidecar = json.loads(group_map[0].with_name(
        group_map[0].name.replace(".nii.gz", ".json")).read_text())
    assert "ICA components" in sidecar["Description"]
    html = (out / "group.html").read_text()
    assert group_map[0].name in html  # the report shows it with the importance
    assert summarize_errors(run_validator(out)) == []  # the README's zero-error claim


def test_template_mode_through_both_levels(group_ica_run, tmp_path):
    """The group maps of one run as the template of another, with a TSV giving each component
    a domain (as Neuromark's): the domains reach the group statistics."""
    code, bids_dir, deriv, out, root = group_ica_run
    components = next(out.glob("atlases/atlas-*/*_desc-ica_components.nii.gz"))
    names = pd.read_csv(str(components).replace(".nii.gz", ".tsv"), sep="\t")["name"].tolist()
    template = tmp_path / "networks.nii.gz"
    template.write_bytes(components.read_bytes())
    domains = ["visual", "visual", "default-mode", "default-mode"]
    pd.DataFrame({"name": names, "domain": domains}).to_csv(
        tmp_path / "networks.tsv", sep="\t", index=False)
    out2 = tmp_path / "out2"
    common = ["-d", f"fmriprep={deriv}", "-w", str(tmp_path / "work"), "--features", "ica",
              "--ica-template", str(template), *FAST]
    assert main([str(bids_dir), str(out2), "participant", *common]) == 0
    ts = sorted(out2.glob("sub-*/func/*_desc-ica_timeseries.tsv"))
    assert len(ts) == len(SUBJECTS)
    assert pd.read_csv(ts[0], sep="\t").columns.tolist() == names
    assert main([str(bids_dir), str(out2), "group", *common]) == 0
    meta = json.loads(next(out2.glob("sub-01/func/*_desc-ig_attribution.json")).read_text())
    assert meta["Features"] == template.name.split(".")[0]
    assert "template" in (out2 / "logs" / "CITATION.md").read_text()
    table = pd.read_csv(out2 / "group" / "desc-ig_domains.tsv", sep="\t")
    assert sorted(table["group"]) == ["default-mode", "visual"]
    assert set(table["n_features"]) == {2}
    assert (out2 / "group" / "desc-ig_importance.nii.gz").is_file()  # template space unknown
    assert "Domains" in (out2 / "group.html").read_text()


def test_group_ica_options_dictlearning_union_mask_and_subject_maps(group_ica_run, tmp_path):
    """--ica-algorithm, --ica-mask and --ica-subject-maps reach the group ICA and its outputs;
    --ig-steps adaptive reaches the maps' sidecars, the convergence table and the methods."""
    code, bids_dir, deriv, out, root = group_ica_run
    out2 = tmp_path / "out"
    assert main([str(bids_dir), str(out2), "group", "-d", f"fmriprep={deriv}",
                 "-w", str(tmp_path / "work"), "--features", "ica", "--ica-components", "4",
                 "--ica-algorithm", "dictlearning", "--ica-alpha", "1", "--ica-mask", "union",
                 "--confounds", "none", "--ig-steps", "adaptive", "--ig-tolerance", "0.005",
                 "--ica-subject-maps", *FAST]) == 0
    components = sorted(out2.glob("atlases/atlas-*/*_desc-ica_components.nii.gz"))
    assert [c.parent.name for c in components] == ["atlas-DictLearning4"]
    meta = json.loads(components[0].with_name(
        components[0].name.replace(".nii.gz", ".json")).read_text())
    assert meta["Algorithm"] == "DictLearning" and meta["MaskMode"] == "union"
    subject_maps = sorted(out2.glob("sub-*/func/*_desc-ica_components.nii.gz"))
    assert len(subject_maps) == len(SUBJECTS)
    assert nb.load(subject_maps[0]).shape[3] == 4
    text = (out2 / "logs" / "CITATION.md").read_text()
    for option in ("`--ica-algorithm dictlearning`", "`--ica-alpha 1.0`", "`--ica-mask union`",
                   "`--ica-subject-maps`", "`--ig-steps adaptive`", "`--ig-tolerance 0.005`"):
        assert option in text
    assert "4 equal panels of 2 Gauss-Legendre points" in text and "at most 0.5%" in text
    convergence = pd.read_csv(out2 / "group" / "desc-igConvergence_metrics.tsv", sep="\t")
    assert list(convergence["fold"]) == [1, 2] and (convergence["n_steps"] == "adaptive").all()
    assert (convergence["completeness_error"] <= 0.005).all()
    ig = json.loads(next(out2.glob("sub-01/func/*_desc-ig_attribution.json")).read_text())
    assert ig["MethodParameters"]["n_steps"] == "adaptive"
    assert ig["MethodParameters"]["completeness_tolerance"] == 0.005
    assert ig["MethodParameters"]["mean_points"] >= 8
    report = (out2 / "group.html").read_text()
    assert "IG convergence" in report and "mean_points" in report
    assert summarize_errors(run_validator(out2)) == []


def test_template_mode_subject_maps(group_ica_run, tmp_path):
    """--ica-subject-maps in template mode: the participant level writes stage-2 maps."""
    code, bids_dir, deriv, out, root = group_ica_run
    components = next(out.glob("atlases/atlas-*/*_desc-ica_components.nii.gz"))
    template = tmp_path / "networks.nii.gz"
    template.write_bytes(components.read_bytes())
    out2 = tmp_path / "out"
    assert main([str(bids_dir), str(out2), "participant", "-d", f"fmriprep={deriv}",
                 "-w", str(tmp_path / "work"), "--features", "ica", "--ica-template",
                 str(template), "--ica-subject-maps", "--participant-label", "01",
                 "--skip-bids-validation", "--nprocs", "1"]) == 0
    maps = sorted(out2.glob("sub-01/func/*_desc-ica_components.nii.gz"))
    assert len(maps) == 1 and nb.load(maps[0]).shape[3] == 4


def test_missing_ica_template_is_a_clear_error(group_ica_run, capsys):
    code, bids_dir, deriv, out, root = group_ica_run
    code = main([str(bids_dir), str(root / "out3"), "participant", "-d", f"fmriprep={deriv}",
                 "--features", "ica", "--ica-template", str(root / "nope.nii.gz"),
                 "--skip-bids-validation"])
    assert code == 1
    assert "--ica-template file" in capsys.readouterr().err
    assert not (root / "out3").exists()
