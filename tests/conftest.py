"""Shared fixtures: small datasets made on the fly (nothing is downloaded)."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nb
import numpy as np
import pandas as pd
import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"

MOTION = ["trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z"]


def _write_json(path: Path, obj: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2))


def fmriprep_confounds(n_vols: int, rng: np.random.Generator) -> pd.DataFrame:
    """A confounds table with the columns nilearn's fMRIPrep strategies read."""
    cols = {}
    for name in MOTION:
        base = np.cumsum(rng.normal(0, 0.02, n_vols))
        deriv = np.r_[0.0, np.diff(base)]
        cols[name] = base
        cols[f"{name}_derivative1"] = deriv
        cols[f"{name}_power2"] = base**2
        cols[f"{name}_derivative1_power2"] = deriv**2
    for name in ("global_signal", "csf", "white_matter"):
        sig = rng.normal(0, 1, n_vols)
        cols[name] = sig
        cols[f"{name}_derivative1"] = np.r_[0.0, np.diff(sig)]
        cols[f"{name}_power2"] = sig**2
        cols[f"{name}_derivative1_power2"] = np.r_[0.0, np.diff(sig)] ** 2
    fd = np.abs(rng.normal(0.1, 0.05, n_vols))
    fd[0] = np.nan
    cols["framewise_displacement"] = fd
    dvars = np.abs(rng.normal(1.0, 0.2, n_vols))
    dvars[0] = np.nan
    cols["std_dvars"] = dvars
    for i in range(3):
        cols[f"cosine{i:02d}"] = np.cos(np.pi * (i + 1) * (np.arange(n_vols) + 0.5) / n_vols)
    for i in range(6):
        cols[f"a_comp_cor_{i:02d}"] = rng.normal(0, 1, n_vols)
    return pd.DataFrame(cols)


def make_fmriprep_dataset(root: Path, subjects=("01", "02"), tasks=("rest",), runs=(None,),
                          n_vols: int = 40, tr: float = 2.0, seed: int = 0,
                          space: str = "MNI152NLin6Asym") -> tuple[Path, Path]:
    """A raw BIDS dataset and its fMRIPrep-like derivatives on a coarse MNI grid.

    Returns ``(bids_dir, fmriprep_dir)``. BOLD images are 8 mm isotropic in MNI space with a
    smooth signal per voxel plus noise; the brain mask is an ellipsoid.
    """
    rng = np.random.default_rng(seed)
    bids_dir, deriv = root / "bids", root / "fmriprep"
    _write_json(bids_dir / "dataset_description.json",
                {"Name": "test", "BIDSVersion": "1.10.0", "DatasetType": "raw",
                 "Authors": ["xaibids tests", "second author"]})
    (bids_dir / "README").write_text("A tiny dataset made by the xaibids test suite.\n")
    pd.DataFrame({"participant_id": [f"sub-{s}" for s in subjects],
                  "group": ["a" if i % 2 else "b" for i in range(len(subjects))]}).to_csv(
        bids_dir / "participants.tsv", sep="\t", index=False)
    _write_json(deriv / "dataset_description.json",
                {"Name": "fMRIPrep output", "BIDSVersion": "1.10.0", "DatasetType": "derivative",
                 "GeneratedBy": [{"Name": "fMRIPrep", "Version": "24.1.0"}]})
    shape = (20, 24, 20)
    affine = np.array([[8.0, 0, 0, -80], [0, 8, 0, -112], [0, 0, 8, -72], [0, 0, 0, 1]])
    ijk = np.indices(shape).reshape(3, -1).T
    xyz = ijk @ affine[:3, :3].T + affine[:3, 3]
    inside = (((xyz[:, 0]) / 70) ** 2 + ((xyz[:, 1] + 18) / 100) ** 2
              + ((xyz[:, 2] - 10) / 75) ** 2) <= 1
    mask = inside.reshape(shape).astype(np.uint8)
    for sub in subjects:
        for task in tasks:
            for run in runs:
                stem = f"sub-{sub}_task-{task}" + (f"_run-{run}" if run else "")
                t = np.arange(n_vols) * tr
                phases = rng.uniform(0, 2 * np.pi, size=shape)
                data = (100 + 5 * np.sin(2 * np.pi * 0.05 * t[None, None, None, :] + phases[..., None])
                        + rng.normal(0, 1, shape + (n_vols,))) * mask[..., None]
                img = nb.Nifti1Image(data.astype(np.float32), affine)
                img.header.set_xyzt_units("mm", "sec")
                img.header.set_zooms((8.0, 8.0, 8.0, tr))
                raw = bids_dir / f"sub-{sub}" / "func" / f"{stem}_bold.nii.gz"
                raw.parent.mkdir(parents=True, exist_ok=True)
                nb.save(img, raw)
                _write_json(raw.with_name(f"{stem}_bold.json"),
                            {"RepetitionTime": tr, "TaskName": task})
                func = deriv / f"sub-{sub}" / "func"
                func.mkdir(parents=True, exist_ok=True)
                prefix = f"{stem}_space-{space}_res-2"
                nb.save(img, func / f"{prefix}_desc-preproc_bold.nii.gz")
                _write_json(func / f"{prefix}_desc-preproc_bold.json",
                            {"RepetitionTime": tr, "TaskName": task})
                nb.save(nb.Nifti1Image(mask, affine), func / f"{prefix}_desc-brain_mask.nii.gz")
                conf = fmriprep_confounds(n_vols, rng)
                conf.to_csv(func / f"{stem}_desc-confounds_timeseries.tsv", sep="\t",
                            index=False, na_rep="n/a")
                _write_json(func / f"{stem}_desc-confounds_timeseries.json",
                            {f"a_comp_cor_{i:02d}": {"Method": "aCompCor", "Retained": True,
                                                     "Mask": "combined"} for i in range(6)})
    return bids_dir, deriv


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """One PyTorch thread per test: tiny models train fastest so, and pytest-xdist workers on
    shared CI cores do not oversubscribe."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def fmriprep_dataset(tmp_path_factory) -> tuple[Path, Path]:
    """Two subjects, one rest run each (read-only use: copy before modifying)."""
    return make_fmriprep_dataset(tmp_path_factory.mktemp("fmriprep"))


@pytest.fixture
def run_cli(capsys, monkeypatch, tmp_path):
    """Run the ``xaibids`` entry point in-process from ``tmp_path``; return (exit code, stderr)."""
    from xaibids.cli.run import main

    monkeypatch.chdir(tmp_path)

    def _run(args):
        capsys.readouterr()
        code = main([str(a) for a in args])
        return code, capsys.readouterr().err

    return _run
