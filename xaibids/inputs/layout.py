"""pybids queries: which subjects, which runs, and which derivative files belong to them.

Selection follows fMRIPrep: ``--participant-label``, ``--session-label`` and ``--task-id``
restrict the query, and ``--bids-filter-file`` (fMRIPrep's JSON format, one query per data type)
updates the default query of each data type. A derivatives dataset is recognized by what it
holds, never by the label given to it with ``-d NAME=PATH``.
"""

from __future__ import annotations

import json
import logging
import re
from importlib import resources
from dataclasses import dataclass, field
from pathlib import Path

from bids import BIDSLayout
from bids.layout import BIDSLayoutIndexer, Query

from xaibids.errors import XaibidsError
from xaibids.inputs.checks import check_image

LOGGER = logging.getLogger("xaibids")

#: Default pybids queries per data type; ``--bids-filter-file`` updates them.
DEFAULT_QUERIES = {
    "bold": {"datatype": "func", "desc": "preproc", "suffix": "bold",
             "extension": [".nii.gz", ".nii"]},
    "timeseries": {"datatype": "func", "suffix": "timeseries", "extension": ".tsv"},
    "t1w": {"datatype": "anat", "suffix": "T1w", "extension": [".nii.gz", ".nii"]},
}
#: Template spaces, most preferred first, when a run was resampled to several.
SPACE_PREFERENCE = ("MNI152NLin6Asym", "MNI152NLin2009cAsym", "MNI152NLin2009cSym",
                    "MNI152NLin6Sym", "MNI152NLin2009aAsym", "MNIPediatricAsym", "MNI152Lin")
#: Entities xaibids reads that pybids' own configurations lack (``stat-`` of XCP-D's names).
XAIBIDS_LAYOUT_CONFIG = {
    "name": "xaibids",
    "entities": [
        ent for ent in json.loads(
            resources.files("xaibids").joinpath("data", "xaibids_bids_config.json").read_text()
        )["entities"]
        if ent["name"] == "statistic"
    ],
}
LABEL_RE = re.compile(r"^[A-Za-z0-9]+$")


def clean_labels(labels: list[str] | None, prefix: str, option: str) -> list[str]:
    """Strip an optional BIDS prefix (``sub-01`` → ``01``) and refuse non-alphanumeric labels."""
    out = []
    for label in labels or []:
        label = label[len(prefix):] if label.startswith(prefix) else label
        if not LABEL_RE.match(label):
            raise XaibidsError(
                f"{option} {label!r} is not a BIDS label: labels hold only letters and digits "
                f"(with or without the '{prefix}' prefix)."
            )
        if label not in out:
            out.append(label)
    return out


def load_bids_filters(path: str | Path) -> dict:
    """Read a ``--bids-filter-file`` (fMRIPrep format) and check its data-type keys."""
    path = Path(path)
    try:
        filters = json.loads(path.read_text())
    except FileNotFoundError:
        raise XaibidsError(f"The BIDS filter file {path} does not exist.") from None
    except (OSError, UnicodeDecodeError) as err:
        raise XaibidsError(f"Cannot read the BIDS filter file {path}: {err}; give a JSON text "
                           "file.") from None
    except json.JSONDecodeError as err:
        raise XaibidsError(
            f"The BIDS filter file {path} is not valid JSON ({err.msg} at line {err.lineno}); it "
            'should look like {"bold": {"task": "rest", "session": "01"}}.'
        ) from None
    if not isinstance(filters, dict) or not all(isinstance(v, dict) for v in filters.values()):
        raise XaibidsError(
            f"The BIDS filter file {path} must map data types to queries, e.g. "
            '{"bold": {"task": "rest"}}.'
        )
    unknown = set(filters) - set(DEFAULT_QUERIES)
    if unknown:
        raise XaibidsError(
            f"The BIDS filter file {path} has unknown data type(s) {sorted(unknown)}; "
            f"use {sorted(DEFAULT_QUERIES)}."
        )
    return filters


def read_dataset_description(root: Path, role: str) -> dict:
    """Read ``dataset_description.json`` of ``root`` or fail with the fix."""
    desc = root / "dataset_description.json"
    if not desc.exists():
        raise XaibidsError(
            f"{root} has no dataset_description.json, so it is not a BIDS {role}. Point to the "
            "top folder of the dataset, or add the file (see the BIDS specification, "
            "'Dataset description')."
        )
    try:
        desc_data = json.loads(desc.read_text())
    except (OSError, UnicodeDecodeError) as err:
        raise XaibidsError(f"Cannot read {desc}: {err}; it must be a UTF-8 JSON file.") from None
    except json.JSONDecodeError as err:
        raise XaibidsError(
            f"{desc} is not valid JSON ({err.msg} at line {err.lineno}, column {err.colno}); fix "
            "its syntax (check it with 'python -m json.tool FILE')."
        ) from None
    if not isinstance(desc_data, dict):
        raise XaibidsError(f"{desc} must hold a JSON object ({{\"Name\": ..., \"BIDSVersion\": "
                           "...}), not a list or a single value.")
    return desc_data


