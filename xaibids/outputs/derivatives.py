"""The output derivatives dataset: ``dataset_description.json``, ``.bidsignore``, BIDS URIs.

Files shared by all subjects are written atomically (temporary name, then ``os.replace``) so a
crash never leaves a half-written file, and read, changed and written under an exclusive lock
(:func:`output_lock`, ``fcntl.flock`` on ``OUTPUT_DIR/logs/.xaibids.lock``) so participant jobs
running at once into one output directory (a SLURM array) never lose each other's changes.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import threading
from pathlib import Path

from xaibids import __url__, __version__
from xaibids.fileio import atomic_write_text

#: What the BIDS validator cannot name; written to ``OUTPUT_DIR/.bidsignore``.
BIDSIGNORE = (
    "*_timeseries.tsv",
    "*_timeseries.json",
    "*_attribution.tsv",
    "*_attribution.json",
    "*_attribution.nii.gz",
    "*_components.nii.gz",
    "*_components.json",
    "*_trials.nii.gz",
    "*_trials.tsv",
    "*_trials.json",
    "atlases",
    "*.html",
    "group",
    "logs",
    "figures",
)


#: Lock file of an output directory, relative to it (``logs/`` is in ``.bidsignore``).
LOCK_FILE = Path("logs") / ".xaibids.lock"

_held: dict[str, int] = {}
_held_guard = threading.RLock()


@contextlib.contextmanager
def output_lock(output_dir: str | Path):
    """Hold the exclusive lock of ``output_dir`` (blocks until other processes release it).

    Re-entrant within a process (a nested call only counts), so the writers below can take it
    themselves and a caller can still hold it around several of them. ``flock`` locks work across
    processes on one machine and, on Linux, across NFS clients.
    """
    lock_path = Path(output_dir) / LOCK_FILE
    key = str(lock_path.absolute())
    with _held_guard:
        if _held.get(key):
            _held[key] += 1
            nested = True
        else:
            nested = False
    if nested:
        try:
            yield lock_path
        finally:
            with _held_guard:
                _held[key] -= 1
        return
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with _held_guard:  # one thread of this process at a time takes the file lock
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            _held[key] = 1
            try:
                yield lock_path
            finally:
                _held.pop(key, None)
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)


def bids_uri(dataset_name: str, root: str | Path, path: str | Path) -> str:
    """``bids:<dataset>:<path relative to the dataset root>`` (BIDS URI, BIDS 1.8+)."""
    return f"bids:{dataset_name}:{Path(path).resolve().relative_to(Path(root).resolve()).as_posix()}"


def source_uri(path: str | Path, roots: dict[str, str]) -> str:
    """BIDS URI of ``path`` in whichever input dataset holds it (the deepest root wins).

    ``roots`` maps dataset names (as in ``DatasetLinks``) to their roots; the empty name stands
    for the output dataset itself (``bids::path``).
    """
    resolved = Path(path).resolve()
    best = None
    for name, root in roots.items():
        root_path = Path(root).resolve()
        if resolved.is_relative_to(root_path):
            if best is None or len(root_path.parts) > len(best[1].parts):
                best = (name, root_path)
    if best is None:
        raise ValueError(f"{path} lies in none of the datasets {sorted(roots)}")
    return bids_uri(best[0], best[1], resolved)


def dataset_links(bids_dir: str | Path, derivatives: dict[str, str]) -> dict[str, str]:
    """``DatasetLinks`` naming every input dataset that BIDS URIs in the outputs refer to."""
    links = {"raw": Path(bids_dir).resolve().as_uri()}
    links.update({name: Path(path).resolve().as_uri() for name, path in derivatives.items()})
    return links


def write_dataset_description(output_dir: str | Path, bids_dir: str | Path,
                              derivatives: dict[str, str]) -> Path:
    """Write (or refresh) the derivative dataset's description.

    Under :func:`output_lock`: links of an existing description to datasets this run does not
    name are kept (outputs of earlier runs refer to them in their ``Sources``); the file is left
    untouched when nothing changes.
    """
    generated_by = {
        "Name": "xaibids",
        "Version": __version__,
        "CodeURL": __url__,
        "Description": "Explainable deep learning on BIDS data: ROI features, seeded "
                       "ensembles and stabilized attribution maps.",
    }
    image = os.environ.get("XAIBIDS_CONTAINER_IMAGE")
    if image:
        generated_by["Container"] = {"Type": os.environ.get("XAIBIDS_CONTAINER_TYPE", "docker"),
                                     "Tag": image}
    path = Path(output_dir) / "dataset_description.json"
    with output_lock(output_dir):
        links = dataset_links(bids_dir, derivatives)
        old = _read_json(path).get("DatasetLinks")
        if isinstance(old, dict):
            links = {**{k: v for k, v in old.items() if isinstance(v, str)}, **links}
        description = {
            "Name": "xaibids derivatives",
            "BIDSVersion": "1.10.0",
            "DatasetType": "derivative",
            "GeneratedBy": [generated_by],
            "SourceDatasets": [{"URL": url} for url in links.values()],
            "DatasetLinks": links,
            "HowToAcknowledge": "Cite xaibids and the methods listed in logs/CITATION.md.",
        }
        return _write_if_changed(path, json.dumps(description, indent=2) + "\n")


def write_bidsignore(output_dir: str | Path) -> Path:
    """Write ``.bidsignore`` keeping any lines a user added (under :func:`output_lock`)."""
    path = Path(output_dir) / ".bidsignore"
    with output_lock(output_dir):
        lines = path.read_text().splitlines() if path.exists() else []
        lines += [line for line in BIDSIGNORE if line not in lines]
        return _write_if_changed(path, "\n".join(lines) + "\n")


def save_config(config, path: str | Path) -> Path:
    """``config.save(path)`` under the lock of the output directory holding ``path/..``.

    For ``OUTPUT_DIR/logs/config.toml``, which every participant job rewrites.
    """
    path = Path(path)
    with output_lock(path.parent.parent):
        return config.save(path)


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_if_changed(path: Path, text: str) -> Path:
    with contextlib.suppress(OSError):
        if path.read_text() == text:
            return path
    return atomic_write_text(path, text)
