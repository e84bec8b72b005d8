"""Where the group level's features come from: ROI timecourses, ICA components, T1w volumes or
trial maps, given in the derivatives, made earlier, or extracted now by the participant step;
each as a :class:`FeatureSource` with its methods text and its way back into the brain.
"""

from __future__ import annotations

import functools
import logging
import re
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd

from xaibids.errors import XaibidsError
from xaibids.inputs.layout import build_layout, collect_timeseries
from xaibids.outputs.maps import paint_regions

LOGGER = logging.getLogger("xaibids")

#: The bundled atlas whose anatomical names label the regions of other atlases.
REFERENCE_ATLAS = "harvard-oxford"


def _atlas_of(path: str) -> str | None:
    match = re.search(r"_atlas-([A-Za-z0-9]+)_", Path(path).name)
    return match.group(1) if match else None


def gather_timeseries(config, atlas, subjects) -> tuple[list[tuple[str, str]], str]:
    """Timeseries files of every selected subject, all of one atlas; returns (runs, atlas label).

    The atlas given with ``--atlas`` is used when its files exist; otherwise the one atlas the
    derivatives provide (several → error asking to choose).
    """
    ex = config.execution
    derivatives = dict(ex.derivatives)
    if (Path(ex.output_dir) / "dataset_description.json").exists():
        derivatives.setdefault("xaibids", ex.output_dir)
    layout = build_layout(Path(ex.bids_dir), derivatives, Path(ex.work_dir))
    files = {s.subject: collect_timeseries(layout, s.subject, ex.bids_filters, ex.session_label,
                                           ex.task_id) for s in subjects}
    labels = sorted({_atlas_of(f) for fs in files.values() for f in fs} - {None})
    if atlas.name in labels:
        chosen = atlas.name
    elif len(labels) == 1:
        chosen = labels[0]
        LOGGER.info("Using the %s timeseries found in the derivatives (--atlas %s has none).",
                    chosen, config.workflow.atlas)
    elif not labels:
        raise XaibidsError("No timeseries TSVs (*_stat-mean_timeseries.tsv) were found or made.")
    else:
        raise XaibidsError(
            f"The derivatives hold timeseries of several atlases ({', '.join(labels)}); choose "
            "one with --atlas (a bundled name, or the atlas file)."
        )
    runs = []
    for subject, paths in files.items():
        chosen_paths = [p for p in paths if _atlas_of(p) == chosen]
        # one file per run: the first dataset listed wins over duplicates in OUTPUT_DIR
        seen = set()
        for path in chosen_paths:
            key = Path(path).name
            if key not in seen:
                seen.add(key)
                runs.append((f"sub-{subject}", path))
    return runs, chosen


def adopt_recorded_cleaning(config, paths) -> dict | None:
    """Make ``config.workflow``'s cleaning options those recorded in the sidecars of the
    timecourses (or trial maps) the group level reads, so that ``logs/config.toml``, the methods
    text and the report describe what was done to the files used, not what this command line
    says. Files cleaned in different ways stop the run; the command line's values that do not
    apply are named in a warning. Returns the recorded options (None: not recorded)."""
    from xaibids.features.io import recorded_cleaning

    try:
        recorded = recorded_cleaning(paths)
    except ValueError as err:
        raise XaibidsError(str(err)) from None
    if recorded is None:
        return None
    from xaibids.config import WorkflowSettings

    wf, default = config.workflow, WorkflowSettings()
    differ = {k: v for k, v in recorded.items() if getattr(wf, k) != v}
    if differ:
        # a warning when the user asked for other values, a note when they are the defaults
        asked = any(getattr(wf, k) != getattr(default, k) for k in differ)
        (LOGGER.warning if asked else LOGGER.info)(
            "The features were made with %s (their sidecars); %s does not apply to them. The "
            "methods text and logs/config.toml record what was done; to clean them otherwise, "
            "run the participant level again with --overwrite.",
            ", ".join(f"--{k.replace('_', '-')} {v}" for k, v in differ.items()),
            ", ".join(f"--{k.replace('_', '-')} {getattr(wf, k)}" for k in differ))
    config.update(recorded)
    return recorded


def _cleaning_sentence(recorded: dict) -> str:
    """The cleaning recorded in the sidecars of reused timecourses, in words."""
    filters = [f"{name} {recorded[key]:g} Hz" for key, name in
               (("high_pass", "high-pass"), ("low_pass", "low-pass")) if recorded[key]]
    return (f"Their sidecars record the cleaning done when they were made: confound strategy "
            f"'{recorded['confounds']}' (nilearn's fMRIPrep strategies), "
            f"{'linear detrending' if recorded['detrend'] else 'no detrending'}, "
            f"standardization '{recorded['standardize']}', "
            f"{', '.join(filters) if filters else 'no temporal filter'}, and regions with less "
            f"than {100 * recorded['min_coverage']:.0f}% of their voxels in the brain mask set "
            "to missing.")


