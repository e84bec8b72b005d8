"""--omp-nthreads reaches this process, Nipype's workers and single-threaded nodes."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch
from threadpoolctl import threadpool_info

from xaibids.threads import THREAD_VARIABLES, limited_threads, run_threads


def _pool_sizes() -> set[int]:
    return {pool["num_threads"] for pool in threadpool_info()}


def test_limited_threads_limits_pools_and_torch_then_restores():
    torch.set_num_threads(2)
    before = _pool_sizes()
    with limited_threads(1):
        assert _pool_sizes() == {1}
        assert torch.get_num_threads() == 1
    assert _pool_sizes() == before
    assert torch.get_num_threads() == 2
    with limited_threads(0):  # 0: leave everything as it is
        assert torch.get_num_threads() == 2


def test_run_threads_exports_the_count_and_restores_the_environment(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # as a container image might set it
    monkeypatch.delenv("MKL_NUM_THREADS", raising=False)
    with run_threads(3):
        assert {os.environ[name] for name in THREAD_VARIABLES} == {"3"}
        child = subprocess.run(
            [sys.executable, "-c", "import os; print(os.environ['OPENBLAS_NUM_THREADS'])"],
            capture_output=True, text=True, check=True)
        assert child.stdout.strip() == "3"
    assert os.environ["OMP_NUM_THREADS"] == "1"
    assert "MKL_NUM_THREADS" not in os.environ


def test_roi_extraction_node_keeps_blas_to_its_one_thread(monkeypatch, tmp_path):
    from xaibids.interfaces import timeseries

    seen = {}

    class Stop(Exception):
        pass

    def record(*args, **kwargs):
        seen["pools"] = _pool_sizes()
        raise Stop

    monkeypatch.setattr(timeseries, "extract_roi_timeseries", record)
    labels = tmp_path / "labels.tsv"
    labels.write_text("index\tname\n1\ta\n")
    files = {}
    for name in ("bold", "mask", "atlas"):
        files[name] = tmp_path / f"{name}.nii.gz"
        files[name].write_bytes(b"")
    node = timeseries.ExtractRoiTimeseries(
        bold_file=str(files["bold"]), mask_file=str(files["mask"]),
        atlas_file=str(files["atlas"]), atlas_labels=str(labels), atlas_name="a")
    with limited_threads(2), pytest.raises(Stop):
        node.run(cwd=str(tmp_path))
    assert seen["pools"] == {1}


def test_participant_workers_inherit_omp_nthreads(fmriprep_dataset, tmp_path):
    """The CLI replaces an image's OMP_NUM_THREADS=1 by --omp-nthreads in the node processes."""
    from nipype.utils.filemanip import loadpkl

    bids_dir, deriv = fmriprep_dataset
    work = tmp_path / "work"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "xaibids.cli.run", str(bids_dir), str(tmp_path / "out"),
         "participant", "-d", f"fmriprep={deriv}", "--atlas", "harvard-oxford",
         "--participant-label", "01", "-w", str(work), "--nprocs", "2", "--omp-nthreads", "3",
         "--skip-bids-validation"],
        capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr
    results = sorted(work.rglob("result_extract.pklz"))
    assert results
    environ = loadpkl(results[0]).runtime.environ
    assert {environ[name] for name in THREAD_VARIABLES} == {"3"}
