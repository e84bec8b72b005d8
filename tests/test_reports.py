"""HTML reports (issue #6): figure functions, sections, and pages opened in headless Chromium.

The output folder is synthetic (no training): small TSV/JSON/NIfTI files with the names and
columns xaibids writes, on a toy atlas of a few regions in MNI space.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nibabel as nb
import numpy as np
import pandas as pd
import pytest

from xaibids.reports import build_group_report, build_reports, build_subject_report
from xaibids.reports import collect, figures

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]
CLASSES = ("control", "patient")
FEATURES = ["Frontal Pole", "Insular Cortex", "Precuneous Cortex", "Cingulate Gyrus, posterior",
            "Lateral Occipital Cortex", "Temporal Pole"]
SUBJECTS = ["01", "02", "03", "04"]
METHODS = ["ig", "deeplift"]
N_TIME = 40
SPACE = "MNI152NLin2009cAsym"


def _tsv(path: Path, frame: pd.DataFrame) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, sep="\t", index=False, na_rep="n/a")


def _atlas(shape=(12, 14, 12), voxel=12.0):
    """A toy label image in MNI mm: six slabs of regions (1..6) inside a box."""
    affine = np.diag([voxel, voxel, voxel, 1.0])
    affine[:3, 3] = [-72, -102, -60]
    data = np.zeros(shape, dtype=np.int16)
    data[2:10, 2:12, 2:10] = 1 + (np.arange(2, 12)[None, :, None] - 2) * 6 // 10
    return nb.Nifti1Image(data, affine)


def _square(names, rng, key="node", symmetric=True) -> pd.DataFrame:
    m = rng.normal(size=(len(names), len(names)))
    m = (m + m.T) / 2 if symmetric else m
    np.fill_diagonal(m, 1.0)
    frame = pd.DataFrame(m, columns=names)
    frame.insert(0, key, names)
    return frame


def make_output(root: Path, *, subjects=SUBJECTS, group: bool = True, optional: bool = True,
                external_timeseries: bool = True) -> Path:
    """A small xaibids output folder; ``optional=False`` leaves out the optional group files.

    Only sub-04's ``ig`` map has a NIfTI (brain views are the slow part of a report); sub-04's
    timecourses live in a separate derivatives dataset, reached through its ``Sources`` URI.
    """
    rng = np.random.default_rng(0)
    out = root / "xaibids"
    deriv = root / "timeseries"
    out.mkdir(parents=True)
    (deriv / "sub-04" / "func").mkdir(parents=True)
    json.dump({"Name": "xaibids derivatives", "BIDSVersion": "1.10.0",
               "DatasetType": "derivative",
               "GeneratedBy": [{"Name": "xaibids", "Version": "0.1.0.test"}],
               "DatasetLinks": {"raw": (root / "bids").as_uri(), "ts": deriv.as_uri()}},
              (out / "dataset_description.json").open("w"))
    logs = out / "logs"
    logs.mkdir()
    import tomli_w
    (logs / "config.toml").write_text(tomli_w.dumps({
        "execution": {"bids_dir": str(root / "bids"), "output_dir": str(out),
                      "run_uuid": "20250101-000000_test"},
        "nipype": {"nprocs": 2}, "workflow": {"features": "roi", "atlas": "toy"},
        "learning": {"target": "group", "n_folds": 2, "n_models": 3, "model": "stdnn"},
        "attribution": {"attribution": METHODS, "baseline": ["zero"], "stabilize": "closest"},
        "seeds": {"random_seed": 0},
        "environment": {"python": "3.11", "versions": {"xaibids": "0.1.0.test", "torch": "2.3"}},
    }))
    (logs / "CITATION.md").write_text("Results were generated with *xaibids*.\n")
    (logs / "CITATION.html").write_text(
        "<!DOCTYPE html><html><head><title>m</title></head><body><p>Results included in this "
        "manuscript come from <b>xaibids</b> [1].</p><h2>References</h2><ol><li>Test.</li></ol>"
        "</body></html>")
    atlas_dir = out / "atlases" / "atlas-toy"
    atlas_dir.mkdir(parents=True)
    atlas = _atlas()
    atlas.to_filename(atlas_dir / f"atlas-toy_space-{SPACE}_dseg.nii.gz")
    _tsv(atlas_dir / f"atlas-toy_space-{SPACE}_dseg.tsv",
         pd.DataFrame({"index": range(1, 7), "name": FEATURES}))
    labels = np.asarray(atlas.dataobj)
    for i, sub in enumerate(subjects):
        func = out / f"sub-{sub}" / "func"
        stem = f"sub-{sub}_task-rest_atlas-toy"
        ts = pd.DataFrame(rng.normal(size=(N_TIME, len(FEATURES))), columns=FEATURES)
        ts_dir = deriv / f"sub-{sub}" / "func" if (external_timeseries and sub == "04") else func
        ts_path = ts_dir / f"{stem}_stat-mean_timeseries.tsv"
        _tsv(ts_path, ts)
        source = (f"bids:ts:sub-{sub}/func/{ts_path.name}" if ts_dir != func
                  else f"bids::sub-{sub}/func/{ts_path.name}")
        truth = CLASSES[i % 2]
        pred = CLASSES[(i + (i == 3)) % 2]
        for method in METHODS:
            amap = np.abs(rng.normal(size=(N_TIME, len(FEATURES)))) * np.linspace(0.2, 2, 6)
            amap /= amap.sum()
            _tsv(func / f"{stem}_desc-{method}_attribution.tsv", pd.DataFrame(amap, columns=FEATURES))
            json.dump({"Description": "Out-of-fold attribution.", "Model": "stdnn",
                       "Fold": i % 2, "ModelSeeds": [11, 12, 13], "SelectedModelSeed": 12,
                       "Stabilization": "closest", "Positive": "abs", "Baseline": "zero",
                       "Steps": 50, "Prediction": pred, "Probability": 0.6 + 0.1 * i,
                       "TrueLabel": truth, "Atlas": "toy", "Sources": [source]},
                      (func / f"{stem}_desc-{method}_attribution.json").open("w"))
            if (sub, method) != ("04", "ig"):
                continue
            painted = np.zeros(labels.shape, np.float32)
            for j, v in enumerate(amap.sum(axis=0)):
                painted[labels == j + 1] = v
            nb.Nifti1Image(painted, atlas.affine).to_filename(
                func / f"sub-{sub}_task-rest_atlas-toy_space-{SPACE}_desc-{method}_attribution.nii.gz")
    if not group:
        return out
    g = out / "group"
    g.mkdir()
    _tsv(g / "desc-performance_metrics.tsv", pd.DataFrame({
        "fold": [0, 0, 0, 0, 1, 1, 1, 1], "model": [11, 12, 13, "ensemble"] * 2,
        "n_models": [1, 1, 1, 3] * 2, "accuracy": rng.uniform(0.5, 1, 8),
        "balanced_accuracy": rng.uniform(0.5, 1, 8), "loss": rng.uniform(0.3, 0.7, 8)}))
    for method in METHODS:
        imp = rng.uniform(0, 1, len(FEATURES))
        d = rng.normal(size=len(FEATURES))
        table = pd.DataFrame({"feature": FEATURES, "importance": imp,
                              "importance_norm": imp / imp.max(),
                              "selected": imp / imp.max() >= 0.5, "cohens_d": d})
        if method == "ig":  # the newer columns; deeplift stands for an older output
            table["cohens_d_ci_low"] = d - 0.5
            table["cohens_d_ci_high"] = d + 0.5
            table["group"] = ["frontal", "insula", "DMN", "DMN", "visual", "temporal"]
        for c in CLASSES:
            table[f"mean_{c}"] = rng.uniform(0, 1, len(FEATURES))
        _tsv(g / f"desc-{method}_importance.tsv", table)
    if not optional:
        return out
    _tsv(g / "desc-ig_domains.tsv", pd.DataFrame({
        "group": ["frontal", "insula", "DMN", "visual", "temporal"], "n_features": [1, 1, 2, 1, 1],
        "importance": [0.2, 0.4, 1.0, 0.3, 0.1], "importance_norm": [0.2, 0.4, 1.0, 0.3, 0.1],
        "cohens_d": [0.1, -0.3, 0.8, 0.2, -0.1], "mean_control": [0.1] * 5,
        "mean_patient": [0.2] * 5}))
    for desc in ("igCosaliency", "sFNC"):
        comm = []
        for c in CLASSES:
            _tsv(g / f"desc-{desc}_class-{c}_relmat.tsv", _square(FEATURES, rng))
            comm += [{"feature": f, "class": c, "community": j % 2} for j, f in enumerate(FEATURES)]
        _tsv(g / f"desc-{desc}_communities.tsv", pd.DataFrame(comm))
        pairs = [(a, b) for k, a in enumerate(FEATURES) for b in FEATURES[k + 1:]]
        p = rng.uniform(0, 0.05, len(pairs))
        _tsv(g / f"desc-{desc}_edges.tsv", pd.DataFrame({
            "feature_a": [a for a, _ in pairs], "feature_b": [b for _, b in pairs],
            "mean_control": rng.normal(size=len(pairs)), "mean_patient": rng.normal(size=len(pairs)),
            "t": rng.normal(size=len(pairs)), "p": p, "p_fdr": p * 2, "significant": p * 2 < 0.01}))
    _tsv(g / "desc-modularity_metrics.tsv", pd.DataFrame({
        "measure": ["igCosaliency", "igCosaliency", "sFNC", "sFNC"],
        "class": list(CLASSES) * 2, "modularity": [0.31, 0.12, 0.25, 0.2],
        "n_communities": [2, 2, 3, 2]}))
    _tsv(g / "desc-reliability_metrics.tsv", pd.DataFrame({
        "method": ["ig", "ig", "deeplift", "deeplift"],
        "metric": ["seed_agreement", "max_sensitivity"] * 2, "value": [0.8, 0.1, 0.7, 0.2]}))
    for desc in ("methodAgreement", "methodDice"):
        _tsv(g / f"desc-{desc}_relmat.tsv", pd.DataFrame(
            {"method": METHODS, "ig": [1.0, 0.6], "deeplift": [0.6, 1.0]}))
    _tsv(g / "desc-baselineAgreement_relmat.tsv", pd.DataFrame(
        {"method": ["zero", "mean"], "zero": [1.0, 0.4], "mean": [0.4, 1.0]}))
    _tsv(g / "desc-randomization_metrics.tsv", pd.DataFrame({
        "method": ["ig"] * 3 + ["deeplift"] * 3, "step": [0, 1, 2] * 2,
        "layer": ["none", "fc", "conv2"] * 2, "spearman": [1.0, 0.4, 0.1, 1.0, 0.6, 0.3]}))
    _tsv(g / "desc-ig_permutation.tsv", pd.DataFrame({
        "feature": FEATURES, "null_threshold": [0.1] * 6, "reproducibility": [9, 2, 8, 1, 0, 5],
        "reproducible": [True, False, True, False, False, True]}))
    _tsv(g / "desc-validation_metrics.tsv", pd.DataFrame({
        "metric": ["overlap", "overlap", "wjaccard"], "method": ["ig", "ig", "ig"],
        "subject": ["01", "n/a", "n/a"], "value": [0.5, 0.6, 0.3], "sd": [None, 0.1, 0.05],
        "n": [1, 4, 4]}))
    return out


@pytest.fixture(scope="module")
def output(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("reports")
    out = make_output(root)
    build_reports(out, strict=True)
    return out


# --------------------------------------------------------------------------- figure functions
def _valid(image: figures.Image) -> None:
    assert image.data, "empty figure"
    if image.mime == "image/png":
        assert image.data[:8] == b"\x89PNG\r\n\x1a\n"
    else:
        assert image.mime == "image/svg+xml"
        text = image.data.decode()
        assert "<svg" in text and text.rstrip().endswith("</svg>")
    assert image.data_uri.startswith(f"data:{image.mime};base64,")


def test_figure_functions_return_valid_images():
    rng = np.random.default_rng(1)
    names = [f"roi{i}" for i in range(45)]  # > MAX_TICK_LABELS: ticks are dropped
    amap = pd.DataFrame(np.abs(rng.normal(size=(30, 45))), columns=names)
    ts = pd.DataFrame(rng.normal(size=(30, 45)), columns=names)
    _valid(figures.timeseries_attribution_figure(amap, ts))
    _valid(figures.timeseries_attribution_figure(amap - 0.5))
    _valid(figures.top_features_figure(amap.sum(), k=10))
    perf = pd.DataFrame({"fold": [0, 0, 1, 1], "model": [1, "ensemble", 1, "ensemble"],
                         "balanced_accuracy": [0.6, 0.7, 0.5, 0.8]})
    _valid(figures.performance_figure(perf))
    _valid(figures.confusion_matrix_figure(["a", "b", "a"], ["a", "a", "a"], ["a", "b"]))
    _valid(figures.roc_figure(["a", "b", "a", "b"], [0.1, 0.8, 0.4, 0.6], "b"))
    table = pd.DataFrame({"feature": names, "importance": rng.uniform(size=45),
                          "cohens_d": rng.normal(size=45)})
    _valid(figures.importance_figure(table, k=20, classes=("b", "a")))
    comm = pd.Series(np.arange(45) % 3, index=names)
    mat = pd.DataFrame(rng.normal(size=(45, 45)), index=names, columns=names)
    _valid(figures.matrix_panels_figure([("co-saliency", mat, comm), ("sFNC", mat.abs(), None)]))
    _valid(figures.agreement_matrix_figure(pd.DataFrame([[1, 0.5], [0.5, 1]], index=["x", "y"],
                                                        columns=["x", "y"])))
    _valid(figures.randomization_figure(pd.DataFrame(
        {"method": ["ig"] * 3, "step": [0, 1, 2], "layer": ["a", "b", "c"],
         "spearman": [1, 0.5, 0.1]})))
    _valid(figures.permutation_figure(pd.DataFrame(
        {"feature": names[:5], "reproducibility": [5, 4, 3, 2, 1],
         "reproducible": [True, True, False, False, False]})))
    _valid(figures.modularity_figure(pd.DataFrame(
        {"measure": ["a", "b"], "class": ["x", "x"], "modularity": [0.3, 0.2]})))
    for image in figures.brain_map_figures(_atlas_float()):
        _valid(image)


def _atlas_float():
    img = _atlas()
    return nb.Nifti1Image(np.asarray(img.dataobj, dtype=np.float32), img.affine)


def test_community_order_groups_members():
    names = ["a", "b", "c", "d"]
    order, blocks = figures._community_order(names, pd.Series([1, 0, 1, 1], index=names))
    assert [names[i] for i in order] == ["a", "c", "d", "b"]
    assert blocks == [(0, 3), (3, 1)]


# --------------------------------------------------------------------------- discovery, sections
def test_collect_finds_maps_nifti_and_external_timeseries(output):
    found = {s.label: s for s in collect.find_subject_maps(output)}
    assert sorted(found) == SUBJECTS
    run = found["04"].runs[0]
    assert sorted(run.maps) == sorted(METHODS)
    assert run.maps["ig"].nifti is not None
    assert run.timeseries is not None and run.timeseries.parents[2].name == "timeseries"
    assert collect.find_atlas(output, "toy") is not None


def test_reports_written_with_all_sections(output):
    group = (output / "group.html").read_text()
    for anchor in ("summary", "performance", "importance-ig", "importance-deeplift",
                   "connectivity", "reliability", "validation", "subjects", "methods", "about",
                   "errors"):
        assert f'id="{anchor}"' in group, anchor
    assert "No errors to report!" in group
    assert 'href="sub-01.html"' in group
    assert "manuscript come from" in group and "config" in group.lower()
    sub = (output / "sub-04.html").read_text()
    assert 'id="map-task-rest_atlas-toy-ig"' in sub or 'id="map-task-rest_atlas-toy-ig"'.lower() in sub
    assert "Input timecourses from" in sub and "Brain maps" in sub
    assert "<script" not in group + sub and "http://" not in sub
    assert not list(output.glob(".*.tmp"))


def test_missing_optional_files_leave_sections_out(tmp_path):
    out = make_output(tmp_path, subjects=["01", "02"], optional=False)
    (out / "logs" / "CITATION.html").unlink()
    (out / "logs" / "CITATION.md").unlink()
    shutil.rmtree(out / "atlases")
    paths = build_reports(out, subjects=["sub-01"], strict=True)
    assert [p.name for p in paths] == ["sub-01.html", "group.html"]
    group = (out / "group.html").read_text()
    for absent in ('id="connectivity"', 'id="reliability"', 'id="validation"', 'id="methods"',
                   "Domains", "Permutation reproducibility", "In the brain"):
        assert absent not in group, absent
    assert 'id="importance-ig"' in group and "No errors to report!" in group
    # timeseries gone and no NIfTI: the subject page shows the map alone
    for f in (out / "sub-01" / "func").glob("*_timeseries.tsv"):
        f.unlink()
    for f in (out / "sub-01" / "func").glob("*.nii.gz"):
        f.unlink()
    sub = build_subject_report(out, "01", strict=True).read_text()
    assert "were not found" in sub and "Brain maps" not in sub


def test_broken_section_is_reported_not_fatal(tmp_path):
    out = make_output(tmp_path, subjects=["01"], optional=False)
    shutil.rmtree(out / "atlases")
    (out / "group" / "desc-deeplift_importance.tsv").write_text("garbage\n1\n")
    text = build_group_report(out).read_text()
    assert "could not be rendered" in text and 'id="importance-ig"' in text
    with pytest.raises(Exception):
        build_group_report(out, strict=True)


def test_no_group_folder(tmp_path):
    out = make_output(tmp_path, subjects=["01"], group=False)
    paths = build_reports(out)
    assert {p.name for p in paths} == {"sub-01.html", "group.html"}
    assert "Group report" not in (out / "sub-01.html").read_text().split("<main>")[0]


# --------------------------------------------------------------------------- in a browser
def _open_in_chromium(pages: list[Path], shots: Path) -> dict:
    if not CHROMIUM.exists():
        pytest.skip("/usr/bin/chromium is not installed; the browser check needs it")
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="the 'playwright' package (Python driver) is not installed")
    results = {}
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 900},
                                          offline=True)
            for path in pages:
                page = context.new_page()
                errors, requests = [], []
                page.on("console", lambda m, e=errors: m.type == "error" and e.append(m.text))
                page.on("pageerror", lambda exc, e=errors: e.append(str(exc)))
                page.on("request", lambda r, q=requests: q.append(r.url))
                page.goto(path.as_uri(), wait_until="load")
                images = page.evaluate(
                    "Array.from(document.images).map(i => [i.alt, i.complete, i.naturalWidth])")
                svgs = page.evaluate(
                    "Array.from(document.querySelectorAll('svg')).map("
                    "s => s.getBoundingClientRect().width)")
                shot = shots / f"{path.stem}.png"
                page.screenshot(path=str(shot), full_page=True)
                results[path.name] = {"errors": errors, "images": images, "svgs": svgs,
                                      "shot": shot, "requests": requests}
                page.close()
        finally:
            browser.close()
    return results


def test_pages_render_in_headless_chromium(output, tmp_path):
    pages = [output / "group.html", output / "sub-04.html"]
    results = _open_in_chromium(pages, tmp_path)
    for name, res in results.items():
        assert not res["errors"], f"{name}: console errors {res['errors']}"
        assert len(res["images"]) >= 3, name
        broken = [alt for alt, complete, width in res["images"] if not (complete and width > 0)]
        assert not broken, f"{name}: broken images {broken}"
        assert all(w > 0 for w in res["svgs"]), name
        assert all(u.startswith(("file:", "data:")) for u in res["requests"]), res["requests"]
        assert res["shot"].stat().st_size > 50_000, name
