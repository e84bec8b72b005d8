"""The recipes in workflows/ run as documented."""

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import make_fmriprep_dataset

ROOT = Path(__file__).resolve().parents[1]


def test_run_after_fmriprep_with_plugin_file(tmp_path):
    bids_dir, deriv = make_fmriprep_dataset(tmp_path, subjects=("01",), n_vols=12)
    out = tmp_path / "out"
    env = dict(os.environ, XAIBIDS=f"{sys.executable} -m xaibids.cli.run")
    proc = subprocess.run(
        [str(ROOT / "workflows/fmriprep/run_after_fmriprep.sh"), str(bids_dir), str(deriv), str(out),
         "--atlas", "aal", "--use-plugin", str(ROOT / "workflows/nipype/multiproc.yml"),
         "-w", str(tmp_path / "work"), "--skip-bids-validation"],
        capture_output=True, text=True, env=env, cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert "sub-01: done" in proc.stderr
    assert list(out.glob("sub-01/func/sub-01_task-rest_space-MNI152NLin6Asym_atlas-AAL_stat-mean_timeseries.tsv"))
    assert 'plugin = "MultiProc"' in (out / "logs" / "config.toml").read_text()


def test_run_after_fmriprep_usage(tmp_path):
    proc = subprocess.run([str(ROOT / "workflows/fmriprep/run_after_fmriprep.sh")],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "BIDS_DIR FMRIPREP_DIR OUTPUT_DIR" in proc.stderr