def _json_error(err: Exception) -> XaibidsError | None:
    """A readable error for pybids' failure to decode a JSON sidecar (None if it is not one)."""
    match = re.search(r"decode JSON from file <\w+ filename='([^']+)'>", str(err))
    if not match:
        return None
    path, detail = match.group(1), ""
    try:
        json.loads(Path(path).read_text())
    except json.JSONDecodeError as exc:
        detail = f" ({exc.msg} at line {exc.lineno}, column {exc.colno})"
    except (OSError, UnicodeDecodeError) as exc:
        detail = f" ({exc})"
    return XaibidsError(
        f"{path} is not valid JSON{detail}; fix its syntax (check it with "
        "'python -m json.tool FILE') or remove the file."
    )


@dataclass
class BoldRun:
    """One preprocessed BOLD run and the files needed to extract its ROI timecourses."""

    subject: str
    bold: str
    mask: str
    confounds: str | None
    entities: dict
    metadata: dict = field(default_factory=dict)
    events: str | None = None  # the run's events.tsv (``--features trials``)

    @property
    def space(self) -> str | None:
        return self.entities.get("space")

    def files(self) -> list[str]:
        """The input files (for fingerprints and ``Sources``)."""
        return [p for p in (self.bold, self.mask, self.confounds,
                            self.confounds and self.confounds.replace(".tsv", ".json"),
                            self.events) if p]


@dataclass
class T1wImage:
    """One T1w image to bring onto the xaibids template grid (``--features t1``).

    ``in_template_space`` is True for a preprocessed T1w of a derivatives dataset
    (``*_space-<tpl>_desc-preproc_T1w``, registered already; ``mask`` is its brain mask when
    present) and False for a raw T1w, which the participant workflow registers itself.
    """

    subject: str
    path: str
    mask: str | None
    entities: dict
    in_template_space: bool

    @property
    def space(self) -> str | None:
        return self.entities.get("space")

    def files(self) -> list[str]:
        """The input files (for fingerprints and ``Sources``)."""
        return [p for p in (self.path, self.mask) if p]


@dataclass
class SubjectData:
    """What was found for one subject.

    ``bold_runs`` (ROI and ICA features) or ``t1w`` (T1 features) are the inputs the
    participant step extracts features from; ``timeseries`` are feature files given ready-made.
    """

    subject: str
    bold_runs: list[BoldRun] = field(default_factory=list)
    timeseries: list[str] = field(default_factory=list)
    t1w: list[T1wImage] = field(default_factory=list)

    @property
    def to_extract(self) -> list:
        """The inputs of the participant step (BOLD runs or T1w images)."""
        return [*self.bold_runs, *self.t1w]


def build_layout(bids_dir: Path, derivatives: dict[str, str], work_dir: Path | None) -> BIDSLayout:
    """A pybids layout of the raw dataset plus every derivatives dataset given with ``-d``."""
    read_dataset_description(bids_dir, "dataset")
    for name, path in derivatives.items():
        desc = read_dataset_description(Path(path), f"derivatives dataset ('-d {name}={path}')")
        if "GeneratedBy" not in desc and "PipelineDescription" not in desc:
            raise XaibidsError(
                f"{Path(path) / 'dataset_description.json'} lacks 'GeneratedBy', which marks a "
                "BIDS derivatives dataset; add it (e.g. [{\"Name\": \"fMRIPrep\"}])."
            )
    indexer = BIDSLayoutIndexer(validate=False, ignore=[re.compile(r"/(code|sourcedata|derivatives)/")])
    config = ["bids", "derivatives", XAIBIDS_LAYOUT_CONFIG]
    try:
        layout = BIDSLayout(str(bids_dir), indexer=indexer, config=config[:2])
        for name, path in derivatives.items():
            layout.add_derivatives(str(path), parent_database_path=None, config=config,
                                   indexer=BIDSLayoutIndexer(validate=False))
    except (OSError, ValueError) as err:  # pybids reports bad sidecars as OSError
        readable = _json_error(err)
        if readable is None:
            raise
        raise readable from None
    return layout


def select_subjects(layout: BIDSLayout, labels: list[str]) -> list[str]:
    """Subjects to process: those asked for (all must exist), or all of the dataset."""
    available = sorted(set(layout.get_subjects()))
    if not labels:
        if not available:
            raise XaibidsError(f"No subjects (sub-* folders) were found in {layout.root}.")
        return available
    missing = [label for label in labels if label not in available]
    if missing:
        raise XaibidsError(
            f"No data for participant(s) {', '.join('sub-' + m for m in missing)} in {layout.root} "
            f"or the derivatives given with -d. Available: "
            f"{', '.join('sub-' + a for a in available[:20]) or 'none'}."
        )
    return labels


