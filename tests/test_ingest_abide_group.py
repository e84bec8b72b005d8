"""Real ABIDE PCP files end to end: ingest with the CC200 image, then ``xaibids … group`` painting
region importances into that atlas (a small subset and tiny training: plumbing, not accuracy)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nibabel as nb
import numpy as np
import pandas as pd
import pytest

from xaibids.cli.run import main
from xaibids.features.atlases import load_atlas
from xaibids.ingest.abide import ingest_abide_pcp
from xaibids.simulate.bidsio import validator_available

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
ABIDE = SHARED / "abide-pcp-cc200"
ATLASES = SHARED / "atlases"
N_PER_SITE = 12

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (ABIDE / "rois_cc200").is_dir()
                       or not (ATLASES / "CPAC200_space-MNI152NLin6_res-2x2x2.nii.gz").exists(),
                       reason="../shared/data (ABIDE PCP files and the CC200 atlas) not available"),
]


@pytest.fixture(scope="module")
def abide_group_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("abide")
    rois = root / "rois"
    rois.mkdir()
    pheno = pd.read_csv(ABIDE / "Phenotypic_V1_0b_preprocessed1.csv").set_index("SUB_ID")
    for site in ("NYU", "UM_1"):  # per site, the first N_PER_SITE / 2 files of each diagnosis
        files = sorted((ABIDE / "rois_cc200").glob(f"{site}_00*_rois_cc200.1D"))
        for dx in (1, 2):
            picked = [f for f in files if pheno.loc[int(f.name.split("_")[-3]), "DX_GROUP"] == dx]
            for path in picked[:N_PER_SITE // 2]:
                shutil.copy(path, rois)
    raw = root / "raw"
    ingest_abide_pcp(rois, ABIDE / "Phenotypic_V1_0b_preprocessed1.csv", raw,
                     atlas_image=ATLASES)
    deriv = raw / "derivatives" / "abide-pcp-cc200"
    out = root / "out"
    argv = [str(raw), str(out), "group", "-d", f"abide={deriv}", "--target", "diagnosis",
            "--cv-group", "site", "--atlas", str(deriv / "atlases"), "--model", "stdnn",
            "--n-folds", "2", "--n-models", "2", "--epochs", "2", "--ig-steps", "8",
            "--omp-nthreads", "1", "-w", str(root / "work")]
    if not validator_available():
        argv.append("--skip-bids-validation")
    code = main(argv)
    return code, raw, deriv, out


def test_abide_group_paints_cc200(abide_group_run):
    code, raw, deriv, out = abide_group_run
    assert code == 0
    parts = pd.read_csv(raw / "participants.tsv", sep="\t").set_index("participant_id")
    assert len(parts) == 2 * N_PER_SITE and set(parts["site"]) == {"NYU", "UM_1"}
    assert (parts.groupby(["site", "diagnosis"]).size() == N_PER_SITE // 2).all()

    perf = pd.read_csv(out / "group" / "desc-performance_metrics.tsv", sep="\t")
    ens = perf[perf["model"].astype(str) == "ensemble"]
    assert list(ens["fold"].astype(str)) == ["1", "2", "all"]  # the folds, then the verdict
    assert ens["balanced_accuracy"].between(0, 1).all()

    table = pd.read_csv(out / "group" / "desc-ig_importance.tsv", sep="\t")
    assert len(table) == 200
    top = table.sort_values("importance_norm", ascending=False).head(10)
    assert top["feature"].str.fullmatch(r"CC200_([1-9]\d?|1\d\d|200)").all()
    assert top["importance_norm"].iloc[0] == pytest.approx(1.0)

    atlas = load_atlas(deriv / "atlases")
    assert (atlas.name, atlas.space) == ("CC200", "MNI152NLin6Asym")
    cc200 = nb.load(ATLASES / "CPAC200_space-MNI152NLin6_res-2x2x2.nii.gz")
    labels = np.asarray(cc200.dataobj).astype(int)
    first_voxel = {k: tuple(np.argwhere(labels == k)[0]) for k in range(1, 201)}
    maps = sorted(out.glob("sub-*/func/*_space-MNI152NLin6Asym_atlas-CC200_desc-ig_attribution"
                           ".nii.gz"))
    assert len(maps) == 2 * N_PER_SITE
    sums, folds = [], {}
    for nii_path in maps:
        nii = nb.load(nii_path)
        np.testing.assert_allclose(nii.affine, cc200.affine)
        assert nii.shape == cc200.shape and int(nii.header["sform_code"]) == 4
        tsv = Path(str(nii_path).replace("_space-MNI152NLin6Asym", "").replace(".nii.gz", ".tsv"))
        frame = pd.read_csv(tsv, sep="\t", na_values="n/a", keep_default_na=False)
        assert list(frame.columns) == atlas.region_names
        data = np.asarray(nii.dataobj)
        painted = np.array([data[first_voxel[k]] for k in range(1, 201)])
        # the image holds the TSV's time-summed values (each subject its own map)
        np.testing.assert_allclose(painted, frame.sum().to_numpy(), rtol=1e-4, atol=1e-7)
        sums.append(painted)
        meta = json.loads(tsv.with_suffix(".json").read_text())
        assert meta["Atlas"] == "CC200"
        subject = tsv.name.split("_")[0]
        folds.setdefault(meta["Fold"], set()).add(parts.loc[subject, "site"])
    assert not np.allclose(sums[0], sums[-1])
    # two sites, two folds, --cv-group site: leave one site out
    assert sorted(map(sorted, folds.values())) == [["NYU"], ["UM_1"]]

    if validator_available():
        from xaibids.inputs.validation import run_validator, summarize_errors

        assert summarize_errors(run_validator(out)) == []
