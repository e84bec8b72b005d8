"""Participant jobs running at once into one output directory (a SLURM array, several
``xaibids ... participant --participant-label X`` on one machine) never corrupt the files they
share: ``dataset_description.json``, ``.bidsignore`` and ``logs/config.toml``."""

import json
import multiprocessing
import subprocess
import sys
import time
import tomllib
from pathlib import Path

from tests.conftest import make_fmriprep_dataset
from xaibids.config import Config
from xaibids.outputs.derivatives import (
    BIDSIGNORE,
    LOCK_FILE,
    output_lock,
    save_config,
    write_bidsignore,
    write_dataset_description,
)

SUBJECTS = ("01", "02", "03", "04")
USER_LINE = "extra/"  # a line a user added to .bidsignore must survive every rewrite


def test_parallel_participant_jobs_share_one_output_dir(tmp_path):
    bids_dir, deriv = make_fmriprep_dataset(tmp_path, subjects=SUBJECTS, n_vols=12)
    out = tmp_path / "out"
    out.mkdir()
    (out / ".bidsignore").write_text(USER_LINE + "\n")
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "xaibids.cli.run", str(bids_dir), str(out), "participant",
             "-d", f"fmriprep={deriv}", "--participant-label", subject,
             "-w", str(tmp_path / f"work-{subject}"), "--atlas", "aal", "--nprocs", "1",
             "--omp-nthreads", "1", "--skip-bids-validation"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
        for subject in SUBJECTS
    ]
    errors = [proc.communicate(timeout=300)[1] for proc in procs]
    for subject, proc, err in zip(SUBJECTS, procs, errors):
        assert proc.returncode == 0, err[-3000:]
        assert f"sub-{subject}: done" in err
        assert len(list(out.glob(f"sub-{subject}/func/sub-{subject}_*_timeseries.tsv"))) == 1
        assert len(list(out.glob(f"sub-{subject}/func/sub-{subject}_*_timeseries.json"))) == 1

    description = json.loads((out / "dataset_description.json").read_text())
    expected = json.loads(write_dataset_description(tmp_path / "expected", bids_dir,
                                                    {"fmriprep": str(deriv)}).read_text())
    assert description == expected
    assert (out / ".bidsignore").read_text().splitlines() == [USER_LINE, *BIDSIGNORE]
    config = tomllib.loads((out / "logs" / "config.toml").read_text())
    ex = config["execution"]
    assert ex["output_dir"] == str(out) and ex["analysis_level"] == "participant"
    assert ex["participant_label"] in [[s] for s in SUBJECTS]  # one job's, whole
    assert not list(out.rglob("*.tmp"))  # no temporary file left behind


def _hammer(out: str, bids_dir: str, deriv: str, index: int, rounds: int, start: float) -> None:
    while time.time() < start:
        time.sleep(0.001)
    config = Config()
    config.execution.output_dir = out
    config.execution.participant_label = [f"{index:02d}"]
    for _ in range(rounds):
        write_dataset_description(out, bids_dir, {f"deriv{index}": deriv})
        write_bidsignore(out)
        save_config(config, Path(out) / "logs" / "config.toml")


def test_shared_file_writers_under_contention(tmp_path):
    """Many processes rewriting the shared files in a tight loop: a reader never sees a partial
    file, and no process's read-modify-write loses another's (every DatasetLinks entry stays)."""
    out, bids_dir, deriv = tmp_path / "out", tmp_path / "bids", tmp_path / "deriv"
    for folder in (out, bids_dir, deriv):
        folder.mkdir()
    (out / ".bidsignore").write_text(USER_LINE + "\n")
    n, rounds = 6, 40
    ctx = multiprocessing.get_context("spawn")
    start = time.time() + 2
    workers = [ctx.Process(target=_hammer, args=(str(out), str(bids_dir), str(deriv), i, rounds,
                                                 start)) for i in range(n)]
    for worker in workers:
        worker.start()
    seen = 0
    while any(w.is_alive() for w in workers):
        for name in ("dataset_description.json", ".bidsignore", "logs/config.toml"):
            path = out / name
            if path.exists():
                text = path.read_text()
                if name.endswith(".json"):
                    json.loads(text)
                elif name.endswith(".toml"):
                    tomllib.loads(text)
                else:  # as the test wrote it, or completed: never partial
                    assert text.splitlines() in ([USER_LINE], [USER_LINE, *BIDSIGNORE])
                seen += 1
    for worker in workers:
        worker.join(60)
        assert worker.exitcode == 0
    assert seen
    links = json.loads((out / "dataset_description.json").read_text())["DatasetLinks"]
    assert set(links) == {"raw", *(f"deriv{i}" for i in range(n))}
    assert (out / ".bidsignore").read_text().splitlines() == [USER_LINE, *BIDSIGNORE]
    assert (out / LOCK_FILE).exists()
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]


def test_output_lock_excludes_other_processes_and_is_reentrant(tmp_path):
    out = tmp_path / "out"
    code = ("import sys; from xaibids.outputs.derivatives import write_bidsignore; "
            "write_bidsignore(sys.argv[1])")
    with output_lock(out):
        with output_lock(out):  # re-entrant in one process (the writers take it themselves)
            write_bidsignore(out)
        (out / ".bidsignore").unlink()
        other = subprocess.Popen([sys.executable, "-c", code, str(out)])
        time.sleep(3)
        assert other.poll() is None  # waits for the lock
        assert not (out / ".bidsignore").exists()
    assert other.wait(60) == 0
    assert (out / ".bidsignore").read_text().splitlines() == list(BIDSIGNORE)


def test_container_is_recorded_in_generated_by(tmp_path, monkeypatch):
    """The image sets XAIBIDS_CONTAINER_IMAGE/TYPE (Dockerfile, Apptainer %environment)."""
    import json

    from xaibids.outputs.derivatives import write_dataset_description

    (tmp_path / "bids").mkdir()
    monkeypatch.setenv("XAIBIDS_CONTAINER_IMAGE", "xaibids:1.0")
    monkeypatch.setenv("XAIBIDS_CONTAINER_TYPE", "apptainer")
    path = write_dataset_description(tmp_path / "out", tmp_path / "bids", {})
    generated = json.loads(path.read_text())["GeneratedBy"][0]
    assert generated["Container"] == {"Type": "apptainer", "Tag": "xaibids:1.0"}
