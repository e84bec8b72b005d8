"""xaibids-ingest abide-pcp: ABIDE PCP ROI files + phenotypic CSV → BIDS."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nibabel as nb
import numpy as np
import pandas as pd
import pytest

from xaibids.cli.ingest import main
from xaibids.features.atlases import load_atlas
from xaibids.fileio import read_timeseries_tsv
from xaibids.ingest import IngestError
from xaibids.ingest.abide import ingest_abide_pcp, read_roi_file
from xaibids.simulate.bidsio import tree_digest, validate, validator_available

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
ABIDE = SHARED / "abide-pcp-cc200"
CC200 = SHARED / "atlases" / "CPAC200_space-MNI152NLin6_res-2x2x2.nii.gz"
needs_validator = pytest.mark.skipif(not validator_available(),
                                     reason="bids-validator-deno not installed")
needs_abide = pytest.mark.skipif(not (ABIDE / "rois_cc200").is_dir(),
                                 reason="../shared/data/abide-pcp-cc200 not available")
DERIV = "derivatives/abide-pcp-cc200"


def _write_1d(path: Path, data: np.ndarray) -> None:
    header = "\t".join(f"#{k + 1}" for k in range(data.shape[1]))
    rows = "\n".join("\t".join(f"{v:.6f}" for v in row) for row in data)
    path.write_text(header + "\n" + rows + "\n")


@pytest.fixture
def fake_abide(tmp_path):
    """Four PCP-like files (5 regions, 20 volumes; one flat region) and a phenotypic CSV."""
    rois = tmp_path / "rois"
    rois.mkdir()
    rng = np.random.default_rng(0)
    ids = {"NYU": [50952, 50953], "UM_1": [50272, 50273]}
    for site, subs in ids.items():
        for sub in subs:
            data = rng.normal(0, 10, (20, 5))
            if sub == 50953:
                data[:, 2] = 0.0
            _write_1d(rois / f"{site}_{sub:07d}_rois_cc200.1D", data)
    (rois / "NYU_0050952_rois_cc400.1D").write_text("#1\n1\n")  # other atlas: ignored
    pheno = pd.DataFrame({
        "SUB_ID": [50952, 50953, 50272, 50273, 59999],
        "SITE_ID": ["NYU", "NYU", "UM_1", "UM_1", "NYU"],
        "DX_GROUP": [1, 2, 2, 1, 1],
        "SEX": [1, 2, 1, 1, 2],
        "AGE_AT_SCAN": [8.5, -9999, 12.25, 20.0, 30.0],
        "FIQ": [100, 110, 120, 130, 140],
    })
    csv = tmp_path / "pheno.csv"
    pheno.to_csv(csv)
    return rois, csv


def test_ingest_fake_dataset(fake_abide, tmp_path):
    rois, csv = fake_abide
    out = tmp_path / "bids"
    report = ingest_abide_pcp(rois, csv, out)
    assert report.n_subjects == 4 and report.flat_regions == {"sub-0050953": ["CC200_3"]}
    parts = pd.read_csv(out / "participants.tsv", sep="\t", na_values="n/a",
                        keep_default_na=False)
    assert list(parts.columns) == ["participant_id", "diagnosis", "sex", "site", "age"]
    row = parts.set_index("participant_id").loc["sub-0050953"]
    assert (row["diagnosis"], row["sex"], row["site"]) == ("control", "F", "NYU")
    assert np.isnan(row["age"])  # -9999 is missing
    levels = json.loads((out / "participants.json").read_text())
    assert set(levels["diagnosis"]["Levels"]) == {"ASD", "control"}
    ts = out / DERIV / "sub-0050953/func/sub-0050953_task-rest_atlas-CC200_stat-mean_timeseries"
    frame = read_timeseries_tsv(ts.with_suffix(".tsv"))
    assert list(frame.columns) == [f"CC200_{k}" for k in range(1, 6)]
    assert frame["CC200_3"].isna().all() and frame.drop(columns="CC200_3").notna().all().all()
    raw, _ = read_roi_file(rois / "NYU_0050953_rois_cc200.1D")
    assert np.allclose(frame.drop(columns="CC200_3"), np.delete(raw, 2, axis=1), rtol=1e-7)
    side = json.loads(ts.with_suffix(".json").read_text())
    assert side["RepetitionTime"] == 2.0 and side["Atlas"] == "CC200"
    assert side["Sources"] == ["NYU_0050953_rois_cc200.1D"] and side["FlatRegions"] == ["CC200_3"]
    labels = pd.read_csv(out / DERIV / "atlases/atlas-CC200/atlas-CC200_dseg.tsv", sep="\t")
    assert list(labels["index"]) == [1, 2, 3, 4, 5]
    assert side["AtlasLabels"] == "atlases/atlas-CC200/atlas-CC200_dseg.tsv"
    assert "AtlasImage" not in side
    desc = json.loads((out / DERIV / "dataset_description.json").read_text())
    assert desc["DatasetType"] == "derivative"
    assert desc["GeneratedBy"][0]["Name"] == "xaibids-ingest"
    again = tmp_path / "again"
    ingest_abide_pcp(rois, csv, again)
    assert tree_digest(again) == tree_digest(out)


@needs_validator
def test_ingest_fake_dataset_is_valid_bids(fake_abide, tmp_path):
    rois, csv = fake_abide
    ingest_abide_pcp(rois, csv, tmp_path / "bids")
    found = validate(tmp_path / "bids")
    assert found["errors"] == [], found["errors"]


def _cli_error(capsys, argv, out: Path) -> str:
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("xaibids-ingest: error: ") and err.count("\n") == 1
    assert not out.exists()
    assert not any(p.name.startswith(f".{out.name}") for p in out.parent.iterdir())
    return err


def test_ingest_bad_inputs(fake_abide, tmp_path, capsys):
    rois, csv = fake_abide
    out = tmp_path / "bids"
    err = _cli_error(capsys, ["abide-pcp", str(tmp_path / "nope"), str(csv), str(out)], out)
    assert "nope" in err and "ROIS_DIR" in err
    err = _cli_error(capsys, ["abide-pcp", str(rois), str(tmp_path / "none.csv"), str(out)], out)
    assert "none.csv" in err
    no_id = tmp_path / "noid.csv"
    pd.read_csv(csv).drop(columns="SUB_ID").to_csv(no_id)
    err = _cli_error(capsys, ["abide-pcp", str(rois), str(no_id), str(out)], out)
    assert "noid.csv" in err and "SUB_ID" in err
    other = tmp_path / "other.csv"
    pd.read_csv(csv).assign(SUB_ID=lambda t: t["SUB_ID"] + 1000000).to_csv(other)
    err = _cli_error(capsys, ["abide-pcp", str(rois), str(other), str(out)], out)
    assert "other.csv" in err and "matches" in err
    err = _cli_error(capsys, ["abide-pcp", str(rois), str(csv), str(out), "--atlas", "aal"], out)
    assert "_rois_aal.1D" in err
    _write_1d(rois / "NYU_0050954_rois_cc200.1D", np.ones((20, 4)))
    pd.read_csv(csv, index_col=0).assign(SUB_ID=[50952, 50953, 50272, 50273, 50954]).to_csv(
        tmp_path / "more.csv")
    err = _cli_error(capsys, ["abide-pcp", str(rois), str(tmp_path / "more.csv"), str(out)], out)
    assert "NYU_0050954_rois_cc200.1D" in err


def test_identical_timecourses_are_reported(fake_abide, tmp_path, caplog):
    rois, csv = fake_abide
    shutil.copy(rois / "UM_1_0050272_rois_cc200.1D", rois / "UM_1_0050274_rois_cc200.1D")
    pd.read_csv(csv, index_col=0).assign(SUB_ID=[50952, 50953, 50272, 50273, 50274]).to_csv(
        tmp_path / "more.csv")
    report = ingest_abide_pcp(rois, tmp_path / "more.csv", tmp_path / "bids")
    assert report.duplicates == [("sub-0050272", "sub-0050274")]
    assert "sub-0050274 = sub-0050272" in caplog.text
    assert "`sub-0050274` and `sub-0050272`" in (tmp_path / "bids" / "README").read_text()


def test_ingest_refuses_existing_output(fake_abide, tmp_path):
    rois, csv = fake_abide
    out = tmp_path / "bids"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    with pytest.raises(FileExistsError, match="--overwrite"):
        ingest_abide_pcp(rois, csv, out)
    assert (out / "keep.txt").exists()
    ingest_abide_pcp(rois, csv, out, overwrite=True)
    assert not (out / "keep.txt").exists() and (out / "participants.tsv").exists()


def test_unknown_site_needs_repetition_time(fake_abide, tmp_path):
    rois, csv = fake_abide
    odd = tmp_path / "odd.csv"
    pd.read_csv(csv, index_col=0).assign(SITE_ID="MARS").to_csv(odd)
    with pytest.raises(IngestError, match="--repetition-time"):
        ingest_abide_pcp(rois, odd, tmp_path / "o1")
    ingest_abide_pcp(rois, odd, tmp_path / "o2", repetition_time=1.5)
    side = next((tmp_path / "o2" / DERIV).rglob("*_timeseries.json"))
    assert json.loads(side.read_text())["RepetitionTime"] == 1.5


@needs_abide
@needs_validator
def test_ingest_real_abide_files(tmp_path, capsys):
    """A few real ABIDE PCP files: rows match the phenotypic CSV, values match the .1D files."""
    picked = ["NYU_0051062", "NYU_0050952", "NYU_0051118", "UM_1_0050272", "UM_1_0050379"]
    rois = tmp_path / "rois"
    rois.mkdir()
    for stem in picked:
        shutil.copy(ABIDE / "rois_cc200" / f"{stem}_rois_cc200.1D", rois)
    csv = ABIDE / "Phenotypic_V1_0b_preprocessed1.csv"
    out = tmp_path / "bids"
    argv = ["abide-pcp", str(rois), str(csv), str(out), "--atlas", "cc200", "--validate"]
    if CC200.exists():
        argv += ["--atlas-image", str(CC200)]
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert "0 errors" in captured.out and "2 flat region" in captured.out
    assert "0 participant(s) with data identical" in captured.out
    pheno = pd.read_csv(csv).set_index("SUB_ID")
    parts = pd.read_csv(out / "participants.tsv", sep="\t").set_index("participant_id")
    assert len(parts) == len(picked)
    for stem in picked:
        sub_id = int(stem.rsplit("_", 1)[1])
        row, ref = parts.loc[f"sub-{sub_id:07d}"], pheno.loc[sub_id]
        assert row["diagnosis"] == {1: "ASD", 2: "control"}[ref["DX_GROUP"]]
        assert row["sex"] == {1: "M", 2: "F"}[ref["SEX"]]
        assert row["site"] == ref["SITE_ID"] and row["age"] == pytest.approx(ref["AGE_AT_SCAN"])
        ts = read_timeseries_tsv(next((out / DERIV / f"sub-{sub_id:07d}").rglob("*.tsv")))
        raw, regions = read_roi_file(rois / f"{stem}_rois_cc200.1D")
        assert regions == list(range(1, 201)) and ts.shape == raw.shape
        ok = ts.notna().all().to_numpy()
        assert np.allclose(ts.to_numpy()[:, ok], raw[:, ok], rtol=1e-7, atol=1e-9)
        assert (raw[:, ~ok].std(axis=0) == 0).all()
    flat = json.loads(next((out / DERIV / "sub-0051062").rglob("*.json")).read_text())
    assert flat["FlatRegions"] == ["CC200_43"]
    if CC200.exists():
        stem = out / DERIV / "atlases/atlas-CC200/atlas-CC200_space-MNI152NLin6Asym_res-2_dseg"
        labels = pd.read_csv(f"{stem}.tsv", sep="\t")
        assert len(labels) == 200 and {"x", "y", "z"} <= set(labels.columns)
        atlas = load_atlas(out / DERIV / "atlases")
        assert (atlas.name, atlas.space) == ("CC200", "MNI152NLin6Asym")
        assert atlas.region_names == list(ts.columns)
        np.testing.assert_array_equal(atlas.img.affine, nb.load(CC200).affine)
        assert Path(f"{stem}.nii.gz").read_bytes() == CC200.read_bytes()


def _fake_cpac_atlas(folder: Path, n_regions: int = 5, name: str =
                     "CPAC200_space-MNI152NLin6_res-2x2x2.nii.gz") -> Path:
    """A small 2 mm label image named like the neuroparc CC200 file, with a neuroparc JSON."""
    data = np.zeros((10, 12, 10), dtype=np.float32)
    for k in range(1, n_regions + 1):
        data[k, 2:6, 3:5] = k
    affine = np.array([[-2.0, 0, 0, 90], [0, 2, 0, -126], [0, 0, 2, -72], [0, 0, 0, 1]])
    folder.mkdir(exist_ok=True)
    path = folder / name
    nb.save(nb.Nifti1Image(data, affine), path)
    rois = {"0": {"label": None, "center": [0, 0, 0]}}
    rois.update({str(k): {"label": None, "center": [float(k), 1.5, -2.0]}
                 for k in range(1, n_regions + 1)})
    path.with_name(name.split(".nii")[0] + ".json").write_text(json.dumps({"rois": rois}))
    return path


@needs_validator
def test_atlas_image_is_written_for_painting(fake_abide, tmp_path):
    """--atlas-image (file or folder) → atlases/, which load_atlas reads as CC200 in
    MNI152NLin6Asym with region names equal to the timeseries columns."""
    rois, csv = fake_abide
    image = _fake_cpac_atlas(tmp_path / "atlases")
    (tmp_path / "atlases" / "Schaefer200_space-MNI152NLin6_res-2x2x2.nii.gz").write_bytes(b"")
    out = tmp_path / "bids"
    ingest_abide_pcp(rois, csv, out, atlas_image=tmp_path / "atlases")  # folder: picks CPAC200
    folder = out / DERIV / "atlases"
    stem = folder / "atlas-CC200" / "atlas-CC200_space-MNI152NLin6Asym_res-2_dseg"
    assert Path(f"{stem}.nii.gz").read_bytes() == image.read_bytes()
    ts = read_timeseries_tsv(next((out / DERIV).rglob("sub-0050952_*_timeseries.tsv")))
    for spec in (folder, Path(f"{stem}.nii.gz")):
        atlas = load_atlas(spec)
        assert (atlas.name, atlas.space) == ("CC200", "MNI152NLin6Asym")
        assert atlas.region_names == list(ts.columns) == [f"CC200_{k}" for k in range(1, 6)]
        np.testing.assert_array_equal(atlas.img.affine, nb.load(image).affine)
    labels = pd.read_csv(f"{stem}.tsv", sep="\t")
    assert list(labels["x"]) == [1.0, 2.0, 3.0, 4.0, 5.0]
    side = json.loads(next((out / DERIV).rglob("sub-0050952_*_timeseries.json")).read_text())
    assert side["AtlasImage"] == "atlases/atlas-CC200/" + Path(f"{stem}.nii.gz").name
    assert side["AtlasLabels"] == "atlases/atlas-CC200/" + Path(f"{stem}.tsv").name
    assert json.loads(Path(f"{stem}.json").read_text())["Resolution"] == "2 mm isotropic"
    assert "--atlas" in (out / "README").read_text()
    assert validate(out)["errors"] == []
    again = tmp_path / "again"
    ingest_abide_pcp(rois, csv, again, atlas_image=image)  # the file itself: same output
    assert tree_digest(again) == tree_digest(out)


def test_atlas_image_errors(fake_abide, tmp_path):
    rois, csv = fake_abide
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(IngestError, match="CPAC200_"):
        ingest_abide_pcp(rois, csv, tmp_path / "o1", atlas_image=empty)
    small = _fake_cpac_atlas(tmp_path / "small", n_regions=3)
    with pytest.raises(IngestError, match=r"lacks label\(s\) \[4, 5\]"):
        ingest_abide_pcp(rois, csv, tmp_path / "o2", atlas_image=small)
    four_d = tmp_path / "cpac4d.nii.gz"
    nb.save(nb.Nifti1Image(np.zeros((4, 4, 4, 2), dtype=np.int16), np.eye(4)), four_d)
    with pytest.raises(IngestError, match="3D image"):
        ingest_abide_pcp(rois, csv, tmp_path / "o3", atlas_image=four_d)
    assert not any(p.name.startswith((".o", "o")) for p in tmp_path.iterdir())
