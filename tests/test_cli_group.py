"""Group level end to end on a small fMRIPrep-like dataset (plumbing; the science is tested
in the learning tests)."""

import json
import shutil
import tomllib

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
    assert meta["Model"] == "region-cnn" and len(meta["ModelSeeds"]) == 2
    perf = pd.read_csv(out / "group" / "desc-performance_metrics.tsv", sep="\t")
    assert {"fold", "n_models", "accuracy", "balanced_accuracy", "loss", "p_value", "ci_low",
            "ci_high", "above_chance"} <= set(perf.columns)
    verdict = perf[perf["fold"].astype(str) == "all"].iloc[0]
    assert 0 < verdict["p_value"] <= 1 and verdict["ci_low"] <= verdict["ci_high"]
    table = pd.read_csv(out / "group" / "desc-ig_importance.tsv", sep="\t")
    assert {"feature", "importance", "importance_norm", "statistic", "p_value", "q_value",
            "selected", "cohens_d"} <= set(table.columns)
    sidecar = json.loads((out / "group" / "desc-ig_importance.json").read_text())
    assert sidecar["SelectionRule"] == "empirical-null" and sidecar["SelectionAlpha"] == 0.05
    # two epochs on 8 subjects: whatever the verdict, nothing is selected from a model at chance
    said = json.loads((out / "group" / "desc-performance_metrics.json").read_text())["Verdict"]
    if not verdict["above_chance"]:
        assert not table["selected"].any() and "SelectionWithheld" in sidecar
        assert "NOT above chance" in said
    assert said in (out / "group.html").read_text()
    assert table["importance_norm"].max() == pytest.approx(1.0)
    # every region also named by the Harvard-Oxford region holding most of its voxels
    where = table.set_index("feature")
    assert where.loc["Precuneus_L", "reference_region"] == "Left_Precuneous_Cortex"
    assert 0.5 < where.loc["Precuneus_L", "reference_share"] <= 1
    assert "reference_region" in json.loads(
        (out / "group" / "desc-ig_importance.json").read_text())
    # the group importance painted into the atlas: each region holds its importance_norm
    group_map = nb.load(out / "group" / f"space-{atlas.space}_desc-ig_importance.nii.gz")
    np.testing.assert_array_equal(group_map.affine, atlas.img.affine)
    labels, painted = np.asarray(atlas.img.dataobj), group_map.get_fdata()
    for row in table.sort_values("importance_norm").tail(3).itertuples():
        index = atlas.labels.set_index("name").loc[row.feature, "index"]
        np.testing.assert_allclose(painted[labels == index], row.importance_norm, rtol=1e-6)
    assert painted[labels == 0].max() == 0
    assert summarize_errors(run_validator(out)) == []


def test_group_reads_timeseries_derivatives_without_extraction(group_run):
    code, bids_dir, deriv, out, root = group_run
    out2 = root / "out2"
    code = main([str(bids_dir), str(out2), "group", "-d", f"timeseries={out}",
                 "-w", str(root / "work2"), *FAST, "--random-seed", "3", "--ig-steps", "auto",
                 "--n-models", "auto", "--max-models", "4", "--confounds", "none"])
    assert code == 0
    assert not list(out2.glob("sub-*/func/*_timeseries.tsv"))  # nothing extracted again
    maps = sorted(out2.glob("sub-*/func/*_desc-ig_attribution.tsv"))
    assert len(maps) == 8
    meta = json.loads(maps[0].with_suffix(".json").read_text())
    assert meta["Sources"][0].startswith("bids:timeseries:sub-01/func/")
    # --ig-steps auto: the fold's converged count in each sidecar, the trials in a table
    convergence = pd.read_csv(out2 / "group" / "desc-igConvergence_metrics.tsv", sep="\t")
    chosen = convergence[convergence["chosen"]].set_index("fold")["n_steps"]
    assert meta["MethodParameters"]["n_steps"] == chosen[meta["Fold"]]
    assert meta["MethodParameters"]["completeness_tolerance"] == 0.01
    citation = (out2 / "logs" / "CITATION.md").read_text()
    assert "chosen per fold as the smallest of 4, 8, 16" in citation
    assert "`--ig-steps auto`" in citation
    # --n-models auto: the size chosen on fold 1 is the ensemble of every fold
    sizes = pd.read_csv(out2 / "group" / "desc-ensembleSize_metrics.tsv", sep="\t")
    n_models = int(sizes.loc[sizes["chosen"], "n_models"].iloc[0])
    assert n_models in (2, 4) and len(meta["ModelSeeds"]) == n_models
    assert f"an ensemble of {n_models} models" in citation
    assert "chosen on the first fold by doubling" in citation and "`--n-models auto`" in citation
    # provenance from the data: the timecourses were cleaned with the 'simple' strategy (their
    # sidecars); --confounds none on this command line changed nothing and is not reported
    assert "confound strategy 'simple'" in citation and "--confounds" not in citation
    config = tomllib.loads((out2 / "logs" / "config.toml").read_text())
    assert config["workflow"]["confounds"] == "simple"
    report = (out2 / "group.html").read_text()
    assert "<th>confounds</th><td>simple</td>" in report  # its configuration section
    assert "IG convergence" in report and "Every step count tried" in report
    assert "Ensemble size" in report