def _participant_text(config, atlas, subjects, atlas_label, recorded: dict | None = None) -> str:
    """Methods text of how the features were made: the participant workflow's description when
    some subjects are extracted by this run (with the cleaning options ``config`` now holds,
    those recorded in the features' sidecars), else where they were read from and the
    ``recorded`` cleaning."""
    from xaibids.levels.participant import write_atlas_files
    from xaibids.outputs.boilerplate import workflow_description
    from xaibids.workflows.base import init_xaibids_participant_wf

    extracted = [s for s in subjects if s.to_extract and not s.timeseries]
    if extracted:
        return workflow_description(init_xaibids_participant_wf(
            config, extracted, atlas, write_atlas_files(config, atlas) if atlas else None,
            {s.subject: "" for s in extracted}))
    return (f"Regional timecourses ({atlas_label} atlas) were read from the derivatives "
            f"dataset(s) {', '.join(config.execution.derivatives) or 'in the output folder'}."
            + (f" {_cleaning_sentence(recorded)}" if recorded else ""))


@dataclass
class FeatureSource:
    """Where the group level's timecourses come from, and how results go back into the brain.

    Attributes
    ----------
    runs : list of (str, str)
        ``("sub-<label>", timeseries TSV)`` per run.
    label : str
        The atlas or component set (e.g. ``harvard-oxford``, ``CanICA20``).
    kind_text : str
        What the features are, for the methods text.
    methods_text : str
        Methods text of how the timecourses were made.
    painter : callable or None
        ``painter(pandas.Series of values by feature) -> Nifti1Image``; None: no NIfTI maps.
    space : str or None
        Template space of the painted images.
    domains : dict
        Feature → domain given by the features themselves (ICA template tables, or an atlas
        labels table with a network column).
    atlas : str or None
        The atlas label when the features are its regions.
    reference : pandas.DataFrame or None
        For atlases other than Harvard-Oxford, each region's Harvard-Oxford name and share
        (:func:`xaibids.stats.regions.reference_regions`), added to the importance tables.
    volumes : bool
        The features are the voxels of 3D images (``--features t1`` and ``trials``): maps are
        written as NIfTI images only, and the group statistics are those of
        :mod:`xaibids.stats.volumes`.
    mask : ndarray or None
        Volumes: the brain mask on their grid (maps are 0 outside; reliability compares its
        voxels only).
    trials : bool
        The samples are single trials (``--features trials``): several per run file, and the
        target may be a column of the events.
    """

    runs: list
    label: str
    kind_text: str
    methods_text: str
    painter: object = None
    space: str | None = None
    domains: dict = field(default_factory=dict)
    atlas: str | None = None
    reference: pd.DataFrame | None = None
    volumes: bool = False
    mask: np.ndarray | None = None
    trials: bool = False


def _extract_missing(config, atlas, subjects, pattern: str,
                     option_names: dict[str, str]) -> None:
    """Run the participant step for subjects whose timecourses are neither given nor made."""
    from xaibids.levels.participant import run_participant

    out = Path(config.execution.output_dir)
    existing = {p.name.split("_")[0][4:] for p in out.glob(f"sub-*/**/{pattern}")}
    to_extract = [s for s in subjects
                  if s.to_extract and not s.timeseries and s.subject not in existing]
    if to_extract:
        LOGGER.info("Running the participant step for %d subject(s) without features.",
                    len(to_extract))
        if run_participant(config, atlas, to_extract, option_names) != 0:
            raise XaibidsError("The participant step failed for some subjects (see above); "
                               "fix them or leave them out with --participant-label.")


def roi_source(config, atlas, subjects, option_names: dict[str, str]) -> FeatureSource:
    """ROI timecourses: given in the derivatives, made earlier, or extracted now."""
    _extract_missing(config, atlas, subjects, f"*_atlas-{atlas.name}_stat-mean_timeseries.tsv",
                     option_names)
    runs, atlas_label = gather_timeseries(config, atlas, subjects)
    recorded = adopt_recorded_cleaning(config, [path for _, path in runs])
    painter = None
    if atlas.name == atlas_label:
        painter = partial(paint_regions, atlas)
    else:
        LOGGER.warning(
            "The timecourses are of the %s atlas but --atlas gives %s: no NIfTI maps are "
            "written. Pass --atlas with the %s atlas image (and its labels TSV) to get them.",
            atlas_label, atlas.name, atlas_label)
    return FeatureSource(runs=runs, label=atlas_label,
                         kind_text=f"regional timecourses ({atlas_label} atlas)",
                         methods_text=_participant_text(config, atlas, subjects, atlas_label,
                                                        recorded),
                         painter=painter, space=atlas.space if painter else None,
                         atlas=atlas_label, domains=atlas.domains if painter else {},
                         reference=_reference_names(atlas) if painter else None)


