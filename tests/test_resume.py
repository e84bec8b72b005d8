"""A group level killed half-way (SIGKILL) resumes from its checkpoints and ends with the same
outputs as a run that was never interrupted."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import make_fmriprep_dataset

OPTIONS = ["--atlas", "aal", "--n-folds", "2", "--n-models", "3", "--epochs", "30",
           "--reliability-samples", "0", "--n-bootstrap", "20", "--skip-bids-validation",
           "--omp-nthreads", "1", "--nprocs", "1", "--random-seed", "7"]
N_CHECKPOINTS = 2 * 3
#: Outputs compared byte for byte (the reports and logs carry dates and run ids).
COMPARED = ("*.tsv", "*.nii.gz", "*.json")


def _command(bids_dir, deriv, out, work):
    return [sys.executable, "-m", "xaibids.cli.run", str(bids_dir), str(out), "group",
            "-d", f"fmriprep={deriv}", "-w", str(work), *OPTIONS]


def _finished(checkpoints: Path) -> list[Path]:
    """Checkpoints whose sidecar exists (the sidecar is written last)."""
    return sorted(checkpoints.glob("fold-*/model-*.json"))


def _outputs(out: Path) -> dict[str, bytes]:
    files = {}
    for pattern in COMPARED:
        for path in out.rglob(pattern):
            rel = path.relative_to(out)
            if rel.parts[0] == "logs" or (rel.parts[:2] == ("group", "checkpoints")):
                continue
            files[str(rel)] = path.read_bytes()
    return files


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("resume")
    return make_fmriprep_dataset(root, subjects=tuple(f"{i:02d}" for i in range(1, 9)), n_vols=20)


def test_group_resumes_after_sigkill(dataset, tmp_path):
    bids_dir, deriv = dataset
    out, work = tmp_path / "out", tmp_path / "work"
    checkpoints = out / "group" / "checkpoints"
    # the uninterrupted reference, in a fresh folder, alongside (2 cores: the test takes half)
    fresh = tmp_path / "fresh"
    fresh_log = open(tmp_path / "fresh.log", "w")
    clean = subprocess.Popen(_command(bids_dir, deriv, fresh, tmp_path / "work-fresh"),
                             stdout=fresh_log, stderr=fresh_log, cwd=tmp_path,
                             start_new_session=True)
    log = open(tmp_path / "killed.log", "w")
    proc = subprocess.Popen(_command(bids_dir, deriv, out, work), stdout=log, stderr=log,
                            cwd=tmp_path, start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and proc.poll() is None:
            if _finished(checkpoints):
                break
            time.sleep(0.02)
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(30)
        log.close()
    done = {p: (p.stat().st_mtime_ns, p.read_bytes())
            for j in _finished(checkpoints) for p in (j, j.with_suffix(".pt"))}
    n_done = len(done) // 2
    assert proc.returncode == -signal.SIGKILL, (tmp_path / "killed.log").read_text()[-3000:]
    assert 0 < n_done < N_CHECKPOINTS, f"{n_done} checkpoints at the kill"
    assert not (out / "group" / "desc-performance_metrics.tsv").exists()

    rerun = subprocess.run(_command(bids_dir, deriv, out, work), capture_output=True, text=True,
                           cwd=tmp_path, timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert f"Reused {n_done} checkpointed model(s), trained {N_CHECKPOINTS - n_done}" in rerun.stderr
    for path, (mtime, data) in done.items():  # reused as they were, not retrained
        assert path.stat().st_mtime_ns == mtime and path.read_bytes() == data, path
    assert len(_finished(checkpoints)) == N_CHECKPOINTS

    try:
        clean.wait(600)
    finally:
        if clean.poll() is None:
            os.killpg(clean.pid, signal.SIGKILL)
            clean.wait(30)
        fresh_log.close()
    clean_log = (tmp_path / "fresh.log").read_text()
    assert clean.returncode == 0, clean_log[-3000:]
    assert "Reused" not in clean_log
    expected, resumed = _outputs(fresh), _outputs(out)
    assert any(name.endswith("_attribution.nii.gz") for name in expected)
    assert any(name.startswith("group/") for name in expected)
    assert sorted(resumed) == sorted(expected)
    differ = [name for name in expected if resumed[name] != expected[name]]
    assert not differ, f"outputs differ after resuming: {differ}"