def test_timecourses_cleaned_differently_are_refused(group_run, tmp_path, capsys):
    code, bids_dir, deriv, out, root = group_run
    mixed = tmp_path / "mixed"
    shutil.copytree(out, mixed, ignore=shutil.ignore_patterns("group", "logs", "*.html",
                                                              "*_attribution.*"))
    sidecar = sorted(mixed.glob("sub-*/func/*_timeseries.json"))[0]
    meta = json.loads(sidecar.read_text())
    sidecar.write_text(json.dumps({**meta, "ConfoundStrategy": "none"}))
    code = main([str(bids_dir), str(tmp_path / "out"), "group", "-d", f"timeseries={mixed}",
                 "-w", str(tmp_path / "work"), *FAST, "--boilerplate-only"])
    assert code == 1
    err = capsys.readouterr().err
    assert "cleaned with different settings" in err and "'none' in sub-01_" in err
    assert "Run the participant level again" in err
    assert not (tmp_path / "out").exists()


def test_group_unknown_target_is_a_clear_error(group_run, capsys):
    code, bids_dir, deriv, out, root = group_run
    code = main([str(bids_dir), str(root / "out3"), "group", "-d", f"fmriprep={deriv}",
                 "--target", "diagnosis", *FAST])
    assert code == 1
    err = capsys.readouterr().err
    assert "--target 'diagnosis' is not a column" in err and "group" in err
    assert not (root / "out3").exists()


@pytest.mark.parametrize("option, phrase", [
    (["--attribution", "ig", "weight"], "does not support the 'region-cnn' model"),
    (["--model", "cnn3d"], "--model cnn3d classifies 3D volumes"),
    (["--reports-only"], "holds no xaibids outputs"),
    (["--feature-groups", "/nonexistent/groups.tsv"], "--feature-groups file"),
    (["--batched-training", "on", "--model", "lstm-attn"], "Batched training supports"),
    (["--ig-steps", "adaptive", "--ig-rule", "riemann_trapezoid"], "drop --ig-rule riemann_trapezoid"),
])
def test_impossible_group_choices_stop_before_work(group_run, capsys, option, phrase):
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
    # every non-default parameter of the run is named as its option
    for option in ("`--atlas aal`", "`--n-folds 2`", "`--n-models 2`", "`--epochs 2`"):
        assert option in text
    bib = (out / "logs" / "CITATION.bib").read_text()
    for key in ("nipype1", "pybids", "nilearn", "pytorch", "sundararajan2017", "captum",
                "lewis2023", "strock2025", "thibeausutre2023", "benjamini1995", "clauset2004"):
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


def test_group_writes_statistics_reliability_and_reports(group_run):
    code, bids_dir, deriv, out, root = group_run
    group = out / "group"
    for name in ("desc-ig_importance.tsv", "desc-igCosaliency_edges.tsv", "desc-sFNC_edges.tsv",
                 "desc-modularity_metrics.tsv", "desc-reliability_metrics.tsv",
                 "desc-randomization_metrics.tsv"):
        assert (group / name).is_file(), name
    importance = pd.read_csv(group / "desc-ig_importance.tsv", sep="\t")
    assert {"cohens_d_ci_low", "cohens_d_ci_high"} <= set(importance.columns)
    metrics = pd.read_csv(group / "desc-reliability_metrics.tsv", sep="\t")
    assert {"seed_correlation", "split_half_correlation", "infidelity"} <= set(metrics["metric"])
    assert (out / "group.html").is_file()
    assert len(list(out.glob("sub-*.html"))) == 8


