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


FAKE_APPTAINER = """#!/usr/bin/env bash
# Stands in for apptainer: records the command line, checks the binds, runs xaibids.
printf '%s\\n' "$@" > "$APPTAINER_ARGS"
[ "$1" = run ] && [ "$2" = --cleanenv ] || { echo "expected: run --cleanenv" >&2; exit 9; }
shift 2
while [ "$1" = -B ]; do shift 2; done
[ "$1" = "$XAIBIDS_SIF" ] || { echo "expected the image, got $1" >&2; exit 9; }
shift
exec "$XAIBIDS_REAL" "$@"
"""


def test_participant_array_recipe_runs_the_image(tmp_path):
    """XAIBIDS_SIF mode: `apptainer run --cleanenv` with the inputs bound read-only (a stand-in
    apptainer on PATH records the call and runs this environment's xaibids)."""
    bids_dir, deriv = make_fmriprep_dataset(tmp_path, subjects=("01", "02"), n_vols=12)
    bindir = tmp_path / "bin"
    bindir.mkdir()
    fake = bindir / "apptainer"
    fake.write_text(FAKE_APPTAINER)
    fake.chmod(0o755)
    out, args_file = tmp_path / "out", tmp_path / "apptainer-args.txt"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    env.update(PATH=f"{bindir}:{env['PATH']}", SLURM_ARRAY_TASK_ID="1", SLURM_ARRAY_JOB_ID="7",
               XAIBIDS_SIF=str(tmp_path / "xaibids.sif"), APPTAINER_ARGS=str(args_file),
               XAIBIDS_REAL=str(Path(sys.executable).with_name("xaibids")),
               XAIBIDS_WORK_ROOT=str(tmp_path / "work"))
    proc = subprocess.run(
        [str(ROOT / "workflows/slurm/participant_array.sbatch"), str(bids_dir), str(deriv),
         str(out), "--atlas", "aal", "--skip-bids-validation"],
        capture_output=True, text=True, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    args = args_file.read_text().splitlines()
    binds = [args[i + 1] for i, a in enumerate(args) if a == "-B"]
    bids, fmriprep = bids_dir.resolve(), deriv.resolve()
    assert f"{bids}:{bids}:ro" in binds and f"{fmriprep}:{fmriprep}:ro" in binds
    assert str(out.resolve()) in binds
    assert list(out.glob("sub-02/func/*_stat-mean_timeseries.tsv"))
    assert not list(out.glob("sub-01"))  # task 1 is the second subject only
