"""How a set of timeseries were cleaned (and censored), read from their sidecars.

The timeseries files themselves are read and written by :mod:`xaibids.fileio`.
"""

from __future__ import annotations

import json
from pathlib import Path

#: Sidecar entries of xaibids' timeseries that record the cleaning, and the option of each.
CLEANING_SIDECAR_KEYS = {
    "ConfoundStrategy": "confounds",
    "Detrend": "detrend",
    "Standardize": "standardize",
    "HighPass": "high_pass",
    "LowPass": "low_pass",
    "CoverageThreshold": "min_coverage",
}


def read_sidecar(path) -> dict:
    """The JSON sidecar of a timeseries file (``<name>.json`` beside ``<name>.tsv``); empty
    when there is none or it cannot be read."""
    path = Path(path)
    sidecar = path.with_name(path.name.split(".")[0] + ".json")
    try:
        return json.loads(sidecar.read_text()) if sidecar.is_file() else {}
    except (OSError, ValueError):
        return {}


def censored_share(path) -> float | None:
    """The share of a run's volumes its sidecar records as censored (``NumberOfVolumes``,
    ``NumberOfVolumesKept``, written by the participant level), or None when not recorded."""
    meta = read_sidecar(path)
    total, kept = meta.get("NumberOfVolumes"), meta.get("NumberOfVolumesKept")
    if not isinstance(total, int) or not isinstance(kept, int) or total <= 0:
        return None
    return 1.0 - kept / total


def recorded_cleaning(paths) -> dict | None:
    """How a set of timeseries TSVs were cleaned, read from their JSON sidecars.

    Returns the options (``confounds``, ``detrend``, ``standardize``, ``high_pass``,
    ``low_pass``, ``min_coverage``; a filter that was off is 0.0) shared by every file, or None
    when no sidecar records them (timecourses made by another tool, e.g. XCP-D).

    Raises
    ------
    ValueError
        When the files were cleaned differently (naming two of them and the fix), or only some
        of them record it: one analysis must not mix timecourses cleaned in different ways.
    """
    paths = [Path(p) for p in paths]
    found = {}
    for path in paths:
        meta = read_sidecar(path)
        if "ConfoundStrategy" in meta:
            found[path] = {option: meta.get(key) for key, option in CLEANING_SIDECAR_KEYS.items()}
            for option in ("high_pass", "low_pass"):
                found[path][option] = float(found[path][option] or 0.0)
    if not found:
        return None
    if len(found) < len(paths):
        missing = next(p for p in paths if p not in found)
        raise ValueError(
            f"Some timeseries record how they were cleaned and others do not (e.g. {missing} has "
            "no 'ConfoundStrategy' in its sidecar); analyse timecourses of one origin together "
            "(--participant-label, -d).")
    first, *others = found.items()
    for path, settings in others:
        differ = {k: (first[1][k], v) for k, v in settings.items() if first[1][k] != v}
        if differ:
            what = ", ".join(f"{k} {a!r} in {first[0].name} but {b!r} in {path.name}"
                             for k, (a, b) in differ.items())
            raise ValueError(
                f"The timeseries were cleaned with different settings ({what}); one analysis "
                "must use one cleaning. Run the participant level again for every subject with "
                "the settings you want (with --overwrite), then the group level.")
    return dict(first[1])