def _query(kind: str, filters: dict, sessions: list[str], tasks: list[str]) -> dict:
    query = dict(DEFAULT_QUERIES[kind])
    if sessions:
        query["session"] = sessions
    if tasks and kind != "t1w":
        query["task"] = tasks
    query.update(filters.get(kind, {}))
    return query


def _pick_space(files: list, preferred: str | None) -> list:
    """Keep one template space per run: the atlas's when present, else by preference."""
    by_run: dict[tuple, list] = {}
    for f in files:
        ents = f.get_entities()
        key = tuple(sorted((k, str(v)) for k, v in ents.items() if k not in ("space", "res", "den")))
        by_run.setdefault(key, []).append(f)
    order = ((preferred,) if preferred else ()) + SPACE_PREFERENCE
    chosen = []
    for candidates in by_run.values():
        ranked = sorted(
            candidates,
            key=lambda f: (order.index(f.entities["space"]) if f.entities.get("space") in order
                           else len(order), f.path),
        )
        chosen.append(ranked[0])
    return sorted(chosen, key=lambda f: f.path)


def _companion(layout: BIDSLayout, bold, **changes) -> list:
    """Derivative files sharing ``bold``'s entities, with ``changes`` (``None``: entity absent)."""
    query = {k: v for k, v in bold.get_entities().items() if k != "extension"}
    query.update({k: (Query.NONE if v is None else v) for k, v in changes.items()})
    return layout.get(scope="derivatives", **query)


def collect_bold_runs(layout: BIDSLayout, subject: str, filters: dict, sessions: list[str],
                      tasks: list[str], atlas_space: str | None, need_confounds: bool) -> list[BoldRun]:
    """Template-space preprocessed BOLD runs of ``subject`` with their mask and confounds."""
    query = _query("bold", filters, sessions, tasks)
    files = [f for f in layout.get(scope="derivatives", subject=subject, **query)
             if f.entities.get("space") and f.entities["space"] not in ("T1w", "T2w", "fsnative")]
    runs = []
    for bold in _pick_space(files, atlas_space):
        check_image(bold.path, "preprocessed BOLD", ndim=4, min_volumes=2)
        masks = _companion(layout, bold, desc="brain", suffix="mask", extension=[".nii.gz", ".nii"])
        confounds = _companion(layout, bold, space=None, res=None, den=None, desc="confounds",
                               suffix="timeseries", extension=".tsv")
        missing = []
        if not masks:
            missing.append("brain mask (*_desc-brain_mask.nii.gz)")
        if need_confounds and not confounds:
            missing.append("confounds (*_desc-confounds_timeseries.tsv)")
        if missing:
            raise XaibidsError(
                f"sub-{subject}: {Path(bold.path).name} has no {' and no '.join(missing)} beside "
                "it. Pass the complete fMRIPrep derivatives with -d fmriprep=PATH"
                + (", or use --confounds none" if need_confounds and not confounds else "") + "."
            )
        check_image(masks[0].path, "brain mask", ndim=3)
        runs.append(BoldRun(subject=subject, bold=bold.path, mask=masks[0].path,
                            confounds=confounds[0].path if confounds else None,
                            entities=bold.get_entities(), metadata=bold.get_metadata()))
    return runs


def _events_of(layout: BIDSLayout, bold) -> list:
    """The raw dataset's ``events.tsv`` of a BOLD run: beside it (same subject, session, task,
    acq, run), or else inherited from the dataset's top level (BIDS inheritance principle:
    ``task-<label>[_acq-<label>][_run-<index>]_events.tsv`` applies to every run it matches;
    the most specific first)."""
    entities = bold.get_entities()
    query = {k: entities.get(k, Query.NONE) for k in ("subject", "session", "task", "acquisition",
                                                      "run")}
    own = layout.get(scope="raw", datatype="func", suffix="events", extension=".tsv", **query)
    if own:
        return own
    optional = ("acquisition", "run")
    inherited = [f for f in layout.get(scope="raw", subject=Query.NONE, session=Query.NONE,
                                       suffix="events", extension=".tsv",
                                       task=entities.get("task", Query.NONE))
                 if all(f.entities.get(k) in (None, entities.get(k)) for k in optional)]
    return sorted(inherited, key=lambda f: -sum(k in f.entities for k in optional))


