"""The output derivatives dataset: ``dataset_description.json``, ``.bidsignore``, BIDS URIs.

Files shared by all subjects are written atomically (temporary name, then ``os.replace``) so a
crash never leaves a half-written file.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from xaibids import __url__, __version__

#: What the BIDS validator cannot name; written to ``OUTPUT_DIR/.bidsignore``.
BIDSIGNORE = (
    "*_timeseries.tsv",
    "*_timeseries.json",
    "*_attribution.tsv",
    "*_attribution.json",
    "*_attribution.nii.gz",
    "*.html",
    "group",
    "logs",
    "figures",
)


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` through a temporary file in the same folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


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
    """Write (or refresh) the derivative dataset's description."""
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
    links = dataset_links(bids_dir, derivatives)
    description = {
        "Name": "xaibids derivatives",
        "BIDSVersion": "1.10.0",
        "DatasetType": "derivative",
        "GeneratedBy": [generated_by],
        "SourceDatasets": [{"URL": url} for url in links.values()],
        "DatasetLinks": links,
        "HowToAcknowledge": "Cite xaibids and the methods listed in logs/CITATION.md.",
    }
    return atomic_write_text(Path(output_dir) / "dataset_description.json",
                             json.dumps(description, indent=2) + "\n")


def write_bidsignore(output_dir: str | Path) -> Path:
    """Write ``.bidsignore`` keeping any lines a user added."""
    path = Path(output_dir) / ".bidsignore"
    lines = path.read_text().splitlines() if path.exists() else []
    lines += [line for line in BIDSIGNORE if line not in lines]
    return atomic_write_text(path, "\n".join(lines) + "\n")
