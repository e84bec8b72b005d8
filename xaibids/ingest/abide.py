"""ABIDE Preprocessed Connectomes Project (PCP) ROI timecourses → BIDS.

Input: the PCP's per-subject ROI files ``<SITE>_<00SUBID>_rois_<atlas>.1D`` (one header line of
``#k`` names, where ``k`` is the region's label in the atlas image, then one row per volume, one
column per region) and the ABIDE phenotypic CSV (``SUB_ID``, ``DX_GROUP`` with 1 = ASD and
2 = control, ``SEX`` with 1 = male and 2 = female, ``SITE_ID``, ``AGE_AT_SCAN``; -9999 means
missing).

Output (``OUT_DIR``)::

    OUT_DIR/                                   BIDS raw dataset
      dataset_description.json  README  participants.tsv  participants.json
      sub-<SUBID>/sub-<SUBID>_scans.tsv        (empty: the raw images are not part of the input)
      derivatives/abide-pcp-<atlas>/           timeseries derivatives dataset
        dataset_description.json  README  .bidsignore
        atlas-<ATLAS>_dseg.tsv  (+ atlas-<ATLAS>_dseg.nii.gz/.json with --atlas-image)
        sub-<SUBID>/func/sub-<SUBID>_task-rest_atlas-<ATLAS>_stat-mean_timeseries.tsv (+ .json)

Subjects are matched to phenotypic rows by the numeric id in the file name (``0051030`` ↔
``SUB_ID`` 51030); the participant label is that id zero-padded to seven digits, as in the
file names. Columns are named ``<ATLAS>_<k>`` from the ``#k`` header; column ``k`` is label
``k`` of the atlas (for CC200: ``CPAC200_space-MNI152NLin6_res-2x2x2.nii.gz``). Regions whose
timecourse is flat (zero variance, e.g. outside the subject's field of view) are written as
``n/a`` and counted in a warning.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nb
import numpy as np
import pandas as pd

from xaibids import __version__
from xaibids.features.io import write_timeseries_tsv
from xaibids.ingest import IngestError
from xaibids.simulate import bidsio

LOGGER = logging.getLogger("xaibids.ingest")
TOOL = "xaibids-ingest"
TASK = "rest"

#: Readable levels for the coded phenotypic columns.
DIAGNOSIS_LEVELS = {1: "ASD", 2: "control"}
SEX_LEVELS = {1: "M", 2: "F"}
#: Repetition time (s) of each ABIDE I site, from the ABIDE I scan-parameter tables as commonly
#: reported; override with ``repetition_time`` (``--repetition-time``).
ABIDE_TR = {
    "CALTECH": 2.0, "CMU": 2.0, "KKI": 2.5, "LEUVEN_1": 1.656, "LEUVEN_2": 1.656,
    "MAX_MUN": 3.0, "NYU": 2.0, "OHSU": 2.5, "OLIN": 1.5, "PITT": 1.5, "SBL": 2.2, "SDSU": 2.0,
    "STANFORD": 2.0, "TRINITY": 2.0, "UCLA_1": 3.0, "UCLA_2": 3.0, "UM_1": 2.0, "UM_2": 2.0,
    "USM": 2.0, "YALE": 2.0,
}
#: Parcellations of the PCP ROI files whose image is known (column ``#k`` ↔ label ``k``).
KNOWN_ATLASES = {
    "cc200": "Craddock 200-region parcellation as distributed with C-PAC "
             "(CPAC200_space-MNI152NLin6_res-2x2x2.nii.gz)",
    "cc400": "Craddock 400-region parcellation as distributed with C-PAC "
             "(CPAC400_space-MNI152NLin6_res-2x2x2.nii.gz)",
}
REQUIRED_COLUMNS = ("SUB_ID", "DX_GROUP", "SEX", "SITE_ID", "AGE_AT_SCAN")
MISSING_CODE = -9999


@dataclass
class IngestReport:
    """What an ingest did (also printed by the CLI)."""

    out_dir: Path
    n_subjects: int
    n_files: int
    unmatched_files: list[str] = field(default_factory=list)
    flat_regions: dict[str, list[str]] = field(default_factory=dict)

    @property
    def n_flat(self) -> int:
        return sum(len(v) for v in self.flat_regions.values())


def atlas_label(atlas: str) -> str:
    label = re.sub(r"[^A-Za-z0-9]", "", atlas).upper()
    if not label:
        raise IngestError(f"--atlas {atlas!r} has no letters or digits; use e.g. --atlas cc200.")
    return label


def find_roi_files(rois_dir: Path, atlas: str) -> dict[int, Path]:
    """Map the numeric subject id of every ``*_rois_<atlas>.1D`` file in ``rois_dir`` to it."""
    rois_dir = Path(rois_dir)
    if not rois_dir.is_dir():
        raise IngestError(
            f"ROIS_DIR {rois_dir} is not an existing folder; pass the folder that holds the "
            f"ABIDE PCP '*_rois_{atlas}.1D' files.")
    pattern = re.compile(rf"^(?P<site>.+?)_(?P<id>\d+)_rois_{re.escape(atlas)}\.1D$")
    found: dict[int, Path] = {}
    for path in sorted(rois_dir.iterdir()):
        match = pattern.match(path.name)
        if not match or not path.is_file():
            continue
        sub_id = int(match.group("id"))
        if sub_id in found:
            raise IngestError(
                f"{path} and {found[sub_id]} have the same subject id {sub_id}; keep one file "
                "per subject in ROIS_DIR.")
        found[sub_id] = path
    if not found:
        raise IngestError(
            f"ROIS_DIR {rois_dir} holds no '*_rois_{atlas}.1D' files; check the folder and "
            f"that --atlas ({atlas}) matches the file names (e.g. NYU_0051030_rois_{atlas}.1D).")
    return found


def read_roi_file(path: Path) -> tuple[np.ndarray, list[int]]:
    """Read a PCP ``.1D`` file: ``(n_volumes, n_regions)`` data and the header's labels ``k``."""
    path = Path(path)
    try:
        with open(path, encoding="utf-8") as fobj:
            header = fobj.readline().split()
            data = np.loadtxt(fobj, ndmin=2)
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise IngestError(
            f"{path} is not a readable ABIDE PCP ROI file ({err}); expected a header line of "
            "'#k' region names followed by rows of numbers.") from None
    if not header or not all(re.fullmatch(r"#\d+", h) for h in header):
        raise IngestError(
            f"{path} does not start with a header line of '#k' region names (e.g. '#1 #2 …'); "
            "pass the PCP '*_rois_<atlas>.1D' files unchanged.")
    if data.size == 0 or data.shape[1] != len(header):
        raise IngestError(
            f"{path} has {0 if data.size == 0 else data.shape[1]} data column(s) for "
            f"{len(header)} header names; the file is truncated or damaged.")
    return data, [int(h[1:]) for h in header]


