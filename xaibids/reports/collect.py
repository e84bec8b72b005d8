"""Find and read what an xaibids output folder holds, for the reports.

Everything here reads files only: the reports can be rebuilt (``--reports-only``) from any
finished output folder, also one moved to another machine.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlparse

import pandas as pd

ENTITY_RE = re.compile(r"([a-zA-Z0-9]+)-([a-zA-Z0-9+]+)")
ATTRIBUTION_RE = re.compile(r"_desc-(?P<method>[a-zA-Z0-9]+)_attribution\.tsv$")
VOLUME_ATTRIBUTION_RE = re.compile(r"_desc-(?P<method>[a-zA-Z0-9]+)_attribution\.nii(\.gz)?$")


def read_tsv(path: str | Path, **kwargs) -> pd.DataFrame:
    """A BIDS TSV (tab-separated, ``n/a`` for missing); names like ``NA`` stay strings."""
    return pd.read_csv(path, sep="\t", na_values=["n/a", ""], keep_default_na=False, **kwargs)


def read_json(path: str | Path) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}


def parse_entities(name: str) -> tuple[dict[str, str], str]:
    """``(entities, suffix)`` of a BIDS file name."""
    stem = name.split(".", 1)[0]
    parts = stem.split("_")
    suffix = parts[-1] if parts and "-" not in parts[-1] else ""
    entities = {}
    for part in parts[:-1] if suffix else parts:
        m = ENTITY_RE.fullmatch(part)
        if m:
            entities[m.group(1)] = m.group(2)
    return entities, suffix


def _key(entities: dict[str, str], drop=("desc", "space", "stat")) -> tuple:
    return tuple(sorted((k, v) for k, v in entities.items() if k not in drop))


@dataclass
class MethodMap:
    """One stabilized attribution map of one run: TSV, sidecar and optional NIfTI (a voxel map
    of ``--features t1`` has the NIfTI only: ``tsv`` is None)."""

    method: str
    tsv: Path | None
    sidecar: dict
    nifti: Path | None = None

    def table(self) -> pd.DataFrame:
        return read_tsv(self.tsv)


@dataclass
class RunMaps:
    """All methods' maps of one run (one source timeseries) of a subject."""

    key: tuple
    entities: dict[str, str]
    maps: dict[str, MethodMap] = field(default_factory=dict)
    timeseries: Path | None = None
    image: Path | None = None

    @property
    def label(self) -> str:
        """Human name of the run: its entities other than ``sub``."""
        parts = [f"{k}-{v}" for k, v in self.entities.items() if k not in ("sub", "desc", "space")]
        return "_".join(parts) or "run"

    @property
    def anchor(self) -> str:
        return re.sub(r"[^a-zA-Z0-9_-]", "", self.label)


@dataclass
class SubjectMaps:
    label: str
    runs: list[RunMaps]

    @property
    def methods(self) -> list[str]:
        return sorted({m for run in self.runs for m in run.maps})


def dataset_links(output_dir: Path) -> dict[str, Path]:
    """``DatasetLinks`` of the output's ``dataset_description.json`` as local folders."""
    desc = read_json(output_dir / "dataset_description.json")
    links = {"": output_dir}
    for name, uri in (desc.get("DatasetLinks") or {}).items():
        parsed = urlparse(str(uri))
        if parsed.scheme in ("file", ""):
            links[name] = Path(unquote(parsed.path))
    return links


def resolve_bids_uri(uri: str, links: dict[str, Path]) -> Path | None:
    """Local path of ``bids:<dataset>:<path>`` (``None`` if unknown or missing)."""
    if not isinstance(uri, str) or not uri.startswith("bids:"):
        path = Path(str(uri))
        return path if path.is_absolute() and path.exists() else None
    try:
        _, name, rel = uri.split(":", 2)
    except ValueError:
        return None
    root = links.get(name)
    if root is None:
        return None
    path = root / rel.lstrip("/")
    return path if path.exists() else None


