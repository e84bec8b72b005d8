"""The SLURM recipes of workflows/slurm on a real (single-node, loopback) SLURM cluster.

The cluster comes from tests/slurm_cluster.py (Debian's slurm-wlm and munge, which .ci/run
installs); without them, or when not root, every test here skips and says why; where they are,
a cluster that does not start is an error, not a skip.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import make_fmriprep_dataset
from tests.slurm_cluster import SlurmStartFailed, SlurmUnavailable, slurm_cluster

ROOT = Path(__file__).resolve().parents[1]
RECIPES = ROOT / "workflows" / "slurm"
SUBJECTS = ("01", "02")
OPTIONS = ["--atlas", "aal", "--skip-bids-validation", "--omp-nthreads", "1"]
TIMESERIES = "sub-*/func/*_timeseries.tsv"


@pytest.fixture(scope="module")
def cluster():
    # one retry with a longer wait: a loaded CI machine can be slow to bring the node up
    for attempt, timeout in enumerate((30, 90)):
        try:
            with slurm_cluster(timeout=timeout) as running:
                yield running
            return
        except SlurmUnavailable as err:
            pytest.skip(f"no SLURM test cluster: {err}")
        except SlurmStartFailed as err:
            if attempt == 1:
                pytest.fail(f"the SLURM test cluster did not start: {err}")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """Two subjects and their outputs from a plain MultiProc run (the reference)."""
    root = tmp_path_factory.mktemp("slurm-data")
    bids_dir, deriv = make_fmriprep_dataset(root, subjects=SUBJECTS, n_vols=12)
    reference = root / "multiproc"
    proc = subprocess.run(
        [sys.executable, "-m", "xaibids.cli.run", str(bids_dir), str(reference), "participant",
         "-d", f"fmriprep={deriv}", "-w", str(root / "work-multiproc"), "--nprocs", "2", *OPTIONS],
        capture_output=True, text=True, cwd=root, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    return bids_dir, deriv, reference


def _timeseries(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.glob(TIMESERIES))}


def _venv() -> Path:
    venv = Path(sys.executable).parent.parent
    if not (venv / "bin" / "xaibids").exists():
        pytest.skip(f"{venv} has no bin/xaibids for the recipe's XAIBIDS_VENV mode")
    return venv


def test_participant_array_recipe_matches_multiproc(cluster, dataset, tmp_path):
    bids_dir, deriv, reference = dataset
    out, work_root = tmp_path / "out", tmp_path / "work"
    recipe = RECIPES / "participant_array.sbatch"
    count = subprocess.run([str(recipe), "--count", str(bids_dir)], capture_output=True,
                           text=True, check=True)
    assert count.stdout.strip() == str(len(SUBJECTS))
    env = dict(cluster.env, XAIBIDS_VENV=str(_venv()), XAIBIDS_WORK_ROOT=str(work_root))
    proc = cluster.run(
        "sbatch", "--wait", f"--array=0-{len(SUBJECTS) - 1}", "--cpus-per-task=1", "--mem=1000",
        "--time=00:10:00", f"--output={tmp_path}/task-%a.log", str(recipe),
        str(bids_dir), str(deriv), str(out), *OPTIONS,
        env=env, cwd=tmp_path, timeout=300,
    )
    logs = "\n".join(p.read_text() for p in sorted(tmp_path.glob("task-*.log")))
    assert proc.returncode == 0, f"{proc.stdout}{proc.stderr}\n{logs}\n{cluster.logs()}"
    for index, subject in enumerate(SUBJECTS):
        log = (tmp_path / f"task-{index}.log").read_text()
        assert f"sub-{subject} on" in log and f"sub-{subject}: done" in log, log
    expected = _timeseries(reference)
    assert len(expected) == len(SUBJECTS)
    assert _timeseries(out) == expected
    # each task had its own work folder, removed after success
    assert not work_root.exists() or not any(work_root.iterdir())
    config = (out / "logs" / "config.toml").read_text()
    assert "nprocs = 1" in config and "mem_gb" in config


def test_participant_array_task_without_subject(cluster, dataset, tmp_path):
    bids_dir, deriv, _ = dataset
    proc = cluster.run(
        "sbatch", "--wait", "--array=5", "--cpus-per-task=1", "--mem=500",
        f"--output={tmp_path}/task-%a.log", str(RECIPES / "participant_array.sbatch"),
        str(bids_dir), str(deriv), str(tmp_path / "out"), env=dict(cluster.env, XAIBIDS_VENV=str(_venv())),
        cwd=tmp_path, timeout=120,
    )
    assert proc.returncode != 0
    assert "Array task 5 has no subject: there are 2" in (tmp_path / "task-5.log").read_text()


def test_slurm_plugin_matches_multiproc(cluster, dataset, tmp_path):
    bids_dir, deriv, reference = dataset
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "xaibids.cli.run", str(bids_dir), str(out), "participant",
         "-d", f"fmriprep={deriv}", "-w", str(tmp_path / "work"),
         "--use-plugin", str(RECIPES / "plugin.yml"), *OPTIONS],
        capture_output=True, text=True, env=cluster.env, cwd=tmp_path, timeout=400,
    )
    assert proc.returncode == 0, f"{proc.stderr}\n{cluster.logs()}"
    assert "with the Nipype SLURM plugin" in proc.stderr
    for subject in SUBJECTS:
        assert f"sub-{subject}: done" in proc.stderr
    assert _timeseries(out) == _timeseries(reference)
    # the Nipype nodes really went through SLURM: their batch scripts and job logs
    assert list((tmp_path / "work").rglob("batch/*.sh"))
    assert 'plugin = "SLURM"' in (out / "logs" / "config.toml").read_text()


GROUP_OPTIONS = ["--atlas", "aal", "--n-folds", "2", "--n-models", "3", "--epochs", "20",
                 "--reliability-samples", "0", "--n-bootstrap", "20", "--skip-bids-validation",
                 "--omp-nthreads", "1", "--random-seed", "7"]
#: Group outputs compared byte for byte (the reports and logs carry dates, run ids, plugins).
GROUP_COMPARED = ("*.tsv", "*.nii.gz", "*.json")
#: Added by the plugin file to the training and attribution jobs only; their Nipype results
#: record the environment they ran in, which shows the per-node sbatch arguments took effect.
TRAINING_MARK = "XAIBIDS_TEST_NODE_KIND=training"


def _group_outputs(out: Path) -> dict[str, bytes]:
    files = {}
    for pattern in GROUP_COMPARED:
        for path in out.rglob(pattern):
            rel = path.relative_to(out)
            if rel.parts[0] != "logs" and rel.parts[:2] != ("group", "checkpoints"):
                files[str(rel)] = path.read_bytes()
    return files


@pytest.fixture(scope="module")
def group_dataset(tmp_path_factory):
    """Eight subjects' timecourses (participant level, MultiProc) and the group level's outputs
    from MultiProc on them (the reference)."""
    root = tmp_path_factory.mktemp("slurm-group")
    bids_dir, deriv = make_fmriprep_dataset(root, subjects=tuple(f"{i:02d}" for i in range(1, 9)),
                                            n_vols=20)
    timecourses = root / "participant"
    reference = root / "group-multiproc"
    for out, level, extra in ((timecourses, "participant", ["--nprocs", "2"]),
                              (reference, "group", ["--nprocs", "1"])):
        if level == "group":
            shutil.copytree(timecourses, reference)
        proc = subprocess.run(
            [sys.executable, "-m", "xaibids.cli.run", str(bids_dir), str(out), level,
             "-d", f"fmriprep={deriv}", "-w", str(root / f"work-{level}"), *GROUP_OPTIONS,
             *extra], capture_output=True, text=True, cwd=root, timeout=600)
        assert proc.returncode == 0, proc.stderr[-3000:]
    return bids_dir, deriv, timecourses, reference


def test_group_recipe_with_slurm_plugin_matches_multiproc(cluster, group_dataset, tmp_path):
    """group.sbatch as a job; its training/attribution nodes as jobs of their own, with the
    plugin file's training_plugin_args; outputs equal the MultiProc run's."""
    bids_dir, deriv, timecourses, reference = group_dataset
    out, work = tmp_path / "out", tmp_path / "work"
    shutil.copytree(timecourses, out)
    plugin = tmp_path / "plugin.yml"
    plugin.write_text(
        "plugin: SLURM\n"
        "plugin_args:\n  sbatch_args: --time=00:10:00 --cpus-per-task=1 --mem=700\n"
        f"training_plugin_args:\n  sbatch_args: --export=ALL,{TRAINING_MARK}\n")
    env = dict(cluster.env, XAIBIDS_VENV=str(_venv()), XAIBIDS_WORK_DIR=str(work))
    proc = cluster.run(
        "sbatch", "--wait", "--cpus-per-task=1", "--mem=1500", "--time=00:15:00",
        f"--output={tmp_path}/group.log", str(RECIPES / "group.sbatch"),
        str(bids_dir), str(deriv), str(out), *GROUP_OPTIONS, "--use-plugin", str(plugin),
        env=env, cwd=tmp_path, timeout=900,
    )
    log = (tmp_path / "group.log").read_text() if (tmp_path / "group.log").exists() else ""
    assert proc.returncode == 0, f"{proc.stdout}{proc.stderr}\n{log[-4000:]}\n{cluster.logs()}"
    assert "with the Nipype SLURM plugin (training/attribution nodes:" in log
    expected = _group_outputs(reference)
    assert any(name.startswith("group/") for name in expected)
    got = _group_outputs(out)
    assert sorted(got) == sorted(expected)
    assert not [name for name in expected if got[name] != expected[name]]
    assert 'plugin = "SLURM"' in (out / "logs" / "config.toml").read_text()
    # every training and attribution node ran as a SLURM job with the extra sbatch arguments
    from nipype.utils.filemanip import loadpkl

    heavy = sorted(work.rglob("result_train_fold*.pklz")) + sorted(
        work.rglob("result_attribute_fold*.pklz"))
    assert len(heavy) == 2 * 2 + 2  # 2 folds x 2 chunks of models + 2 attribution nodes
    for result in heavy:
        environ = loadpkl(result).runtime.environ
        assert environ.get("XAIBIDS_TEST_NODE_KIND") == "training", result
        assert environ.get("SLURM_JOB_ID"), result
    merge = next(work.rglob("result_merge_folds.pklz"))
    assert "XAIBIDS_TEST_NODE_KIND" not in loadpkl(merge).runtime.environ
    assert len(list(work.rglob("batch/*.sh"))) >= len(heavy)


def test_group_recipe_usage():
    proc = subprocess.run([str(RECIPES / "group.sbatch")], capture_output=True, text=True)
    assert proc.returncode == 2
    assert "BIDS_DIR FMRIPREP_DIR OUTPUT_DIR" in proc.stderr and "plugin.yml" in proc.stderr


def test_participant_array_usage(tmp_path):
    proc = subprocess.run([str(RECIPES / "participant_array.sbatch"), str(tmp_path), "a", "b"],
                          capture_output=True, text=True, env={
                              k: v for k, v in os.environ.items() if not k.startswith("SLURM_")})
    assert proc.returncode == 2 and "SLURM_ARRAY_TASK_ID is not set" in proc.stderr