def read_phenotypic(csv_path: Path) -> pd.DataFrame:
    """The phenotypic rows indexed by ``SUB_ID`` (readable levels, -9999 → missing)."""
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise IngestError(
            f"PHENOTYPIC_CSV {csv_path} does not exist; pass the ABIDE phenotypic file "
            "(e.g. Phenotypic_V1_0b_preprocessed1.csv).")
    try:
        table = pd.read_csv(csv_path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise IngestError(f"{csv_path} is not a readable CSV file ({err}).") from None
    missing = [c for c in REQUIRED_COLUMNS if c not in table.columns]
    if missing:
        raise IngestError(
            f"{csv_path} lacks the column(s) {', '.join(missing)}; pass the ABIDE phenotypic "
            f"CSV, which has {', '.join(REQUIRED_COLUMNS)}.")
    table = table[list(REQUIRED_COLUMNS)].copy()
    ids = pd.to_numeric(table["SUB_ID"], errors="coerce")
    if ids.isna().any():
        raise IngestError(f"{csv_path} has non-numeric SUB_ID values; fix or remove those rows.")
    table["SUB_ID"] = ids.astype(int)
    dup = table["SUB_ID"][table["SUB_ID"].duplicated()].unique()
    if len(dup):
        raise IngestError(f"{csv_path} lists SUB_ID {dup[0]} more than once; keep one row each.")
    table = table.set_index("SUB_ID")
    for col in ("DX_GROUP", "SEX", "AGE_AT_SCAN"):
        table[col] = pd.to_numeric(table[col], errors="coerce")
        table.loc[table[col] == MISSING_CODE, col] = np.nan
    return table


def participants_table(pheno: pd.DataFrame, ids: list[int], csv_path: Path) -> pd.DataFrame:
    rows = []
    for sub_id in ids:
        row = pheno.loc[sub_id]
        dx, sex = row["DX_GROUP"], row["SEX"]
        if dx not in DIAGNOSIS_LEVELS:
            raise IngestError(
                f"{csv_path}: SUB_ID {sub_id} has DX_GROUP {dx}, expected 1 (ASD) or 2 "
                "(control); fix the row or remove the subject's ROI file.")
        rows.append({
            "participant_id": f"sub-{sub_id:07d}",
            "diagnosis": DIAGNOSIS_LEVELS[int(dx)],
            "sex": SEX_LEVELS.get(int(sex)) if sex == sex else None,
            "site": str(row["SITE_ID"]),
            "age": float(row["AGE_AT_SCAN"]) if row["AGE_AT_SCAN"] == row["AGE_AT_SCAN"] else None,
        })
    return pd.DataFrame(rows)


PARTICIPANT_COLUMNS = {
    "diagnosis": {"Description": "Diagnostic group (ABIDE phenotypic DX_GROUP).",
                  "Levels": {"ASD": "autism spectrum disorder (DX_GROUP = 1)",
                             "control": "typically developing control (DX_GROUP = 2)"}},
    "sex": {"Description": "Sex (ABIDE phenotypic SEX).",
            "Levels": {"M": "male (SEX = 1)", "F": "female (SEX = 2)"}},
    "site": {"Description": "Acquisition site (ABIDE phenotypic SITE_ID)."},
    "age": {"Description": "Age at scan (ABIDE phenotypic AGE_AT_SCAN).", "Units": "year"},
}


def _atlas_files(atlas_image: Path | None, label: str, regions: list[int], deriv: Path) -> dict:
    """Write the atlas labels table (and image, if given); return sidecar metadata."""
    names = [f"{label}_{k}" for k in regions]
    labels = pd.DataFrame({"index": regions, "name": names})
    meta: dict = {"Atlas": label}
    if atlas_image is not None:
        atlas_image = Path(atlas_image)
        if not atlas_image.is_file():
            raise IngestError(f"--atlas-image {atlas_image} does not exist; pass the atlas NIfTI "
                              "(e.g. CPAC200_space-MNI152NLin6_res-2x2x2.nii.gz) or leave it out.")
        try:
            img = nb.load(atlas_image)
            values = set(np.unique(np.asarray(img.dataobj)).astype(int).tolist())
        except Exception as err:  # nibabel raises several kinds
            raise IngestError(f"--atlas-image {atlas_image} is not a readable NIfTI ({err}).") \
                from None
        absent = [k for k in regions if k not in values]
        if absent:
            raise IngestError(
                f"--atlas-image {atlas_image} lacks label(s) {absent[:5]} that the ROI files "
                "use; pass the atlas the files were extracted with.")
        centers = _neuroparc_centers(atlas_image)
        if centers:
            for axis, key in enumerate("xyz"):
                labels[key] = [centers.get(k, (np.nan,) * 3)[axis] for k in regions]
        if atlas_image.name.endswith(".nii.gz"):
            shutil.copyfile(atlas_image, deriv / f"atlas-{label}_dseg.nii.gz")
        else:
            bidsio.save_nifti(img, deriv / f"atlas-{label}_dseg.nii.gz")
        space = re.search(r"space-([A-Za-z0-9]+)", atlas_image.name)
        bidsio.write_json(deriv / f"atlas-{label}_dseg.json", {
            "Description": f"Atlas of the timeseries columns: column '{label}_k' is label k.",
            "SourceFile": atlas_image.name,
            "SpatialReference": space.group(1) if space else "unknown"})
        meta["AtlasImage"] = f"atlas-{label}_dseg.nii.gz"
        meta["AtlasSourceFile"] = atlas_image.name
    bidsio.write_tsv(labels, deriv / f"atlas-{label}_dseg.tsv")
    meta["AtlasLabels"] = f"atlas-{label}_dseg.tsv"
    return meta


def _neuroparc_centers(atlas_image: Path) -> dict[int, tuple]:
    """Region centres (mm) from a neuroparc JSON beside the atlas, if there is one."""
    sidecar = atlas_image.with_name(atlas_image.name.split(".nii")[0] + ".json")
    try:
        rois = json.loads(sidecar.read_text())["rois"]
        return {int(k): tuple(float(c) for c in v["center"]) for k, v in rois.items()
                if k != "0" and v.get("center")}
    except (OSError, KeyError, ValueError, TypeError, AttributeError):
        return {}


def ingest_abide_pcp(rois_dir, phenotypic_csv, out_dir, atlas: str = "cc200",
                     atlas_image=None, repetition_time: float | None = None,
                     overwrite: bool = False) -> IngestReport:
    """Convert ABIDE PCP ROI files + phenotypic CSV into BIDS (see the module docstring).

    Raises :class:`~xaibids.ingest.IngestError` (one sentence naming the file and the fix)
    before anything is written, or leaves no output if writing fails.
    """
    atlas = atlas.lower()
    label = atlas_label(atlas)
    bidsio.check_output_dir(out_dir, overwrite)
    files = find_roi_files(Path(rois_dir), atlas)
    pheno = read_phenotypic(Path(phenotypic_csv))
    matched = sorted(sub_id for sub_id in files if sub_id in pheno.index)
    unmatched = [files[s].name for s in files if s not in pheno.index]
    if not matched:
        raise IngestError(
            f"None of the {len(files)} ROI files in {rois_dir} matches a SUB_ID of "
            f"{phenotypic_csv}; pass the phenotypic CSV of the same ABIDE release.")
    if unmatched:
        LOGGER.warning("%d ROI file(s) have no phenotypic row and are skipped: %s",
                       len(unmatched), ", ".join(unmatched[:5]))
    participants = participants_table(pheno, matched, Path(phenotypic_csv))
    sites = sorted(set(participants["site"]))
    if repetition_time is None:
        unknown = [s for s in sites if s not in ABIDE_TR]
        if unknown:
            raise IngestError(
                f"The repetition time of site(s) {', '.join(unknown)} in {phenotypic_csv} is "
                "not known to xaibids; pass --repetition-time SECONDS.")
    elif repetition_time <= 0:
        raise IngestError("--repetition-time must be a positive number of seconds.")

    report = IngestReport(out_dir=Path(out_dir), n_subjects=len(matched), n_files=len(files),
                          unmatched_files=unmatched)
    deriv_name = f"abide-pcp-{atlas}"
    regions_ref: list[int] | None = None
    ref_file = None
    with bidsio.staged_output(out_dir, overwrite) as root:
        deriv = root / "derivatives" / deriv_name
        deriv.mkdir(parents=True)
        for sub_id, part in zip(matched, participants.itertuples(index=False)):
            data, regions = read_roi_file(files[sub_id])
            if regions_ref is None:
                regions_ref, ref_file = regions, files[sub_id]
            elif regions != regions_ref:
                raise IngestError(
                    f"{files[sub_id]} has regions {_describe(regions)} but {ref_file.name} has "
                    f"{_describe(regions_ref)}; pass files of one atlas only.")
            flat = np.nanstd(data, axis=0) == 0
            data = np.where(flat[None, :], np.nan, data)
            names = [f"{label}_{k}" for k in regions]
            lab = f"{sub_id:07d}"
            if flat.any():
                report.flat_regions[f"sub-{lab}"] = [n for n, f in zip(names, flat) if f]
            func = deriv / f"sub-{lab}" / "func"
            func.mkdir(parents=True)
            stem = f"sub-{lab}_task-{TASK}_atlas-{label}_stat-mean_timeseries"
            write_timeseries_tsv(data, names, func / f"{stem}.tsv")
            tr = float(repetition_time or ABIDE_TR[part.site])
            bidsio.write_json(func / f"{stem}.json", {
                "Description": f"ABIDE PCP ROI timecourses ({label}): one row per volume, one "
                               f"column per region; column '{label}_k' is label k of the atlas.",
                "Sources": [files[sub_id].name],
                "Atlas": label,
                "AtlasDescription": KNOWN_ATLASES.get(atlas, f"the {atlas} parcellation of the "
                                                             "PCP files"),
                "AtlasLabels": f"atlas-{label}_dseg.tsv",
                "RepetitionTime": tr,
                "SamplingFrequency": 1.0 / tr,
                "FlatRegions": report.flat_regions.get(f"sub-{lab}", []),
            })
        atlas_meta = _atlas_files(atlas_image, label, regions_ref, deriv)
        _write_metadata(root, deriv, participants, atlas, label, atlas_meta, repetition_time,
                        sites, report)
    if report.flat_regions:
        LOGGER.warning("%d flat (zero-variance) region timecourse(s) in %d subject(s) were "
                       "written as n/a.", report.n_flat, len(report.flat_regions))
    return report


def _describe(regions: list[int]) -> str:
    return f"#{regions[0]}…#{regions[-1]} ({len(regions)})" if regions else "none"


def _write_metadata(root: Path, deriv: Path, participants: pd.DataFrame, atlas: str, label: str,
                    atlas_meta: dict, repetition_time, sites, report: IngestReport) -> None:
    bidsio.write_dataset_description(
        root, "ABIDE I (Preprocessed Connectomes Project ROI timecourses)", "raw", TOOL,
        "Participants of ABIDE PCP ROI files converted to BIDS.",
        extra={"License": "CC BY-NC-SA 3.0 (ABIDE)",
               "Authors": ["Autism Brain Imaging Data Exchange (ABIDE)",
                           "Preprocessed Connectomes Project"],
               "ReferencesAndLinks": ["http://preprocessed-connectomes-project.org/abide/"]})
    bidsio.write_participants(root, participants, PARTICIPANT_COLUMNS)
    bidsio.write_scans_placeholders(root, [p[len("sub-"):] for p in participants.participant_id])
    bidsio.write_dataset_description(
        deriv, f"ABIDE PCP ROI timecourses ({label})", "derivative", TOOL,
        f"ABIDE PCP '*_rois_{atlas}.1D' files rewritten as XCP-D-style timeseries.",
        extra={"License": "CC BY-NC-SA 3.0 (ABIDE)",
               "SourceDatasets": [{"URL": "http://preprocessed-connectomes-project.org/abide/"}]})
    bidsio.write_bidsignore(deriv, ["*_timeseries.tsv", "*_timeseries.json", "atlas-*"])
    counts = participants.groupby(["site", "diagnosis"]).size()
    table = "\n".join(f"| {site} | {counts.get((site, 'ASD'), 0)} | "
                      f"{counts.get((site, 'control'), 0)} |" for site in sites)
    trs = (f"{repetition_time:g} s for every site (--repetition-time)" if repetition_time else
           ", ".join(f"{s} {ABIDE_TR[s]:g} s" for s in sites))
    flat = (f"{report.n_flat} flat (zero-variance) region timecourse(s) in "
            f"{len(report.flat_regions)} participant(s) are `n/a` (listed in each sidecar's "
            "`FlatRegions`)." if report.flat_regions else "No region timecourse was flat.")
    text = f"""# ABIDE I — Preprocessed Connectomes Project ROI timecourses ({label})

Converted by `{TOOL}` (xaibids {__version__}) from the ABIDE PCP files `*_rois_{atlas}.1D` and
the ABIDE phenotypic CSV. {report.n_subjects} participants (files matched to phenotypic rows by
the numeric subject id in the file name; {len(report.unmatched_files)} file(s) without a
phenotypic row skipped).

| site | ASD | control |
|---|---|---|
{table}

## Layout

- `participants.tsv`: `participant_id` (`sub-` + the seven-digit ABIDE id of the file names),
  `diagnosis` (`ASD` = DX_GROUP 1, `control` = DX_GROUP 2), `sex` (`M` = SEX 1, `F` = SEX 2),
  `site` (SITE_ID), `age` (AGE_AT_SCAN, years); see `participants.json`.
- `sub-<label>/sub-<label>_scans.tsv`: empty; the raw images are not part of this dataset.
- `derivatives/abide-pcp-{atlas}/sub-<label>/func/`
  `sub-<label>_task-rest_atlas-{label}_stat-mean_timeseries.tsv`:
  one row per volume, one column per region; column `{label}_k` comes from header `#k` of the
  `.1D` file and is label `k` of the atlas (labels in `atlas-{label}_dseg.tsv`; for CC200 the
  image is `CPAC200_space-MNI152NLin6_res-2x2x2.nii.gz`). {flat}
  `RepetitionTime`: {trs}.

Licence of the data: ABIDE, CC BY-NC-SA (research use).
"""
    bidsio.write_text(root / "README", text)
    bidsio.write_text(deriv / "README", text)
