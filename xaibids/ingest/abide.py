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
        sub-<SUBID>/func/sub-<SUBID>_task-rest_atlas-<ATLAS>_stat-mean_timeseries.tsv (+ .json)
        atlases/                               the atlas, laid out like XCP-D's atlases dataset
          dataset_description.json
          atlas-<ATLAS>/atlas-<ATLAS>_dseg.tsv                         (without --atlas-image)
          atlas-<ATLAS>/atlas-<ATLAS>_space-<tpl>_res-<mm>_dseg.nii.gz (+ .tsv, .json with it)

Subjects are matched to phenotypic rows by the numeric id in the file name (``0051030`` ↔
``SUB_ID`` 51030); the participant label is that id zero-padded to seven digits, as in the
file names. Columns are named ``<ATLAS>_<k>`` from the ``#k`` header; column ``k`` is label
``k`` of the atlas (for CC200: ``CPAC200_space-MNI152NLin6_res-2x2x2.nii.gz``). Regions whose
timecourse is flat (zero variance, e.g. outside the subject's field of view) are written as
``n/a`` and counted in a warning.

With ``--atlas-image`` (the NIfTI, or a folder of neuroparc/C-PAC atlases holding
``CPAC200_*.nii.gz`` for cc200), the image is copied to ``atlases/atlas-<ATLAS>/`` under a BIDS
name whose ``atlas-`` label is the timeseries' ``atlas-`` entity and whose ``space-`` is the
TemplateFlow name of the source's space (neuroparc ``MNI152NLin6`` → ``MNI152NLin6Asym``), with a
labels TSV (``index`` k, ``name`` ``<ATLAS>_k``) beside it. ``xaibids … group --atlas`` with that
image (or with the ``atlases`` folder) then paints region importances into the atlas.
"""

from __future__ import annotations

import hashlib
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
from xaibids.fileio import write_timeseries_tsv
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
#: File-name prefix of the known atlases among neuroparc / C-PAC atlas files
#: (``--atlas-image FOLDER`` picks ``<prefix>_*.nii.gz`` there).
ATLAS_FILE_PREFIX = {"cc200": "CPAC200", "cc400": "CPAC400"}
#: neuroparc space names → TemplateFlow identifiers (neuroparc's MNI152NLin6 is FSL's MNI152).
SPACE_ALIASES = {"MNI152NLin6": "MNI152NLin6Asym"}
#: Folder of the derivatives dataset holding the atlas (BIDS-Atlas-like, as XCP-D's).
ATLAS_DIR = "atlases"
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
    #: participants whose ROI file holds exactly the data of an earlier one: (earlier, later)
    duplicates: list[tuple[str, str]] = field(default_factory=list)

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


@dataclass
class AtlasPlan:
    """Where and how the atlas of the timeseries columns is written (resolved before writing)."""

    label: str
    image: Path | None = None
    img: nb.Nifti1Image | None = None
    space: str | None = None
    res: str | None = None

    @property
    def stem(self) -> str:
        """``atlas-<label>[_space-<tpl>][_res-<mm>]_dseg`` (XCP-D's atlas naming)."""
        return (f"atlas-{self.label}" + (f"_space-{self.space}" if self.space else "")
                + (f"_res-{self.res}" if self.res else "") + "_dseg")

    @property
    def folder(self) -> str:
        return f"{ATLAS_DIR}/atlas-{self.label}"

    @property
    def labels_path(self) -> str:
        """Labels TSV, relative to the derivatives dataset."""
        return f"{self.folder}/{self.stem}.tsv"

    @property
    def image_path(self) -> str | None:
        return f"{self.folder}/{self.stem}.nii.gz" if self.image is not None else None


def find_atlas_image(atlas_image, atlas: str) -> Path | None:
    """``--atlas-image``: the NIfTI itself, or a folder holding the known file of ``atlas``."""
    if atlas_image is None:
        return None
    path = Path(atlas_image)
    if path.is_dir():
        prefix = ATLAS_FILE_PREFIX.get(atlas)
        found = sorted(path.glob(f"{prefix}_*.nii*")) if prefix else []
        if len(found) != 1:
            wanted = f"'{prefix}_*.nii.gz'" if prefix else "the atlas NIfTI"
            raise IngestError(
                f"--atlas-image {path} is a folder with {len(found)} file(s) named {wanted} for "
                f"--atlas {atlas}; pass the path of the atlas NIfTI itself.")
        return found[0]
    if not path.is_file():
        raise IngestError(f"--atlas-image {path} does not exist; pass the atlas NIfTI "
                          "(e.g. CPAC200_space-MNI152NLin6_res-2x2x2.nii.gz), a folder holding "
                          "it, or leave it out.")
    return path


def plan_atlas(atlas_image, atlas: str, label: str) -> AtlasPlan:
    """Read ``--atlas-image`` (if any) and choose the BIDS names of the atlas files."""
    path = find_atlas_image(atlas_image, atlas)
    if path is None:
        return AtlasPlan(label)
    try:
        img = nb.load(path)
        shape = img.shape
    except Exception as err:  # nibabel raises several kinds
        raise IngestError(f"--atlas-image {path} is not a readable NIfTI ({err}).") from None
    if len(shape) != 3:
        raise IngestError(f"--atlas-image {path} has shape {shape}; pass a 3D image of integer "
                          "region labels.")
    match = re.search(r"(?:space|tpl)-([A-Za-z0-9]+)", path.name)
    space = SPACE_ALIASES.get(match.group(1), match.group(1)) if match else None
    if space is None:
        LOGGER.warning("--atlas-image %s names no template space (space-<label>); the atlas "
                       "and the maps painted into it will carry no space entity.", path.name)
    zooms = [float(z) for z in img.header.get_zooms()[:3]]
    res = (f"{zooms[0]:g}" if len(set(zooms)) == 1 and zooms[0] == int(zooms[0]) else None)
    return AtlasPlan(label, image=path, img=img, space=space, res=res)


def _atlas_files(plan: AtlasPlan, regions: list[int], deriv: Path) -> None:
    """Write the BIDS-Atlas-like folder ``atlases/`` of the derivatives dataset.

    ``atlases/atlas-<label>/<stem>.tsv`` (``index``, ``name``, and ``x``, ``y``, ``z`` centres when
    a neuroparc JSON is beside the image) and, with an image, ``<stem>.nii.gz`` and ``.json``;
    ``<stem>`` is ``atlas-<label>_space-<tpl>_res-<mm>_dseg``, so that ``xaibids … --atlas`` with
    the image (or the ``atlases`` folder) yields atlas ``<label>``, whose region names are the
    timeseries columns.
    """
    label = plan.label
    names = [f"{label}_{k}" for k in regions]
    labels = pd.DataFrame({"index": regions, "name": names})
    folder = deriv / plan.folder
    folder.mkdir(parents=True)
    if plan.image is not None:
        values = set(np.unique(np.asarray(plan.img.dataobj)).astype(int).tolist())
        absent = [k for k in regions if k not in values]
        if absent:
            raise IngestError(
                f"--atlas-image {plan.image} lacks label(s) {absent[:5]} that the ROI files "
                "use; pass the atlas the files were extracted with.")
        centers = _neuroparc_centers(plan.image)
        if centers:
            for axis, key in enumerate("xyz"):
                labels[key] = [centers.get(k, (np.nan,) * 3)[axis] for k in regions]
        if plan.image.name.endswith(".nii.gz"):
            shutil.copyfile(plan.image, deriv / plan.image_path)
        else:
            bidsio.save_nifti(plan.img, deriv / plan.image_path)
        sidecar = {
            "Name": label,
            "Description": f"Atlas of the timeseries columns: column '{label}_k' is label k.",
            "SourceFile": plan.image.name,
        }
        if plan.space:
            sidecar["SpatialReference"] = plan.space
        if plan.res:
            sidecar["Resolution"] = f"{plan.res} mm isotropic"
        bidsio.write_json(deriv / plan.folder / f"{plan.stem}.json", sidecar)
    bidsio.write_tsv(labels, deriv / plan.labels_path)
    bidsio.write_dataset_description(
        deriv / ATLAS_DIR, f"{label} atlas of the ABIDE PCP timeseries", "derivative", TOOL,
        "Atlas of the ROI timecourses (labels table, and image when given), laid out like "
        "XCP-D's atlases dataset.")


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

    plan = plan_atlas(atlas_image, atlas, label)
    report = IngestReport(out_dir=Path(out_dir), n_subjects=len(matched), n_files=len(files),
                          unmatched_files=unmatched)
    deriv_name = f"abide-pcp-{atlas}"
    regions_ref: list[int] | None = None
    ref_file = None
    seen: dict[str, str] = {}  # data digest → first participant
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
            lab = f"{sub_id:07d}"
            digest = hashlib.sha256(np.ascontiguousarray(data).tobytes()).hexdigest()
            if digest in seen:
                report.duplicates.append((seen[digest], f"sub-{lab}"))
            seen.setdefault(digest, f"sub-{lab}")
            flat = np.nanstd(data, axis=0) == 0
            data = np.where(flat[None, :], np.nan, data)
            names = [f"{label}_{k}" for k in regions]
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
                "AtlasLabels": plan.labels_path,
                **({"AtlasImage": plan.image_path} if plan.image is not None else {}),
                "RepetitionTime": tr,
                "SamplingFrequency": 1.0 / tr,
                "FlatRegions": report.flat_regions.get(f"sub-{lab}", []),
            })
        _atlas_files(plan, regions_ref, deriv)
        _write_metadata(root, deriv, participants, atlas, label, plan, repetition_time,
                        sites, report)
    if report.duplicates:
        LOGGER.warning(
            "%d participant(s) have ROI timecourses identical to another's (%s); the files are "
            "kept as given, but check them: a subject in training and its copy in testing "
            "inflates accuracy.", len(report.duplicates),
            ", ".join(f"{b} = {a}" for a, b in report.duplicates[:5]))
    if report.flat_regions:
        LOGGER.warning("%d flat (zero-variance) region timecourse(s) in %d subject(s) were "
                       "written as n/a.", report.n_flat, len(report.flat_regions))
    return report


