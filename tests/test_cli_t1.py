"""``--features t1`` end to end: participant and group levels on simulated and real T1w."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nb
import numpy as np
import pandas as pd
import pytest

from xaibids.features.t1 import TEMPLATE_SPACE, grid_mask, template_grid
from xaibids.simulate import simulate
from xaibids.simulate.bidsio import validate, validator_available

SHARED_T1 = Path(__file__).resolve().parents[2] / "shared" / "data" / "ds002748-t1w"
ATROPHY = ("Left_Precuneous_Cortex", "Right_Precuneous_Cortex")
#: A small configuration: 4 mm grid (Grad-CAM's last layer then has 16 mm cells), 2 folds x 2
#: models of the 3D CNN trained for all epochs (a validation set of 4 subjects stops at random);
#: the reliability checks on one test subject of fold 1 (they took 107 s for two, a fifth of this
#: module's time; tests/test_attribution_volume.py tests them on cnn3d maps).
GROUP = ["--features", "t1", "--t1-resolution", "4", "--model", "cnn3d", "--target", "group",
         "--n-folds", "2", "--n-models", "2", "--epochs", "60", "--val-fraction", "0",
         "--random-seed", "1",
         "--reliability-samples", "1", "--n-bootstrap", "50", "--nprocs", "2",
         "--omp-nthreads", "1", "--skip-bids-validation"]


@pytest.fixture(scope="module")
def atrophy_run(tmp_path_factory):
    """t1-atrophy (template space, fMRIPrep-style) through the group level with IG and
    Grad-CAM; the participant step runs inside it."""
    from xaibids.cli.run import main

    root = tmp_path_factory.mktemp("t1cli")
    sim = root / "sim"
    simulate("t1-atrophy", sim, n_subjects=40, seed=5, voxel_size=4, severity=0.4,
             space="template", regions=",".join(ATROPHY))
    out = root / "out"
    code = main([str(sim), str(out), "group", "-d", f"fmriprep={sim / 'derivatives/fmriprep'}",
                 "-w", str(root / "work"), *GROUP, "--attribution", "ig", "gradcam"])
    assert code == 0
    return sim, out


def test_atrophied_regions_ranked_first(atrophy_run):
    """Stabilized IG maps put the atrophied regions at the top, Grad-CAM near it (issue 7).

    IG works at the grid's resolution and finds both hemispheres' regions before any other.
    Grad-CAM's last layer has 16 mm cells here, coarser than the precuneus: its map spreads over
    the neighbouring parahippocampal and posterior cingulate regions, whose shares of the group
    map came within 1 % of the left precuneus's (0.1156 against 0.1147, first and second, on
    the development machine), so which of them is first is not something the method gives
    reliably; a precuneus among its first three is.
    """
    _, out = atrophy_run
    ranking = pd.read_csv(out / "group" / "desc-ig_regions.tsv", sep="\t")
    assert set(ranking["region"].head(2)) == set(ATROPHY), ranking.head(5)
    importance = pd.read_csv(out / "group" / "desc-ig_importance.tsv", sep="\t")
    top = importance.sort_values("importance_norm", ascending=False)["feature"]
    assert top.iloc[0] in ATROPHY, top.head()
    ranking = pd.read_csv(out / "group" / "desc-gradcam_regions.tsv", sep="\t")
    assert set(ranking["region"].head(3)) & set(ATROPHY), ranking.head(5)
    importance = pd.read_csv(out / "group" / "desc-gradcam_importance.tsv", sep="\t")
    top = importance.sort_values("importance_norm", ascending=False)["feature"]
    assert set(top.head(3)) & set(ATROPHY), top.head()


def test_maps_on_the_template_grid_inside_the_brain(atrophy_run):
    """Every output NIfTI has the template grid's affine (never identity) and maps are 0
    outside the template brain mask."""
    _, out = atrophy_run
    shape, affine = template_grid(4.0)
    mask = np.asarray(grid_mask(4.0).dataobj) > 0
    images = sorted(out.glob("sub-*/anat/*.nii.gz")) + sorted(out.glob("group/*.nii.gz"))
    assert len(images) >= 40 * 3 + 2
    for path in images:
        img = nb.load(path)
        assert img.shape == shape, path
        np.testing.assert_allclose(img.affine, affine, atol=1e-5, err_msg=str(path))
        assert not np.allclose(img.affine, np.eye(4))
        if "attribution" in path.name or "importance" in path.name:
            data = np.asarray(img.dataobj)
            assert np.all(data[~mask] == 0), path
            assert data[mask].max() > 0, path
    t1 = sorted(out.glob("sub-*/anat/*_space-*_res-4_desc-preproc_T1w.nii.gz"))
    assert len(t1) == 40
    meta = json.loads(t1[0].with_name(t1[0].name.replace(".nii.gz", ".json")).read_text())
    assert meta["Sources"][0].startswith("bids:")


def test_reports_and_validity(atrophy_run):
    sim, out = atrophy_run
    html = (out / "group.html").read_text()
    assert "Voxel map: ig" in html and "Voxel map: gradcam" in html
    sub = sorted(out.glob("sub-*.html"))
    assert len(sub) == 40
    text = sub[0].read_text()
    assert "Registration to the template" in text and "<svg" in text
    perf = pd.read_csv(out / "group" / "desc-performance_metrics.tsv", sep="\t")
    assert perf.loc[perf["fold"].astype(str) == "all", "balanced_accuracy"].item() > 0.8
    citation = (out / "logs" / "CITATION.md").read_text()
    assert "3D convolutional" in citation and "voxels" in citation
    if validator_available():
        assert validate(out)["errors"] == []


def test_validate_scores_the_voxel_maps(atrophy_run):
    """xaibids-validate scores the voxel maps against the simulated atrophy mask (Gotsopoulos et al. 2018's
    voxel accuracy/FDR/FOR, Lewis et al. 2023's metrics) and the region table against its regions."""
    from xaibids.cli.validate import main as validate_main

    sim, out = atrophy_run
    assert validate_main([str(out), str(sim)]) == 0
    table = pd.read_csv(out / "group" / "desc-validation_metrics.tsv", sep="\t")
    group = table[table["subject"].isna()].set_index(["method", "metric"])
    for method in ("ig", "gradcam"):
        for metric in ("feature_accuracy", "feature_fdr", "overlap", "weighted_jaccard",
                       "group_roi_recall", "importance_r_precision"):
            value = group.loc[(method, metric), "value"]
            assert 0 <= value <= 1, (method, metric, value)
        assert group.loc[(method, "feature_accuracy"), "n"] == 40
    # IG ranks both atrophied regions first (test_atrophied_regions_ranked_first)
    assert group.loc[("ig", "importance_r_precision"), "value"] == 1.0
    assert "Validation against ground truth" in (out / "group.html").read_text()


def test_t1_needs_a_volume_model(run_cli, tmp_path):
    sim = tmp_path / "sim"
    simulate("t1-atrophy", sim, n_subjects=4, seed=1, voxel_size=8, space="template")
    code, err = run_cli([sim, tmp_path / "out", "group", "--features", "t1", "--model", "stdnn",
                         "-d", f"fmriprep={sim / 'derivatives/fmriprep'}",
                         "--skip-bids-validation"])
    assert code == 1 and "--model cnn3d" in err
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
@pytest.mark.skipif(not SHARED_T1.is_dir(), reason="../shared/data/ds002748-t1w not present")
def test_real_raw_t1w_end_to_end(tmp_path):
    """../shared/data/ds002748-t1w: 16 real raw T1w registered to the template, then the
    group level with --target group (participants.tsv fails the validator upstream:
    gender m/f vs levels M/F, hence --skip-bids-validation)."""
    from xaibids.cli.run import main

    out = tmp_path / "out"
    code = main([str(SHARED_T1), str(out), "group", "-w", str(tmp_path / "work"),
                 "--features", "t1", "--model", "cnn3d", "--target", "group", "--n-folds", "2",
                 "--n-models", "2", "--epochs", "20", "--nprocs", "2", "--omp-nthreads", "1",
                 "--skip-bids-validation", "--attribution", "ig", "gradcam",
                 "--reliability-samples", "2"])
    assert code == 0
    t1 = sorted(out.glob(f"sub-*/anat/*_space-{TEMPLATE_SPACE}_res-3_desc-preproc_T1w.nii.gz"))
    assert len(t1) == 16
    from nilearn.image import resample_img

    from xaibids.features.t1 import load_template

    shape, affine = template_grid(3.0)
    mask = np.asarray(grid_mask(3.0).dataobj) > 0
    template = np.asarray(resample_img(load_template()[0], target_affine=affine,
                                       target_shape=shape, force_resample=True,
                                       copy_header=True).dataobj)[mask]
    for path in t1:
        data = np.asarray(nb.load(path).dataobj)
        assert np.all(data[~mask] == 0)
        # measured 0.50-0.61 (affine only; a failed registration gives about 0)
        assert np.corrcoef(template, data[mask])[0, 1] > 0.4, path
    for path in out.glob("sub-*/anat/*_attribution.nii.gz"):
        assert np.all(np.asarray(nb.load(path).dataobj)[~mask] == 0)
    assert (out / "group.html").exists()
    assert len(list(out.glob("sub-*/figures/*_desc-registration_T1w.svg"))) == 16