def _reference_names(atlas) -> pd.DataFrame | None:
    """Harvard-Oxford names of ``atlas``'s regions (None for Harvard-Oxford itself)."""
    from xaibids.stats.regions import reference_regions

    if atlas.source == REFERENCE_ATLAS:
        return None
    reference = _reference_atlas()
    return reference_regions(atlas.img, atlas.labels, reference.img, reference.labels)


@functools.lru_cache(maxsize=1)
def _reference_atlas():
    """The reference atlas, made once per process (its maxprob conversion takes seconds)."""
    from xaibids.features.atlases import load_bundled_atlas

    return load_bundled_atlas(REFERENCE_ATLAS)


def ica_source(config, subjects, option_names: dict[str, str]) -> FeatureSource:
    """ICA timecourses: group ICA now (no template), or template mode per participant."""
    from xaibids.features.ica import paint_components
    from xaibids.features.ica_templates import component_domains, load_ica_template
    from xaibids.workflows.ica import run_group_ica

    wf, ex = config.workflow, config.execution
    if wf.ica_template:
        _extract_missing(config, None, subjects, "*_desc-ica_timeseries.tsv", option_names)
        runs = gather_ica_timeseries(config, subjects)
        recorded = adopt_recorded_cleaning(config, [path for _, path in runs])
        template = load_ica_template(wf.ica_template)
        names = template.labels["name"].tolist()
        extracted = [s for s in subjects if s.to_extract and not s.timeseries]
        methods = (_participant_text(config, None, subjects, "") if extracted else
                   "ICA timecourses were read from the derivatives dataset(s) "
                   f"{', '.join(ex.derivatives) or 'in the output folder'}."
                   + (f" {_cleaning_sentence(recorded)}" if recorded else ""))
        return FeatureSource(
            runs=runs, label=Path(wf.ica_template).name.split(".")[0],
            kind_text=f"ICA timecourses ({len(names)} components of the template "
                      f"{Path(wf.ica_template).name})",
            methods_text=methods,
            painter=lambda values: paint_components(template.img, values.to_dict(), names=names),
            space=template.space, domains=component_domains(template))
    with_bold = group_ica_subjects(subjects)
    runs, components, methods = run_group_ica(
        config, with_bold, ex.output_dir, ex.work_dir, algorithm=wf.ica_algorithm,
        mask_mode=wf.ica_mask, alpha=wf.ica_alpha, stage2=wf.ica_subject_maps)
    table = pd.read_csv(Path(components).with_name(
        Path(components).name.replace(".nii.gz", ".tsv")), sep="\t")
    names = table["name"].astype(str).tolist()
    space = re.search(r"_space-([A-Za-z0-9]+)_", Path(components).name)
    label = Path(components).parent.name.removeprefix("atlas-")
    return FeatureSource(
        runs=runs, label=label,
        kind_text=f"ICA timecourses ({len(names)} group ICA components)",
        methods_text=methods,
        painter=lambda values: paint_components(components, values.to_dict(), names=names),
        space=space.group(1) if space else None, domains=component_domains(table))


def _made_volumes(config, atlas, subjects, pattern: str, what: str,
                  option_names: dict[str, str]):
    """The participant step's images matching ``pattern`` in OUTPUT_DIR (made now for subjects
    without them) as ``("sub-<label>", path)`` pairs, and the template spaces they are in."""
    _extract_missing(config, atlas, subjects, pattern, option_names)
    out = Path(config.execution.output_dir)
    runs = [(f"sub-{s.subject}", str(path)) for s in subjects
            for path in sorted((out / f"sub-{s.subject}").glob(f"**/{pattern}"))]
    if not runs:
        raise XaibidsError(f"No {what} ({pattern}) were found or made in {out}.")
    spaces = sorted({m.group(1) for _, p in runs
                     if (m := re.search(r"_space-([A-Za-z0-9]+)_", Path(p).name))})
    return runs, spaces


