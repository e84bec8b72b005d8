"""Participant level: find each subject's inputs, then extract features with Nipype."""

from __future__ import annotations

import hashlib
import logging
import re
import time
from pathlib import Path

import numpy as np

from xaibids.errors import XaibidsError, crash_message
from xaibids.inputs.layout import (
    SubjectData,
    build_layout,
    collect_bold_runs,
    collect_t1w,
    collect_timeseries,
    collect_trial_runs,
    select_subjects,
)
from xaibids.outputs.completion import (
    fingerprint, fingerprints, is_finished, record_completion, snapshot, written_since,
)
from xaibids.workflows import execution_plugin_args, set_poll_interval

LOGGER = logging.getLogger("xaibids")


def collect_inputs(config, atlas) -> list[SubjectData]:
    """Query every selected subject's inputs; fail before writing anything if one lacks them.

    ``atlas`` is None for ICA features (no atlas; BOLD in any template space).
    """
    ex = config.execution
    layout = build_layout(Path(ex.bids_dir), ex.derivatives, Path(ex.work_dir))
    labels = select_subjects(layout, ex.participant_label)
    need_confounds = config.workflow.confounds != "none"
    subjects, lacking = [], []
    if config.workflow.features == "t1":
        for label in labels:
            data = SubjectData(subject=label, t1w=collect_t1w(layout, label, ex.bids_filters,
                                                              ex.session_label))
            if not data.t1w:
                lacking.append(label)
            subjects.append(data)
        if lacking:
            raise XaibidsError(
                f"No T1w image matched the selection for "
                f"{', '.join('sub-' + s for s in lacking)}: --features t1 reads "
                "sub-<label>/anat/sub-<label>_T1w.nii.gz of the raw dataset, or "
                "*_space-<template>_desc-preproc_T1w.nii.gz of a derivatives dataset given with "
                "-d. Check --session-label and the 't1w' query of --bids-filter-file."
            )
        return subjects
    if config.workflow.features == "trials":
        for label in labels:
            subjects.append(SubjectData(subject=label, bold_runs=collect_trial_runs(
                layout, label, ex.bids_filters, ex.session_label, ex.task_id, need_confounds)))
        lacking = [s.subject for s in subjects if not s.bold_runs]
        if lacking:
            raise XaibidsError(
                f"No BOLD run matched the selection for "
                f"{', '.join('sub-' + s for s in lacking)}: --features trials reads "
                "preprocessed BOLD (-d fmriprep=PATH) or the raw dataset's BOLD runs, with their "
                "events.tsv. Check --task-id, --session-label and --bids-filter-file.")
        return subjects
    for label in labels:
        data = SubjectData(subject=label)
        data.timeseries = collect_timeseries(layout, label, ex.bids_filters, ex.session_label,
                                             ex.task_id, atlas=None,
                                             kind=config.workflow.features)
        data.bold_runs = collect_bold_runs(layout, label, ex.bids_filters, ex.session_label,
                                           ex.task_id, atlas.space if atlas else None,
                                           need_confounds)
        if not data.bold_runs and not data.timeseries:
            lacking.append(label)
        subjects.append(data)
    if lacking:
        raise XaibidsError(
            f"No preprocessed BOLD in a template space (or timeseries TSVs) matched the selection "
            f"for {', '.join('sub-' + s for s in lacking)}. Pass the fMRIPrep derivatives with "
            "-d fmriprep=PATH (they must contain *_space-<template>_desc-preproc_bold.nii.gz), "
            "or check --task-id, --session-label and --bids-filter-file."
        )
    for data in subjects:
        for run in data.bold_runs:
            if atlas is not None and atlas.space and run.space != atlas.space:
                LOGGER.warning(
                    "%s is in %s but the %s atlas is in %s: the atlas is resampled "
                    "(nearest neighbour) onto the BOLD grid, and any difference between the two "
                    "templates remains. Use an atlas in %s for exact correspondence.",
                    Path(run.bold).name, run.space, atlas.name, atlas.space, run.space,
                )
    return subjects


def feature_set(config, atlas) -> str:
    """The label of a participant's feature files: ``atlas-<name>``, ``ica-<template>`` or
    ``t1-res<mm>``."""
    if config.workflow.features == "t1":
        from xaibids.features.t1 import resolution_label

        return f"t1-res{resolution_label(config.workflow.t1_resolution)}"
    if config.workflow.features == "trials":
        return "trials"
    if atlas is not None:
        return f"atlas-{atlas.name}"
    stem = Path(config.workflow.ica_template).name.split(".")[0]
    return "ica-" + re.sub(r"[^A-Za-z0-9]", "", stem)