def collect_trial_runs(layout: BIDSLayout, subject: str, filters: dict, sessions: list[str],
                       tasks: list[str], need_confounds: bool) -> list[BoldRun]:
    """BOLD runs of ``subject`` with their events, for ``--features trials``.

    Preprocessed runs in a template space (fMRIPrep, with mask and confounds) when the
    derivatives have them; otherwise the raw dataset's BOLD runs, which need a brain mask on
    their grid in a derivatives dataset (``*_desc-brain_mask.nii.gz`` without a space, as the
    ``voxel-patterns`` simulation writes) and no confounds. Each run needs its ``events.tsv``.
    """
    runs = collect_bold_runs(layout, subject, filters, sessions, tasks, None, need_confounds)
    if not runs:
        query = {**_query("bold", filters, sessions, tasks), "desc": Query.NONE}
        for bold in layout.get(scope="raw", subject=subject, **query):
            check_image(bold.path, "BOLD", ndim=4, min_volumes=2)
            masks = _companion(layout, bold, desc="brain", suffix="mask", space=None,
                               extension=[".nii.gz", ".nii"])
            if not masks:
                raise XaibidsError(
                    f"sub-{subject}: {Path(bold.path).name} is a raw BOLD run with no brain mask "
                    "on its grid (*_desc-brain_mask.nii.gz) in the derivatives. Pass fMRIPrep's "
                    "derivatives with -d fmriprep=PATH, or a dataset holding the mask.")
            if need_confounds:
                raise XaibidsError(
                    f"sub-{subject}: {Path(bold.path).name} is a raw BOLD run without "
                    "confounds; use --confounds none, or pass fMRIPrep's derivatives with -d.")
            check_image(masks[0].path, "brain mask", ndim=3)
            runs.append(BoldRun(subject=subject, bold=bold.path, mask=masks[0].path,
                                confounds=None, entities=bold.get_entities(),
                                metadata=bold.get_metadata()))
    for run in runs:
        bold = layout.get_file(run.bold)
        events = _events_of(layout, bold)
        if not events:
            raise XaibidsError(
                f"sub-{subject}: no events.tsv for {Path(run.bold).name} in the raw dataset; "
                "--features trials averages the volumes of each event (add "
                f"sub-{subject}/func/..._events.tsv, or task-<label>_events.tsv at the dataset's "
                "top level, or choose another --features).")
        run.events = events[0].path
    return runs


def collect_t1w(layout: BIDSLayout, subject: str, filters: dict,
                sessions: list[str]) -> list[T1wImage]:
    """T1w images of ``subject``: preprocessed ones in a template space from the derivatives
    (with their brain mask), or else the raw ones.

    A registration done by fMRIPrep/sMRIPrep (nonlinear) is preferred over xaibids' own affine
    one, so raw images are used only for subjects whose derivatives have none.
    """
    query = _query("t1w", filters, sessions, [])
    derived = [f for f in layout.get(scope="derivatives", subject=subject,
                                     **{"desc": "preproc", **query})
               if f.entities.get("space") and f.entities["space"] not in ("T1w", "T2w", "fsnative")]
    images = []
    for t1w in _pick_space(derived, None):
        check_image(t1w.path, "preprocessed T1w", ndim=3)
        masks = _companion(layout, t1w, desc="brain", suffix="mask",
                           extension=[".nii.gz", ".nii"])
        if masks:
            check_image(masks[0].path, "brain mask", ndim=3)
        images.append(T1wImage(subject=subject, path=t1w.path,
                               mask=masks[0].path if masks else None,
                               entities=t1w.get_entities(), in_template_space=True))
    if images:
        return images
    for t1w in layout.get(scope="raw", subject=subject, **query):
        check_image(t1w.path, "T1w", ndim=3)
        images.append(T1wImage(subject=subject, path=t1w.path, mask=None,
                               entities=t1w.get_entities(), in_template_space=False))
    return sorted(images, key=lambda image: image.path)


def collect_timeseries(layout: BIDSLayout, subject: str, filters: dict, sessions: list[str],
                       tasks: list[str], atlas: str | None = None, kind: str = "roi") -> list[str]:
    """Timeseries TSVs of ``subject`` in the derivatives datasets.

    ``kind="roi"``: XCP-D-style ``*_atlas-<a>_stat-mean_timeseries.tsv`` (of ``atlas`` if given);
    ``kind="ica"``: ``*_desc-ica_timeseries.tsv``.
    """
    query = _query("timeseries", filters, sessions, tasks)
    if kind == "ica":
        files = layout.get(scope="derivatives", subject=subject, desc="ica",
                           invalid_filters="allow", **query)
        return sorted(f.path for f in files)
    # ``statistic`` is unknown to a layout without derivatives: allow the filter then
    files = layout.get(scope="derivatives", subject=subject, statistic="mean",
                       invalid_filters="allow", **query)
    if atlas:
        files = [f for f in files if f.entities.get("atlas") == atlas]
    return sorted(f.path for f in files)