def find_subject_maps(output_dir: str | Path, subjects=None) -> list[SubjectMaps]:
    """Every subject with attribution maps under ``output_dir`` (optionally only ``subjects``,
    given with or without the ``sub-`` prefix)."""
    output_dir = Path(output_dir)
    wanted = None if subjects is None else {str(s).removeprefix("sub-") for s in subjects}
    links = dataset_links(output_dir)
    by_subject: dict[str, dict[tuple, RunMaps]] = {}
    for tsv in sorted(output_dir.glob("sub-*/**/*_attribution.tsv")):
        m = ATTRIBUTION_RE.search(tsv.name)
        if not m:
            continue
        entities, _ = parse_entities(tsv.name)
        label = entities.get("sub")
        if not label or (wanted is not None and label not in wanted):
            continue
        key = _key(entities)
        run = by_subject.setdefault(label, {}).setdefault(
            key, RunMaps(key, {k: v for k, v in entities.items() if k != "desc"}))
        sidecar = read_json(tsv.with_suffix(".json"))
        method = m.group("method")
        nifti = None
        for cand in sorted(tsv.parent.glob(f"*_desc-{method}_attribution.nii*")):
            cand_entities, _ = parse_entities(cand.name)
            if _key(cand_entities) == key:
                nifti = cand
                break
        run.maps[method] = MethodMap(method, tsv, sidecar, nifti)
        if run.timeseries is None:
            run.timeseries = _find_timeseries(tsv, sidecar, key, links)
    for nifti in sorted(output_dir.glob("sub-*/**/*_attribution.nii*")):
        m = VOLUME_ATTRIBUTION_RE.search(nifti.name)
        entities, _ = parse_entities(nifti.name)
        label = entities.get("sub")
        if not m or not label or (wanted is not None and label not in wanted):
            continue
        key = _key(entities)
        run = by_subject.setdefault(label, {}).setdefault(
            key, RunMaps(key, {k: v for k, v in entities.items() if k != "desc"}))
        if m.group("method") in run.maps:  # the NIfTI of a timecourse map (TSV first)
            continue
        sidecar = read_json(nifti.with_name(nifti.name.split(".", 1)[0] + ".json"))
        run.maps[m.group("method")] = MethodMap(m.group("method"), None, sidecar, nifti)
        if run.image is None:
            run.image = next((path for uri in sidecar.get("Sources") or []
                              if (path := resolve_bids_uri(uri, links)) is not None), None)
    return [SubjectMaps(label, list(runs.values())) for label, runs in sorted(by_subject.items())]


def _find_timeseries(tsv: Path, sidecar: dict, key: tuple, links: dict[str, Path]) -> Path | None:
    """The input timecourses of a map: its ``Sources`` first, then a file of the same entities
    beside it in the output folder."""
    for uri in sidecar.get("Sources") or []:
        path = resolve_bids_uri(uri, links)
        if path is not None and path.name.endswith("_timeseries.tsv"):
            return path
    for cand in sorted(tsv.parent.glob("*_timeseries.tsv")):
        if _key(parse_entities(cand.name)[0]) == key:
            return cand
    return None


def find_atlas(output_dir: str | Path, name: str | None = None) -> tuple[Path, Path] | None:
    """``(dseg NIfTI, labels TSV)`` of the atlas saved in the output folder, if any (the one
    whose ``atlas-`` label is ``name`` first)."""
    found = find_atlases(output_dir, name)
    return found[0] if found else None


def find_atlases(output_dir: str | Path, name: str | None = None) -> list[tuple[Path, Path]]:
    """Every ``(dseg NIfTI, labels TSV)`` saved in the output folder, those labelled ``name``
    first.

    Looks under ``atlases/`` first (``atlases/atlas-<a>/atlas-<a>[_space-<s>]_dseg.nii.gz``),
    then anywhere outside the subject folders.
    """
    output_dir = Path(output_dir)
    candidates = sorted(output_dir.glob("atlases/**/*_dseg.nii*"))
    if not candidates:
        candidates = sorted(p for p in output_dir.glob("**/*atlas-*_dseg.nii*")
                            if not p.relative_to(output_dir).parts[0].startswith("sub-"))
    if name:
        candidates.sort(key=lambda p: parse_entities(p.name)[0].get("atlas") != name)
    out = []
    for nifti in candidates:
        stem = nifti.name.split(".", 1)[0]
        labels = [nifti.with_name(stem + ".tsv")]
        entities, _ = parse_entities(nifti.name)
        labels.append(nifti.with_name(f"atlas-{entities.get('atlas', '')}_dseg.tsv"))
        labels += sorted(nifti.parent.glob("*_dseg.tsv"))
        for tsv in labels:
            if tsv.exists():
                out.append((nifti, tsv))
                break
    return out


def group_methods(group_dir: Path) -> list[str]:
    """Methods that have a group importance table, or a group voxel map alone (a grid in no
    template space)."""
    found = []
    for path in sorted(group_dir.glob("desc-*_importance.*")):
        m = re.fullmatch(r"desc-([a-zA-Z0-9]+)_importance\.(tsv|nii\.gz)", path.name)
        if m and m.group(1) not in found:
            found.append(m.group(1))
    return found


def relmat_classes(group_dir: Path, desc: str) -> dict[str, Path]:
    """``class → path`` of ``desc-<desc>_class-<c>_relmat.tsv`` files."""
    out = {}
    for path in sorted(group_dir.glob(f"desc-{desc}_class-*_relmat.tsv")):
        m = re.fullmatch(rf"desc-{re.escape(desc)}_class-([a-zA-Z0-9]+)_relmat\.tsv", path.name)
        if m:
            out[m.group(1)] = path
    return out


def read_square(path: Path) -> pd.DataFrame:
    """A square matrix TSV whose first column names the rows (``node``/``method``)."""
    table = read_tsv(path)
    first = table.columns[0]
    table[first] = table[first].astype(str)
    matrix = table.set_index(first)
    matrix.index.name = None
    matrix.columns = [str(c) for c in matrix.columns]
    return matrix.apply(pd.to_numeric, errors="coerce")