def _describe(regions: list[int]) -> str:
    return f"#{regions[0]}…#{regions[-1]} ({len(regions)})" if regions else "none"


def _write_metadata(root: Path, deriv: Path, participants: pd.DataFrame, atlas: str, label: str,
                    plan: AtlasPlan, repetition_time, sites, report: IngestReport) -> None:
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
    bidsio.write_bidsignore(deriv, ["*_timeseries.tsv", "*_timeseries.json", ATLAS_DIR])
    counts = participants.groupby(["site", "diagnosis"]).size()
    table = "\n".join(f"| {site} | {counts.get((site, 'ASD'), 0)} | "
                      f"{counts.get((site, 'control'), 0)} |" for site in sites)
    trs = (f"{repetition_time:g} s for every site (--repetition-time)" if repetition_time else
           ", ".join(f"{s} {ABIDE_TR[s]:g} s" for s in sites))
    flat = (f"{report.n_flat} flat (zero-variance) region timecourse(s) in "
            f"{len(report.flat_regions)} participant(s) are `n/a` (listed in each sidecar's "
            "`FlatRegions`)." if report.flat_regions else "No region timecourse was flat.")
    if report.duplicates:
        flat += (" The ROI files of " + ", ".join(f"`{b}` and `{a}`" for a, b in report.duplicates)
                 + " hold identical data (as distributed); check before analysing both.")
    atlas_text = (
        f"`derivatives/abide-pcp-{atlas}/{plan.image_path}` (copy of `{plan.image.name}`) with its "
        f"labels table: pass it, or the folder `derivatives/abide-pcp-{atlas}/{ATLAS_DIR}`, to "
        f"`xaibids … --atlas` to paint region importances into the {label} atlas."
        if plan.image is not None else
        f"`derivatives/abide-pcp-{atlas}/{ATLAS_DIR}/`: the labels table only (the ingest was "
        "run without `--atlas-image`), so region importances cannot be painted into an image.")
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
  `.1D` file and is label `k` of the atlas (labels in
  `derivatives/abide-pcp-{atlas}/{plan.labels_path}`; for CC200 the image is
  `CPAC200_space-MNI152NLin6_res-2x2x2.nii.gz`). {flat}
  `RepetitionTime`: {trs}.
- {atlas_text}

Licence of the data: ABIDE, CC BY-NC-SA (research use).
"""
    bidsio.write_text(root / "README", text)
    bidsio.write_text(deriv / "README", text)