def test_reports_only_rerenders_from_the_outputs(group_run):
    code, bids_dir, deriv, out, root = group_run
    report = out / "group.html"
    report.unlink()
    code = main([str(bids_dir), str(out), "group", "--reports-only"])
    assert code == 0
    assert report.is_file()
    text = report.read_text()
    assert "<svg" in text or "data:image" in text


def test_real_run_reports_render_in_headless_chromium(group_run, tmp_path):
    """The reports of this real (small) run, not only hand-made outputs, load in a browser with
    every figure and no console error (tests/test_reports.py has the checks' details)."""
    from tests.test_reports import _open_in_chromium

    code, bids_dir, deriv, out, root = group_run
    html = (out / "group.html").read_text()
    for section in ('id="performance"', 'id="importance-ig"', 'id="connectivity"',
                    'id="reliability"', 'id="methods"'):
        assert section in html, section
    results = _open_in_chromium([out / "group.html", out / "sub-01.html"], tmp_path)
    for name, res in results.items():
        assert not res["errors"], f"{name}: console errors {res['errors']}"
        assert len(res["images"]) >= 2, name
        broken = [alt for alt, complete, width in res["images"] if not (complete and width > 0)]
        assert not broken, f"{name}: broken images {broken}"
        assert all(u.startswith(("file:", "data:")) for u in res["requests"]), res["requests"]


def test_atlas_networks_become_domains(group_run, tmp_path):
    """An atlas labels TSV with a ``network`` column gives the group statistics their domains."""
    code, bids_dir, deriv, out, root = group_run
    atlas = load_atlas("aal")
    image = tmp_path / "atlas-AAL_dseg.nii.gz"
    atlas.img.to_filename(image)
    networks = np.where(np.arange(len(atlas.labels)) % 2 == 0, "even", "odd")
    atlas.labels.assign(network=networks).to_csv(image.with_name("atlas-AAL_dseg.tsv"),
                                                 sep="\t", index=False)
    out7 = root / "out7"
    code = main([str(bids_dir), str(out7), "group", "-d", f"timeseries={out}",
                 "-w", str(root / "work7"), *FAST, "--atlas", str(image),
                 "--reliability-samples", "2", "--n-bootstrap", "20"])
    assert code == 0
    table = pd.read_csv(out7 / "group" / "desc-ig_domains.tsv", sep="\t")
    assert sorted(table["group"]) == ["even", "odd"]
    assert table["n_features"].sum() == len(atlas.labels)


def test_several_methods_baselines_and_permutations(group_run):
    code, bids_dir, deriv, out, root = group_run
    out6 = root / "out6"
    code = main([str(bids_dir), str(out6), "group", "-d", f"timeseries={out}",
                 "-w", str(root / "work6"), *FAST, "--attribution", "ig", "deeplift",
                 "inputxgradient", "--baseline", "zero", "mean", "--permutations", "2",
                 "--reliability-samples", "2", "--n-bootstrap", "20"])
    assert code == 0
    for key in ("igZero", "igMean", "deeplift", "inputxgradient"):
        maps = sorted(out6.glob(f"sub-*/func/*_desc-{key}_attribution.tsv"))
        assert len(maps) == 8, key
        assert (out6 / "group" / f"desc-{key}_importance.tsv").is_file()
        assert (out6 / "group" / f"desc-{key}_permutation.tsv").is_file()
    meta = json.loads(next(out6.glob("sub-01/func/*_desc-igMean_attribution.json")).read_text())
    assert meta["MethodParameters"]["Baseline"] == "mean"
    agreement = pd.read_csv(out6 / "group" / "desc-methodAgreement_relmat.tsv", sep="\t")
    assert agreement["method"].tolist() == ["igZero", "igMean", "deeplift", "inputxgradient"]
    assert (out6 / "group" / "desc-baselineAgreement_relmat.tsv").is_file()
    metrics = pd.read_csv(out6 / "group" / "desc-reliability_metrics.tsv", sep="\t")
    assert "permutation_p_value" in set(metrics["metric"])
    text = (out6 / "logs" / "CITATION.md").read_text()
    assert "DeepLIFT (maps `desc-deeplift`)" in text and "`--permutations 2`" in text
    bib = (out6 / "logs" / "CITATION.bib").read_text()
    assert "{shrikumar2017learning," in bib and "{gotsopoulos2018," in bib
    assert "Reliability" in (out6 / "group.html").read_text()