#: Settings that shape a participant's timecourses (the rest only affect the group level).
EXTRACTION_SETTINGS = {
    "roi": ("features", "atlas", "confounds", "detrend", "standardize", "high_pass", "low_pass",
            "min_coverage"),
    "ica": ("features", "ica_template", "confounds", "detrend", "standardize", "high_pass",
            "low_pass", "min_coverage"),
    "t1": ("features", "t1_resolution"),
    "trials": ("features", "confounds", "detrend", "standardize", "high_pass", "low_pass"),
}


def extraction_settings(config, atlas) -> dict:
    """What a participant's timecourses depend on besides its input files (and the atlas's
    content, so an edited atlas file is noticed)."""
    ex, wf = config.execution, config.workflow
    settings = {f"workflow.{k}": getattr(wf, k) for k in EXTRACTION_SETTINGS[wf.features]}
    settings.update({"execution.session_label": ex.session_label,
                     "execution.task_id": ex.task_id, "execution.bids_filters": ex.bids_filters})
    if wf.features == "t1":
        settings["execution.random_seed"] = config.seeds.random_seed  # registration sampling
    elif wf.features == "trials":
        pass  # no atlas: the trial maps are voxels
    elif atlas is not None:
        digest = hashlib.sha256(np.ascontiguousarray(atlas.img.dataobj).tobytes())
        digest.update(np.asarray(atlas.img.affine).tobytes())
        digest.update(atlas.labels.to_csv(sep="\t", index=False).encode())
        settings["atlas_content"] = digest.hexdigest()
    elif wf.ica_template:
        settings["ica_template_content"] = fingerprint(wf.ica_template)
    return settings


def feature_kind(config, atlas) -> str:
    """What the participant step makes, in words (for the log)."""
    if config.workflow.features == "t1":
        return f"T1w volumes on the {config.workflow.t1_resolution:g} mm template grid"
    if config.workflow.features == "trials":
        return "single-trial activation maps"
    if atlas is not None:
        return f"ROI timecourses ({atlas.name} atlas)"
    return f"ICA timecourses ({Path(config.workflow.ica_template).name})"


def pending_subjects(config, atlas, subjects) -> dict[str, tuple]:
    """Subjects whose timecourses must be (re)made: ``{label: (record key, settings, inputs)}``.

    Subjects that finished earlier with the same settings and inputs are left out (a rerun is a
    no-op); one that finished with others stops the run before anything is written, unless
    ``--overwrite`` (:func:`xaibids.outputs.completion.is_finished`).
    """
    ex = config.execution
    settings = extraction_settings(config, atlas)
    kind = feature_kind(config, atlas)
    pending = {}
    for s in subjects:
        if not s.to_extract:
            continue
        key = f"sub-{s.subject}_{feature_set(config, atlas)}"
        inputs = fingerprints(path for item in s.to_extract for path in item.files())
        if is_finished(ex.output_dir, key, f"the {kind} of sub-{s.subject}", settings, inputs,
                       ex.overwrite):
            LOGGER.info("sub-%s: %s already made with the same settings and inputs; nothing to "
                        "do (--overwrite makes them again).", s.subject, kind)
        else:
            pending[s.subject] = (key, settings, inputs)
    return pending


