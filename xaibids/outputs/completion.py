"""Completion records: a rerun over finished outputs is a no-op unless asked to overwrite.

When a participant's features or the group level finish, a small JSON record goes to
``OUTPUT_DIR/logs/finished/<key>.json``: the settings that shape the results, a fingerprint
of every input file, and the size and modification time of every file the step wrote. A later
run with the same key then

* skips the step when the settings and inputs are the same and every recorded output is still
  there unchanged ("nothing to do");
* refuses, before writing anything, when the settings or inputs differ, naming the differences
  (``--overwrite`` recomputes and replaces the step's outputs, removing the ones it no longer
  writes);
* runs the step again when the outputs were removed or edited since (with a warning), or when
  there is no record (the step never finished: earlier complete files are replaced atomically).

No library keeps such records for BIDS derivatives (fMRIPrep and XCP-D recompute from their
Nipype caches), so this module is written here.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import logging
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from xaibids.errors import XaibidsError
from xaibids.fileio import atomic_write_text

LOGGER = logging.getLogger("xaibids")

#: Files up to this size are hashed whole; larger ones by size, head and tail (BOLD series).
WHOLE_HASH_BYTES = 16 * 2**20
_EDGE_BYTES = 2**20
#: Folders of OUTPUT_DIR that hold caches or logs, not results.
NOT_OUTPUTS = ("logs", "group/checkpoints")
#: Files at the top of OUTPUT_DIR shared by every step (never a step's own output).
SHARED_FILES = ("dataset_description.json",)


def fingerprint(path: str | os.PathLike) -> str:
    """A content fingerprint of a file that survives copying (unlike its modification time).

    Files up to :data:`WHOLE_HASH_BYTES` are hashed whole (SHA-256); larger ones by their size
    and the SHA-256 of their first and last MiB, which tells apart any two BOLD series in
    practice while reading 2 MiB instead of gigabytes.
    """
    path = Path(path)
    size = path.stat().st_size
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        if size <= WHOLE_HASH_BYTES:
            for block in iter(lambda: fh.read(2**20), b""):
                digest.update(block)
            return f"sha256:{digest.hexdigest()}"
        digest.update(fh.read(_EDGE_BYTES))
        fh.seek(size - _EDGE_BYTES)
        digest.update(fh.read(_EDGE_BYTES))
    return f"size:{size};sha256-edges:{digest.hexdigest()}"


def fingerprints(paths) -> dict[str, str]:
    """``{file name: fingerprint}`` of existing files (BIDS names are unique per subject)."""
    found = {}
    for path in paths:
        if path and Path(path).is_file():
            found[Path(path).name] = fingerprint(path)
    return dict(sorted(found.items()))


def snapshot(output_dir: str | os.PathLike, under: str = "") -> dict[str, list[int]]:
    """``{relative path: [size, mtime_ns]}`` of the result files below ``output_dir/under``.

    Folders in :data:`NOT_OUTPUTS`, the :data:`SHARED_FILES` and hidden files and folders
    (``.bidsignore``, staging folders) are left out.
    """
    root = Path(output_dir)
    start = root / under if under else root
    files = {}
    if not start.is_dir():
        return files
    for folder, dirs, names in os.walk(start):
        rel_folder = Path(folder).relative_to(root)
        dirs[:] = sorted(d for d in dirs if not d.startswith(".")
                         and (rel_folder / d).as_posix() not in NOT_OUTPUTS)
        for name in names:
            if name.startswith(".") or (rel_folder == Path(".") and name in SHARED_FILES):
                continue
            stat = (Path(folder) / name).stat()
            files[(rel_folder / name).as_posix()] = [stat.st_size, stat.st_mtime_ns]
    return files


def written_since(before: dict, after: dict) -> dict:
    """The entries of ``after`` that are new or changed compared with ``before``."""
    return {rel: meta for rel, meta in after.items() if before.get(rel) != meta}


@dataclass
class CompletionRecord:
    """What one finished step (a participant's features, or the group level) wrote, and from
    which settings and inputs."""

    key: str
    settings: dict
    inputs: dict
    outputs: dict = field(default_factory=dict)
    run_uuid: str = ""
    version: str = ""
    finished: str = ""

    @staticmethod
    def path(output_dir: str | os.PathLike, key: str) -> Path:
        return Path(output_dir) / "logs" / "finished" / f"{key}.json"

    @classmethod
    def load(cls, output_dir: str | os.PathLike, key: str) -> CompletionRecord | None:
        path = cls.path(output_dir, key)
        if not path.is_file():
            return None
        try:
            data = json.loads(path.read_text())
            return cls(**{k: data[k] for k in ("key", "settings", "inputs", "outputs",
                                               "run_uuid", "version", "finished")})
        except (ValueError, KeyError, TypeError):
            LOGGER.warning("%s is not a completion record written by xaibids; the step runs "
                           "again.", path)
            return None

    def save(self, output_dir: str | os.PathLike) -> Path:
        self.finished = self.finished or datetime.datetime.now(
            datetime.timezone.utc).isoformat(timespec="seconds")
        path = self.path(output_dir, self.key)
        path.parent.mkdir(parents=True, exist_ok=True)
        return atomic_write_text(path, json.dumps(asdict(self), indent=1, sort_keys=True) + "\n")

    def differences(self, settings: dict, inputs: dict) -> list[str]:
        """Human-readable differences between this record and the given settings/inputs."""
        diffs = []
        for key in sorted(set(self.settings) | set(settings)):
            old, new = self.settings.get(key), settings.get(key)
            if old != new:
                diffs.append(f"{key}: {old!r} → {new!r}")
        for name in sorted(set(self.inputs) | set(inputs)):
            old, new = self.inputs.get(name), inputs.get(name)
            if old is None:
                diffs.append(f"new input {name}")
            elif new is None:
                diffs.append(f"input {name} no longer selected")
            elif old != new:
                diffs.append(f"input {name} changed")
        return diffs

    def changed_outputs(self, output_dir: str | os.PathLike) -> list[str]:
        """Recorded outputs that are missing or were modified since."""
        changed = []
        for rel, meta in self.outputs.items():
            path = Path(output_dir) / rel
            try:
                stat = path.stat()
            except OSError:
                changed.append(rel)
                continue
            if [stat.st_size, stat.st_mtime_ns] != list(meta):
                changed.append(rel)
        return changed


def normalize(settings: dict) -> dict:
    """Settings as JSON values (tuples become lists), so a record compares equal after loading."""
    return json.loads(json.dumps(settings, sort_keys=True, default=str))


def is_finished(output_dir: str | os.PathLike, key: str, what: str, settings: dict,
                inputs: dict, overwrite: bool) -> bool:
    """Whether the step ``key`` already finished with these settings and inputs.

    Raises :class:`~xaibids.errors.XaibidsError` when it finished with other settings or inputs
    and ``overwrite`` is false; ``what`` names the step in the messages.
    """
    if overwrite:
        return False
    record = CompletionRecord.load(output_dir, key)
    if record is None:
        return False
    diffs = record.differences(normalize(settings), inputs)
    if diffs:
        shown = "; ".join(diffs[:6]) + (f"; and {len(diffs) - 6} more" if len(diffs) > 6 else "")
        raise XaibidsError(
            f"{Path(output_dir)} already holds {what}, made with other settings or inputs "
            f"({shown}). Pass --overwrite to recompute and replace them, or choose another "
            f"OUTPUT_DIR. The earlier run is recorded in {CompletionRecord.path(output_dir, key)}."
        )
    changed = record.changed_outputs(output_dir)
    if changed:
        LOGGER.warning("%s: %d output file(s) were removed or changed since the run of %s (e.g. "
                       "%s); computing them again.", what, len(changed), record.finished,
                       changed[0])
        return False
    return True


def record_completion(output_dir: str | os.PathLike, key: str, settings: dict, inputs: dict,
                      outputs: dict, run_uuid: str, version: str) -> Path:
    """Save the record of a finished step, removing the files an earlier record of the same step
    listed that this run did not write again (they belong to replaced results)."""
    old = CompletionRecord.load(output_dir, key)
    if old is not None:
        for rel in sorted(set(old.outputs) - set(outputs)):
            stale = Path(output_dir) / rel
            if stale.is_file():
                stale.unlink()
                LOGGER.info("Removed %s (an output of the replaced run).", rel)
    return CompletionRecord(key=key, settings=normalize(settings), inputs=inputs,
                            outputs=outputs, run_uuid=run_uuid, version=version).save(output_dir)


def refresh_outputs(output_dir: str | os.PathLike, paths) -> None:
    """Record the new size and time of outputs rewritten on purpose (``--reports-only``), so the
    next rerun does not take them for edited results."""
    root = Path(output_dir)
    rels = {Path(p).resolve().relative_to(root.resolve()).as_posix() for p in paths}
    for record_file in sorted((root / "logs" / "finished").glob("*.json")):
        record = CompletionRecord.load(root, record_file.stem)
        if record is None or not rels & set(record.outputs):
            continue
        for rel in rels & set(record.outputs):
            stat = (root / rel).stat()
            record.outputs[rel] = [stat.st_size, stat.st_mtime_ns]
        record.save(root)