def t1_source(config, atlas, subjects, option_names: dict[str, str]) -> FeatureSource:
    """T1w volumes on the template grid: made by the participant step (now, for subjects
    without them) in OUTPUT_DIR; maps painted on the grid, masked to the template brain."""
    from xaibids.features.t1 import resolution_label
    from xaibids.features.t1 import grid_mask
    from xaibids.stats.volumes import volume_image

    res = resolution_label(config.workflow.t1_resolution)
    runs, spaces = _made_volumes(config, atlas, subjects, f"*_res-{res}_desc-preproc_T1w.nii.gz",
                                 "preprocessed T1w volumes", option_names)
    mask = np.asarray(grid_mask(config.workflow.t1_resolution).dataobj) > 0
    affine = grid_mask(config.workflow.t1_resolution).affine

    def painter(values: pd.Series):
        return volume_image(values.to_numpy().reshape(mask.shape), affine, mask)

    return FeatureSource(
        runs=runs, label=f"T1w-res{res}",
        kind_text=(f"T1-weighted volumes ({config.workflow.t1_resolution:g} mm voxels, "
                   f"{int(mask.sum())} in the template's brain mask)"),
        methods_text=_participant_text(config, atlas, subjects, ""),
        painter=painter, space="".join(spaces[:1]) or None, volumes=True, mask=mask)


def trials_source(config, subjects, option_names: dict[str, str]) -> FeatureSource:
    """Single-trial activation maps made by the participant step (now, for subjects without
    them) in OUTPUT_DIR; the group brain mask is the intersection of the runs' masks."""
    import nibabel as nb
    from nilearn.masking import intersect_masks

    from xaibids.features.trials import TRIALS_SUFFIX
    from xaibids.stats.volumes import volume_image

    runs, spaces = _made_volumes(config, None, subjects, f"*_{TRIALS_SUFFIX}.nii.gz",
                                 "trial maps", option_names)
    adopt_recorded_cleaning(config, [path for _, path in runs])
    if len(spaces) > 1:
        raise XaibidsError(f"The trial maps are in several spaces ({', '.join(spaces)}); "
                           "choose one with --bids-filter-file (\"bold\": {\"space\": ...}).")
    masks = []
    for _, path in runs:
        mask_path = Path(path.replace(f"_{TRIALS_SUFFIX}.nii.gz", "_desc-brain_mask.nii.gz"))
        if not mask_path.exists():
            raise XaibidsError(f"{mask_path} is missing (written with {Path(path).name}); rerun "
                               "the participant level with --overwrite.")
        masks.append(nb.load(mask_path))
        if masks[-1].shape != masks[0].shape or not np.allclose(
                masks[-1].affine, masks[0].affine, atol=1e-4):
            raise XaibidsError(f"{Path(path).name} is on another grid than {Path(runs[0][1]).name};"
                               " give BOLD runs of one space and resolution.")
    group_mask = intersect_masks(masks, threshold=1, connected=False)  # nilearn's intersection
    mask, affine = np.asarray(group_mask.dataobj) > 0, group_mask.affine

    def painter(values: pd.Series):
        return volume_image(values.to_numpy().reshape(mask.shape), affine, mask,
                            template=bool(spaces))

    return FeatureSource(
        runs=runs, label="trials",
        kind_text=f"single-trial activation maps ({int(mask.sum())} voxels in the brain mask)",
        methods_text=_participant_text(config, None, subjects, ""),
        painter=painter, space="".join(spaces) or None, volumes=True, mask=mask, trials=True)


def group_ica_subjects(subjects):
    with_bold = [s for s in subjects if s.bold_runs]
    if not with_bold:
        raise XaibidsError("Group ICA needs preprocessed BOLD runs (-d fmriprep=PATH); none "
                           "matched the selection. To use ICA timecourses made elsewhere, give "
                           "them with -d and --ica-template with their spatial maps.")
    return with_bold


def gather_ica_timeseries(config, subjects) -> list[tuple[str, str]]:
    """``*_desc-ica_timeseries.tsv`` of every selected subject (given first, then OUTPUT_DIR)."""
    ex = config.execution
    derivatives = dict(ex.derivatives)
    derivatives.setdefault("xaibids", ex.output_dir)
    layout = build_layout(Path(ex.bids_dir), derivatives, Path(ex.work_dir))
    runs = []
    for s in subjects:
        seen = set()
        for path in collect_timeseries(layout, s.subject, ex.bids_filters, ex.session_label,
                                       ex.task_id, kind="ica"):
            if Path(path).name not in seen:
                seen.add(Path(path).name)
                runs.append((f"sub-{s.subject}", path))
    if not runs:
        raise XaibidsError("No ICA timeseries TSVs (*_desc-ica_timeseries.tsv) were found or made.")
    return runs


