"""Group level: assemble timecourses, train seeded ensembles, write stabilized attributions,
group statistics, the reliability report card and the HTML reports.

ROI timecourses come from the derivatives datasets given with ``-d`` or from earlier
participant runs in OUTPUT_DIR; subjects that have neither are extracted first (participant
step). ICA timecourses come from group ICA run here on every selected subject, or from template
ICA per participant (:class:`FeatureSource`). The science lives in the packages this module
calls; it only wires them and writes the files.
"""

from __future__ import annotations

import functools
import logging
import os
import re
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd

from xaibids.errors import XaibidsError
from xaibids.cli.participant import prepare_output
from xaibids.inputs.checks import read_participants
from xaibids.inputs.layout import build_layout, collect_timeseries
from xaibids.outputs.completion import (
    CompletionRecord, fingerprints, is_finished, record_completion, snapshot, written_since,
)
from xaibids.fileio import atomic_write_text
from xaibids.outputs.maps import paint_regions
from xaibids.stats.selection import SelectionRule

LOGGER = logging.getLogger("xaibids")


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


def ensemble_config(config, dataset=None, atlas=None):
    """The :class:`~xaibids.learning.ensemble.EnsembleConfig` of a run's configuration.

    For volumes (a ``dataset`` with a ``grid``) the grid goes to the model (``cnn3d``) and,
    with an ``atlas``, region ablation gets the atlas on the grid as its feature groups.
    """
    from xaibids.learning.ensemble import EnsembleConfig

    lc, ac = config.learning, config.attribution
    params = {method: dict(values) for method, values in ac.attribution_params.items()}
    if ac.ig_multiply_by_inputs:
        params.setdefault("ig", {})["multiply_by_inputs"] = True
    model_kwargs, batch_size = {}, lc.batch_size
    if lc.model == "region-cnn":
        model_kwargs["sparsity"] = lc.sparsity
    if dataset is not None and dataset.grid is not None:
        if lc.model == "cnn3d":
            model_kwargs["grid"] = list(dataset.grid)
        if atlas is not None and "ablation" in ac.attribution:
            params.setdefault("ablation", {}).setdefault(
                "feature_mask", str(atlas_on_grid(config, atlas, dataset)))
        for method in {"gradcam", "guidedgradcam"} & set(ac.attribution):
            # Kan et al. 2020's Eq. 7 keeps only positive evidence; a class that differs by *lower*
            # intensity (atrophy) shows as missing activation, i.e. negative evidence, which the
            # ReLU erases: the signed map is kept and --positive applies, as for every method
            params.setdefault(method, {}).setdefault("relu_attributions", False)
        rows = volume_rows(dataset.grid, config.nipype.mem_gb)
        if "ig" in ac.attribution:
            params.setdefault("ig", {}).setdefault("internal_batch_size", rows)
        if batch_size > rows:
            LOGGER.info("Training batches of %d volumes (not %d) fit the memory.", rows,
                        batch_size)
            batch_size = rows
    return EnsembleConfig(
        model=lc.model, n_folds=lc.n_folds, n_models=lc.n_models or lc.max_models,
        epochs=lc.epochs,
        batch_size=batch_size, learning_rate=lc.learning_rate, weight_decay=lc.weight_decay,
        patience=lc.patience, val_fraction=lc.val_fraction, device=lc.device,
        random_seed=config.seeds.random_seed, attribution=tuple(ac.attribution),
        ig_steps=ac.ig_steps, baseline=tuple(ac.baseline), stabilize=ac.stabilize,
        positive=ac.positive, attribution_batch_size=ac.attribution_batch_size,
        ig_method=ac.ig_rule, attribution_params=params, ig_tolerance=ac.ig_tolerance,
        model_kwargs=model_kwargs, batched_training=lc.batched_training,
    )


#: Bytes one volume voxel costs in a forward and backward pass of ``cnn3d`` (its activations
#: kept for the gradient; measured: about 55 MB per 57 x 69 x 60 volume at the default widths).
VOXEL_BYTES = 240