def prepare_output(config, atlas) -> tuple[str, str] | None:
    """Create the output dataset's shared files and write the atlas once into the work dir.

    Returns the atlas files (None without an atlas, for ICA features).
    """
    from xaibids.outputs.derivatives import (
        save_config, write_bidsignore, write_dataset_description,
    )

    ex = config.execution
    out = Path(ex.output_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
        (out / "logs").mkdir(exist_ok=True)
    except OSError as err:
        raise XaibidsError(f"Cannot create the output directory {out}: {err.strerror}.") from None
    write_dataset_description(out, ex.bids_dir, ex.derivatives)
    write_bidsignore(out)
    save_config(config, out / "logs" / "config.toml")
    if atlas is None or config.workflow.features == "trials":
        return None
    return write_atlas_files(config, atlas)


def write_atlas_files(config, atlas) -> tuple[str, str]:
    """The atlas label image and labels TSV in the work dir (written once per run)."""
    atlas_dir = Path(config.execution.work_dir) / "atlas"
    atlas_dir.mkdir(parents=True, exist_ok=True)
    stem = atlas_dir / f"atlas-{atlas.name}_dseg"
    atlas.img.to_filename(f"{stem}.nii.gz")
    atlas.labels.to_csv(f"{stem}.tsv", sep="\t", index=False)
    return f"{stem}.nii.gz", f"{stem}.tsv"


def run_participant(config, atlas, subjects: list[SubjectData],
                    option_names: dict[str, str]) -> int:
    """Build and run the participant workflow; report per subject; non-zero if any failed.

    ``option_names`` maps config fields to the command line's options, for the methods text
    (:func:`xaibids.cli.parser.option_names`).
    """
    from xaibids.outputs.boilerplate import workflow_description, write_boilerplate
    from xaibids.outputs.methods import parameters_text
    from xaibids.workflows.base import init_xaibids_participant_wf

    ex = config.execution
    if config.workflow.features == "ica" and not config.workflow.ica_template:
        prepare_output(config, atlas)
        LOGGER.info("--features ica without --ica-template: group ICA needs every subject and "
                    "runs at the start of the group level; nothing to extract per participant.")
        return 0
    records = pending_subjects(config, atlas, subjects)  # raises before anything is written
    if any(s.to_extract for s in subjects) and not records and not ex.boilerplate_only:
        LOGGER.info("Nothing to do: every selected subject's features are in %s.",
                    ex.output_dir)
        return 0
    if not ex.boilerplate_only:
        subjects = [s for s in subjects if not s.to_extract or s.subject in records]
    atlas_files = prepare_output(config, atlas)
    crash_dirs = {s.subject: Path(ex.output_dir) / "logs" / f"sub-{s.subject}" / ex.run_uuid
                  for s in subjects}
    workflow = init_xaibids_participant_wf(config, subjects, atlas, atlas_files, crash_dirs)
    write_boilerplate(workflow_description(workflow) + "\n\n"
                      + parameters_text(config, option_names),
                      Path(ex.output_dir) / "logs")
    if ex.boilerplate_only:
        LOGGER.info("Boilerplate written to %s", Path(ex.output_dir) / "logs" / "CITATION.md")
        return 0
    for s in subjects:
        if not s.to_extract:
            LOGGER.info("sub-%s: timeseries already provided (%d file(s)); nothing to extract.",
                        s.subject, len(s.timeseries))
    to_run = [s for s in subjects if s.to_extract]
    if not to_run:
        return 0
    nip = config.nipype
    workflow.config["execution"].update({
        "crashdump_dir": str(Path(ex.output_dir) / "logs"),
        "crashfile_format": "txt",
        "stop_on_first_crash": nip.stop_on_first_crash,
        "remove_unnecessary_outputs": False,
    })
    set_poll_interval(workflow, nip.plugin)
    n_runs = sum(len(s.to_extract) for s in to_run)
    LOGGER.info("Extracting %s from %d input(s) of %d subject(s) with the Nipype %s plugin",
                feature_kind(config, atlas), n_runs, len(to_run), nip.plugin)
    start = time.time()
    before = {s.subject: snapshot(ex.output_dir, f"sub-{s.subject}") for s in to_run}
    failed_run = None
    try:
        workflow.run(plugin=nip.plugin,
                     plugin_args=execution_plugin_args(nip.plugin, nip.plugin_args))
    except RuntimeError as err:  # Nipype's "Workflow did not execute cleanly"
        failed_run = err
    failed = [s.subject for s in to_run if list(crash_dirs[s.subject].glob("crash-*"))]
    for s in to_run:
        if s.subject not in failed:
            key, settings, inputs = records[s.subject]
            written = written_since(before[s.subject],
                                    snapshot(ex.output_dir, f"sub-{s.subject}"))
            record_completion(ex.output_dir, key, settings, inputs, written, ex.run_uuid,
                              ex.version)
        if s.subject in failed:
            for crash_file in sorted(crash_dirs[s.subject].glob("crash-*")):
                LOGGER.error("sub-%s: %s (traceback in the crash file %s)", s.subject,
                             crash_message(crash_file) or "a workflow node failed", crash_file)
        status = "FAILED" if s.subject in failed else "done"
        LOGGER.info("sub-%s: %s (%d input(s))", s.subject, status, len(s.to_extract))
    LOGGER.info("Participant level finished in %.0f s: %d of %d subject(s) succeeded.",
                time.time() - start, len(to_run) - len(failed), len(to_run))
    if failed or failed_run:
        if not failed:
            LOGGER.error("The workflow did not finish: %s", failed_run)
        return 1
    return 0
