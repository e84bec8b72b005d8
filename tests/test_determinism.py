"""Same --random-seed and inputs → byte-identical TSV and NIfTI outputs on the CPU."""

from __future__ import annotations

import hashlib

import pytest

from tests.conftest import make_fmriprep_dataset
from xaibids.cli.run import main

FAST = ["--atlas", "aal", "--n-folds", "2", "--n-models", "2", "--epochs", "2",
        "--reliability-samples", "2", "--n-bootstrap", "20", "--skip-bids-validation",
        "--omp-nthreads", "1", "--nprocs", "2", "--device", "cpu", "--random-seed", "7"]


def output_hashes(out):
    """sha256 of every TSV and NIfTI (not HTML: timestamps; not logs/: the run id)."""
    return {str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(out.rglob("*"))
            if p.name.endswith((".tsv", ".nii.gz")) and "logs" not in p.relative_to(out).parts}


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("determinism")
    bids_dir, deriv = make_fmriprep_dataset(root, subjects=tuple(f"{i:02d}" for i in range(1, 7)),
                                            n_vols=20)
    codes = [main([str(bids_dir), str(root / f"out{k}"), "group", "-d", f"fmriprep={deriv}",
                   "-w", str(root / f"work{k}"), *FAST]) for k in (1, 2)]
    return codes, root / "out1", root / "out2"


def test_group_outputs_are_byte_identical(two_runs):
    codes, out1, out2 = two_runs
    assert codes == [0, 0]
    first, second = output_hashes(out1), output_hashes(out2)
    kinds = {name.split("_")[-1] for name in first}
    # the comparison covers timecourses, maps (TSV and NIfTI) and group tables
    assert {"timeseries.tsv", "attribution.tsv", "attribution.nii.gz",
            "importance.tsv", "metrics.tsv"} <= kinds, kinds
    assert first.keys() == second.keys()
    differ = sorted(name for name in first if first[name] != second[name])
    assert differ == [], f"{len(differ)} file(s) differ between two runs with one seed: {differ}"