def volume_rows(grid, mem_gb: float = 0.0) -> int:
    """How many volumes go through ``cnn3d`` with gradients at once: a quarter of ``--mem`` (or
    of the memory available now) divided by the cost of one volume, at least 1."""
    budget = mem_gb * 2**30 if mem_gb else (
        os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    return max(1, int(budget / 4 // (VOXEL_BYTES * int(np.prod(grid)))))


def atlas_on_grid(config, atlas, dataset) -> Path:
    """The ``--atlas`` label image resampled (nearest neighbour) onto the volumes' grid, in the
    work folder (``ablation``'s regions and the region statistics of ``--features t1``)."""
    from nilearn.image import resample_img

    import nibabel as nb

    grid = "x".join(map(str, dataset.grid))
    path = Path(config.execution.work_dir) / "atlas" / f"atlas-{atlas.name}_grid-{grid}_dseg.nii.gz"
    path.parent.mkdir(parents=True, exist_ok=True)
    img = resample_img(atlas.img, target_affine=dataset.affine, target_shape=dataset.grid,
                       interpolation="nearest", force_resample=True, copy_header=True)
    nb.Nifti1Image(np.asarray(img.dataobj).astype(np.int16), dataset.affine).to_filename(path)
    return path


def group_methods(config, ens_config, dataset, feature_kind: str, trials: bool = False,
                  target_in_events: bool = False, volume_atlas: str | None = None) -> str:
    """Methods text of the group level (``boilerplate/group.md``) for this configuration;
    ``trials``: the samples are single trials (``--features trials``), labelled from the
    events when ``target_in_events``; ``volume_atlas``: the atlas whose regions summarize voxel
    maps (None: no region statistics)."""
    from xaibids.attribution.ig import INITIAL_PANELS, PANEL_POINTS
    from xaibids.learning.ensemble import resolve_device, uses_batched_training
    from xaibids.models import model_options
    from xaibids.outputs.methods import describe_methods, render_template
    from xaibids.stats.verdict import N_PERMUTATIONS

    st = config.statistics
    return render_template(
        "group.md", classes=dataset.classes, target=config.learning.target,
        n_subjects=len(set(dataset.subjects)), n_runs=len(dataset.subjects),
        n_timepoints=dataset.X.shape[1], n_features=dataset.X.shape[2], grid=dataset.grid,
        feature_kind=feature_kind, cv_group=config.learning.cv_group, ens=ens_config,
        model=model_options(ens_config.model, **ens_config.model_kwargs),
        trials=trials, target_in_events=target_in_events, volume_atlas=volume_atlas,
        batched=uses_batched_training(ens_config, resolve_device(ens_config.device)),
        methods=describe_methods(ens_config),
        adaptive_ig={"panels": INITIAL_PANELS, "points": PANEL_POINTS},
        stats={"ci_level": st.ci_level, "n_bootstrap": st.n_bootstrap,
               "fdr_alpha": st.fdr_alpha,
               "feature_groups": Path(st.feature_groups).name if st.feature_groups else ""},
        selection=SelectionRule(st.selection, st.selection_alpha),
        verdict={"n_permutations": N_PERMUTATIONS},
        reliability=config.attribution.reliability_samples,
        permutations=config.attribution.permutations,
        ensemble_size=({"threshold": config.learning.ensemble_stability,
                        "max": config.learning.max_models}
                       if config.learning.n_models == 0 else None),
    )


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
    from xaibids.cli.participant import write_atlas_files
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


def _extract_missing(config, atlas, subjects, pattern: str) -> None:
    """Run the participant step for subjects whose timecourses are neither given nor made."""
    from xaibids.cli.participant import run_participant

    out = Path(config.execution.output_dir)
    existing = {p.name.split("_")[0][4:] for p in out.glob(f"sub-*/**/{pattern}")}
    to_extract = [s for s in subjects
                  if s.to_extract and not s.timeseries and s.subject not in existing]
    if to_extract:
        LOGGER.info("Running the participant step for %d subject(s) without features.",
                    len(to_extract))
        if run_participant(config, atlas, to_extract) != 0:
            raise XaibidsError("The participant step failed for some subjects (see above); "
                               "fix them or leave them out with --participant-label.")


def roi_source(config, atlas, subjects) -> FeatureSource:
    """ROI timecourses: given in the derivatives, made earlier, or extracted now."""
    _extract_missing(config, atlas, subjects, f"*_atlas-{atlas.name}_stat-mean_timeseries.tsv")
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


#: The bundled atlas whose anatomical names label the regions of other atlases.
REFERENCE_ATLAS = "harvard-oxford"


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


def ica_source(config, subjects) -> FeatureSource:
    """ICA timecourses: group ICA now (no template), or template mode per participant."""
    from xaibids.features.ica import component_domains, load_ica_template, paint_components
    from xaibids.workflows.ica import run_group_ica

    wf, ex = config.workflow, config.execution
    if wf.ica_template:
        _extract_missing(config, None, subjects, "*_desc-ica_timeseries.tsv")
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
    with_bold = _group_ica_subjects(subjects)
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


def _made_volumes(config, atlas, subjects, pattern: str, what: str):
    """The participant step's images matching ``pattern`` in OUTPUT_DIR (made now for subjects
    without them) as ``("sub-<label>", path)`` pairs, and the template spaces they are in."""
    _extract_missing(config, atlas, subjects, pattern)
    out = Path(config.execution.output_dir)
    runs = [(f"sub-{s.subject}", str(path)) for s in subjects
            for path in sorted((out / f"sub-{s.subject}").glob(f"**/{pattern}"))]
    if not runs:
        raise XaibidsError(f"No {what} ({pattern}) were found or made in {out}.")
    spaces = sorted({m.group(1) for _, p in runs
                     if (m := re.search(r"_space-([A-Za-z0-9]+)_", Path(p).name))})
    return runs, spaces


def t1_source(config, atlas, subjects) -> FeatureSource:
    """T1w volumes on the template grid: made by the participant step (now, for subjects
    without them) in OUTPUT_DIR; maps painted on the grid, masked to the template brain."""
    from xaibids.features.t1 import resolution_label
    from xaibids.features.t1 import grid_mask
    from xaibids.stats.volumes import volume_image

    res = resolution_label(config.workflow.t1_resolution)
    runs, spaces = _made_volumes(config, atlas, subjects, f"*_res-{res}_desc-preproc_T1w.nii.gz",
                                 "preprocessed T1w volumes")
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


def trials_source(config, subjects) -> FeatureSource:
    """Single-trial activation maps made by the participant step (now, for subjects without
    them) in OUTPUT_DIR; the group brain mask is the intersection of the runs' masks."""
    import nibabel as nb
    from nilearn.masking import intersect_masks

    from xaibids.features.trials import TRIALS_SUFFIX
    from xaibids.stats.volumes import volume_image

    runs, spaces = _made_volumes(config, None, subjects, f"*_{TRIALS_SUFFIX}.nii.gz",
                                 "trial maps")
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


def _group_ica_subjects(subjects):
    with_bold = [s for s in subjects if s.bold_runs]
    if not with_bold:
        raise XaibidsError("Group ICA needs preprocessed BOLD runs (-d fmriprep=PATH); none "
                           "matched the selection. To use ICA timecourses made elsewhere, give "
                           "them with -d and --ica-template with their spatial maps.")
    return with_bold


def group_inputs(config, paths) -> dict[str, str]:
    """Fingerprints of what the group results are computed from: the given files, the
    participants table and the ``--feature-groups`` table."""
    ex, st = config.execution, config.statistics
    return fingerprints([*paths, Path(ex.bids_dir) / "participants.tsv", st.feature_groups])


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


def run_group(config, atlas, subjects) -> int:
    """Run the group level; returns the exit code."""
    from xaibids.learning.dataset import (
        assemble_dataset, assemble_trial_dataset, assemble_volume_dataset,
    )
    from xaibids.outputs.boilerplate import write_boilerplate
    from xaibids.cli.parser import option_names
    from xaibids.outputs.methods import parameters_text
    from xaibids.reports import build_reports
    from xaibids.workflows.group import run_group_ensemble

    ex, lc = config.execution, config.learning
    out = Path(ex.output_dir)
    participants = read_participants(Path(ex.bids_dir))  # --target checked before the run
    settings = config.result_settings()
    if config.workflow.features == "ica" and not config.workflow.ica_template:
        # group ICA is part of this level: check before it runs, on the BOLD runs it reads
        inputs = group_inputs(config, [path for s in _group_ica_subjects(subjects)
                                       for run in s.bold_runs for path in (run.bold, run.mask)])
        if _finished(config, settings, inputs):
            return 0
        before = snapshot(out)
        prepare_output(config, None)
        source = ica_source(config, subjects)
    else:
        source = {"ica": lambda: ica_source(config, subjects),
                  "t1": lambda: t1_source(config, atlas, subjects),
                  "trials": lambda: trials_source(config, subjects),
                  "roi": lambda: roi_source(config, atlas, subjects)}[config.workflow.features]()
        settings = config.result_settings()  # with the cleaning recorded in the features
        inputs = group_inputs(config, [path for _, path in source.runs])
        if _finished(config, settings, inputs):
            return 0
        before = snapshot(out)
        prepare_output(config, atlas)
    try:
        dataset = (assemble_trial_dataset(source.runs, participants, lc.target,
                                          lc.cv_group or None, mask=source.mask)
                   if source.trials else
                   assemble_volume_dataset(source.runs, participants, lc.target,
                                           lc.cv_group or None) if source.volumes else
                   assemble_dataset(source.runs, participants, lc.target, lc.cv_group or None,
                                    lc.length_policy))
    except ValueError as err:
        raise XaibidsError(str(err)) from None
    feature_groups = (None if source.volumes else
                      _feature_groups(config, dataset.feature_names) or source.domains or None)
    if atlas is not None and source.painter is not None and not source.volumes:
        unknown = sorted(set(dataset.feature_names) - set(atlas.labels["name"]))
        if unknown:
            LOGGER.warning("%d feature(s) are not regions of the %s atlas (e.g. %s); they stay "
                           "0 in the NIfTI maps.", len(unknown), atlas.name, unknown[0])
    LOGGER.info("Group level: %d sample(s) of %d subject(s), %s, classes %s.",
                len(dataset.subjects), len(set(dataset.subjects)),
                (f"volumes of {' x '.join(map(str, dataset.grid))} voxels" if source.volumes
                 else f"{dataset.X.shape[1]} time points x {dataset.X.shape[2]} features"),
                ", ".join(dataset.classes))
    # an atlas only means something on a grid in its template space
    ens_config = ensemble_config(config, dataset,
                                 None if source.trials and source.space is None else atlas)
    nip = config.nipype
    if lc.n_models == 0 and not ex.boilerplate_only:
        ens_config = _choose_ensemble_size(config, dataset, ens_config, out / "group")
    write_boilerplate("\n\n".join([
        source.methods_text,
        group_methods(config, ens_config, dataset, source.kind_text, trials=source.trials,
                      target_in_events=lc.target not in participants.columns,
                      volume_atlas=(atlas.name if source.volumes and source.space and atlas
                                    else None)),
        parameters_text(config, option_names()),
    ]), out / "logs")
    if ex.boilerplate_only:
        LOGGER.info("Boilerplate written to %s", out / "logs" / "CITATION.md")
        return 0
    # training chunks (fold x seeds) and per-fold attribution as Nipype nodes, so a cluster
    # plugin runs them in parallel; the result equals run_ensemble's
    result = run_group_ensemble(
        dataset, ens_config, out / "group" / "checkpoints", ex.work_dir, plugin=nip.plugin,
        plugin_args=nip.plugin_args, node_plugin_args=nip.training_plugin_args or None,
        num_threads=max(1, nip.omp_nthreads))
    verdict = write_group_outputs(config, source, dataset, result, ens_config, feature_groups)
    write_reliability_outputs(config, source, dataset, result, ens_config, out / "group")
    ens = result.performance[result.performance["model"].astype(str) == "ensemble"]
    LOGGER.info("Balanced accuracy per fold: %s (mean %.3f).",
                ", ".join(f"{v:.3f}" for v in ens["balanced_accuracy"]),
                ens["balanced_accuracy"].mean())
    reports = build_reports(out, n_procs=config.nipype.nprocs)
    record_completion(out, GROUP_RECORD, settings, inputs, written_since(before, snapshot(out)),
                      ex.run_uuid, ex.version)
    LOGGER.info("Reports: %s", out / "group.html" if (out / "group.html").exists() else
                ", ".join(map(str, reports)))
    # the verdict last, where the user looks; a warning when the maps are not to be read
    (LOGGER.info if verdict.above_chance else LOGGER.warning)(verdict.sentence())
    return 0


#: Key of the group level's completion record (one group result per OUTPUT_DIR).
GROUP_RECORD = "group"


def _finished(config, settings: dict, inputs: dict) -> bool:
    """Whether the group level already finished in OUTPUT_DIR with these settings and inputs
    (then nothing is done); raises when it finished with others and --overwrite is not given."""
    ex = config.execution
    if ex.boilerplate_only:
        return False
    done = is_finished(ex.output_dir, GROUP_RECORD, "group-level results", settings, inputs,
                       ex.overwrite)
    if done:
        LOGGER.info("Nothing to do: %s holds the group-level results of these settings and "
                    "inputs (%s); --overwrite computes them again.", ex.output_dir,
                    CompletionRecord.path(ex.output_dir, GROUP_RECORD))
    return done


def _choose_ensemble_size(config, dataset, ens_config, group_dir: Path):
    """``--n-models auto``: the ensemble size chosen on fold 1 (its models are checkpointed and
    reused), recorded in ``group/desc-ensembleSize_metrics.tsv``; returns the config to run."""
    from dataclasses import replace

    from xaibids.learning.ensemble import choose_ensemble_size

    lc = config.learning
    LOGGER.info("--n-models auto: doubling fold 1's ensemble from 2 models (at most %d) until "
                "its stabilized maps stop changing (r >= %g).", lc.max_models,
                lc.ensemble_stability)
    if lc.max_models < 8:
        LOGGER.warning("--n-models auto needs the maps of 2, 4 and 8 models (n, 2n, 4n) to "
                       "agree before it stops; with --max-models %d it uses %d models. Give "
                       "--max-models 8 or more to let it choose.", lc.max_models, lc.max_models)
    n_models, table = choose_ensemble_size(dataset, ens_config, group_dir / "checkpoints",
                                           threshold=lc.ensemble_stability)
    group_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(group_dir / "desc-ensembleSize_metrics.tsv",
                      table.to_csv(sep="\t", index=False, na_rep="n/a"))
    LOGGER.info("--n-models auto: %d models per fold.", n_models)
    return replace(ens_config, n_models=n_models)


def _feature_groups(config, feature_names):
    """``--feature-groups`` read and checked against the features (None when not given)."""
    from xaibids.stats import load_feature_groups

    path = config.statistics.feature_groups
    if not path:
        return None
    try:
        return load_feature_groups(path, feature_names)
    except ValueError as err:
        raise XaibidsError(str(err)) from None


def write_group_outputs(config, source, dataset, result, ens_config, feature_groups):
    """Per-subject maps, group tables and statistics of every method; returns the classifier's
    :class:`~xaibids.stats.verdict.Verdict` (no feature is selected when it is not above
    chance)."""
    from xaibids.outputs.maps import write_group_importance_map, write_subject_maps
    from xaibids.outputs.methods import method_parameters
    from xaibids.stats import compute_group_statistics, write_group_statistics

    ex, st = config.execution, config.statistics
    out = Path(ex.output_dir)
    group_dir = out / "group"
    group_dir.mkdir(parents=True, exist_ok=True)
    verdict = write_verdict(config, dataset, result, group_dir)
    selection = {"selection": SelectionRule(st.selection, st.selection_alpha),
                 "withheld": None if verdict.above_chance else
                 "the classifier is not above chance (desc-performance_metrics.tsv)."}
    if len(result.ig_convergence):
        atomic_write_text(group_dir / "desc-igConvergence_metrics.tsv",
                          result.ig_convergence.to_csv(sep="\t", index=False, na_rep="n/a"))
    roots = {"": str(out), "raw": ex.bids_dir, **ex.derivatives}
    n_maps = write_subject_maps(out, Path(ex.work_dir) / "group_outputs", roots, source, dataset,
                                result, ens_config, method_parameters(ens_config))
    LOGGER.info("Wrote %d subject map(s).", n_maps)
    if source.volumes:
        write_volume_outputs(config, source, dataset, result, group_dir, selection)
        return verdict
    for method, maps in result.maps.items():
        stats = compute_group_statistics(
            maps, dataset.X, dataset.y, dataset.classes, dataset.feature_names,
            subjects=dataset.subjects, feature_groups=feature_groups, alpha=st.fdr_alpha,
            n_boot=st.n_bootstrap, ci_level=st.ci_level, random_state=config.seeds.random_seed,
            selection_importance=result.mean_model_importance.get(method), **selection)
        if source.reference is not None:  # where each region lies, by Harvard-Oxford's names
            table = stats.importance.merge(source.reference, how="left", left_on="feature",
                                           right_on="name").drop(columns="name")
            order = ["feature", "reference_region", "reference_share"]
            stats.importance = table[order + [c for c in table.columns if c not in order]]
        write_group_statistics(stats, group_dir, method)
        if source.painter is not None:
            write_group_importance_map(group_dir, method, stats.importance, source)
        top = stats.importance.sort_values("importance_norm", ascending=False).head(5)
        LOGGER.info("%s: top features %s.", method, ", ".join(
            f"{r.feature}{_where(r)} ({r.importance_norm:.2f})" for r in top.itertuples()))
        _log_selection(method, stats.importance, "features", st.selection)
    return verdict


def write_verdict(config, dataset, result, group_dir: Path):
    """Test the out-of-fold predictions against chance and write ``desc-performance_metrics.tsv``
    (per fold, and the verdict in the row ``fold = all``) with its sidecar."""
    import json

    from xaibids.stats.verdict import (
        out_of_fold_verdict, performance_with_verdict, verdict_sidecar,
    )

    verdict = out_of_fold_verdict(result.map_info, len(dataset.classes),
                                  alpha=config.statistics.selection_alpha,
                                  random_state=config.seeds.random_seed)
    atomic_write_text(group_dir / "desc-performance_metrics.tsv",
                      performance_with_verdict(result.performance, verdict).to_csv(
                          sep="\t", index=False, na_rep="n/a"))
    atomic_write_text(group_dir / "desc-performance_metrics.json",
                      json.dumps(verdict_sidecar(verdict), indent=2) + "\n")
    return verdict


def _log_selection(method: str, table: pd.DataFrame, what: str, rule: str) -> None:
    """One line on what the selection ``rule`` selected (the first ten names)."""
    chosen = [str(f) for f in table.loc[table["selected"].astype(bool), "feature"]]
    names = ", ".join(chosen[:10]) + (" ..." if len(chosen) > 10 else "")
    LOGGER.info("%s: %d of %d %s selected (%s rule)%s.", method, len(chosen), len(table), what,
                rule, f": {names}" if chosen else "")


def _where(row) -> str:
    """`` [<Harvard-Oxford region> <share> %]`` for a row of an importance table that has one."""
    region = getattr(row, "reference_region", None)
    return f" [{region} {100 * row.reference_share:.0f} %]" if isinstance(region, str) else ""


def write_volume_outputs(config, source, dataset, result, group_dir: Path,
                         selection: dict) -> None:
    """Group statistics of voxel maps (:mod:`xaibids.stats.volumes`) with the ``--atlas``
    regions: region importance with Cohen's d and the ``selection`` rule (``selection`` and
    ``withheld`` of :func:`~xaibids.stats.volumes.compute_volume_statistics`), the group map,
    Kan et al. 2020's region ranking."""
    import nibabel as nb

    from xaibids.features.atlases import load_atlas
    from xaibids.stats._common import statistical_units
    from xaibids.stats.volumes import (
        class_mean_maps, compute_volume_statistics, subject_mean_map, write_class_maps,
        write_group_mean_map, write_volume_statistics,
    )

    st = config.statistics
    mask = source.mask
    units = statistical_units(dataset.subjects, dataset.y)
    for method, maps in result.maps.items():
        write_class_maps(class_mean_maps(maps, dataset.y, len(dataset.classes), units),
                         dataset.classes, group_dir, method, dataset.affine, dataset.grid,
                         source.space, mask=mask)
    if source.space is None:  # a grid in no template space: no atlas regions to rank
        for method, maps in result.maps.items():
            path = write_group_mean_map(
                subject_mean_map(maps, dataset.y, units).reshape(dataset.grid),
                group_dir, method, dataset.affine, mask=mask)
            LOGGER.info("%s: group map %s (the grid is in no template space: no region "
                        "statistics).", method, path.name)
        return
    atlas = load_atlas(config.workflow.atlas)
    labels = np.asarray(nb.load(atlas_on_grid(config, atlas, dataset)).dataobj).astype(int)
    for method, maps in result.maps.items():
        stats = compute_volume_statistics(
            maps, dataset.y, dataset.classes, dataset.grid, labels, atlas.labels,
            subjects=units, n_boot=st.n_bootstrap, ci_level=st.ci_level,
            random_state=config.seeds.random_seed,
            selection_importance=result.mean_model_importance.get(method), **selection)
        write_volume_statistics(stats, group_dir, method, dataset.affine, source.space or "",
                                mask=mask, atlas=atlas.name)
        top = stats.ranking.head(5)
        LOGGER.info("%s: top %s regions %s.", method, atlas.name,
                    ", ".join(f"{r.region} ({r.share:.2f})" for r in top.itertuples()))
        _log_selection(method, stats.importance, f"{atlas.name} regions", st.selection)


def write_reliability_outputs(config, source, dataset, result, ens_config,
                              group_dir: Path) -> list[Path]:
    """The reliability report card of the maps (the method papers (Strock et al. 2025, Kan et al. 2020, Thibeau-Sutre et al. 2023, Gotsopoulos et al. 2018)) under ``group/``.

    Stability across seeds comes with the ensemble; agreement between methods and between IG
    baselines is computed from the stabilized maps when there are several; the cascading
    randomization check and infidelity/max-sensitivity run on the first model of fold 1 with
    ``--reliability-samples`` of its test subjects; ``--permutations`` adds the permutation
    test of Gotsopoulos et al. 2018.
    """
    import torch

    from xaibids.attribution.reliability import (
        baseline_agreement, faithfulness, method_agreement, method_dice, randomization_check,
        write_reliability,
    )
    from xaibids.learning.ensemble import fold_method_params, load_fold_models, permutation_test

    ac = config.attribution
    tables, metrics = {}, [result.stability]
    brain = None
    if source.mask is not None:  # voxel maps: compare the brain's voxels only (Kan et al. 2020)
        brain = np.asarray(source.mask).ravel()
    if len(result.maps) > 1:
        tables["method_agreement"] = method_agreement(result.maps, mask=brain)
        tables["method_dice"] = method_dice(result.maps, mask=brain)
    if len(ens_config.baselines) > 1 and "ig" in ens_config.attribution:
        tables["baseline_agreement"] = baseline_agreement(result.maps)
    if ac.reliability_samples:
        models, X_test, y_test, baselines = load_fold_models(
            dataset, ens_config, group_dir / "checkpoints", fold=1)
        n = min(ac.reliability_samples, len(y_test))
        inputs = torch.as_tensor(X_test[:n], dtype=torch.float32)
        target = torch.as_tensor(y_test[:n], dtype=torch.long)
        common = {"methods": ens_config.attribution,
                  "baseline": baselines[ens_config.baselines[0]],
                  "method_params": fold_method_params(ens_config, result, fold=1),
                  "seed": config.seeds.random_seed}
        LOGGER.info("Reliability checks on %d test subject(s) of fold 1 (model randomization, "
                    "infidelity, max-sensitivity).", n)
        tables["randomization"] = randomization_check(models[0], inputs, target, **common)
        metrics.append(faithfulness(models[0], inputs, target, **common))
    if ac.permutations:
        LOGGER.info("Permutation test: %d label-shuffled run(s) plus %d for the "
                    "reproducibility threshold.", ac.permutations, ens_config.n_models)
        perm = permutation_test(dataset, ens_config, ac.permutations,
                                group_dir / "checkpoints" / "permutations", real=result,
                                progress=True)
        tables["permutation"] = perm.tables
        metrics.append(pd.DataFrame(
            [{"method": "ensemble", "metric": "permutation_p_value", "value": perm.p_value,
              "n_samples": len(dataset.y)}]
            + [{"method": key, "metric": "reproducibility_threshold", "value": value,
                "n_samples": len(dataset.y)} for key, value in perm.thresholds.items()]))
    tables["metrics"] = pd.concat([m for m in metrics if len(m)], ignore_index=True)
    return write_reliability(group_dir, tables)
