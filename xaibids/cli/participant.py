"""Participant level: find each subject's inputs, then extract features with Nipype."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from xaibids.errors import XaibidsError
from xaibids.inputs.layout import (
    SubjectData,
    build_layout,
    collect_bold_runs,
    collect_timeseries,
    select_subjects,
)

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
    return write_atlas_files(config, atlas) if atlas is not None else None


def write_atlas_files(config, atlas) -> tuple[str, str]:
    """The atlas label image and labels TSV in the work dir (written once per run)."""
    atlas_dir = Path(config.execution.work_dir) / "atlas"
    atlas_dir.mkdir(parents=True, exist_ok=True)
    stem = atlas_dir / f"atlas-{atlas.name}_dseg"
    atlas.img.to_filename(f"{stem}.nii.gz")
    atlas.labels.to_csv(f"{stem}.tsv", sep="\t", index=False)
    return f"{stem}.nii.gz", f"{stem}.tsv"


def run_participant(config, atlas, subjects: list[SubjectData]) -> int:
    """Build and run the participant workflow; report per subject; non-zero if any failed."""
    from xaibids.outputs.boilerplate import workflow_description, write_boilerplate
    from xaibids.outputs.methods import parameters_text
    from xaibids.workflows.base import init_xaibids_participant_wf

    ex = config.execution
    atlas_files = prepare_output(config, atlas)
    if config.workflow.features == "ica" and not config.workflow.ica_template:
        LOGGER.info("--features ica without --ica-template: group ICA needs every subject and "
                    "runs at the start of the group level; nothing to extract per participant.")
        return 0
    crash_dirs = {s.subject: Path(ex.output_dir) / "logs" / f"sub-{s.subject}" / ex.run_uuid
                  for s in subjects}
    workflow = init_xaibids_participant_wf(config, subjects, atlas, atlas_files, crash_dirs)
    write_boilerplate(workflow_description(workflow) + "\n\n" + parameters_text(config),
                      Path(ex.output_dir) / "logs")
    if ex.boilerplate_only:
        LOGGER.info("Boilerplate written to %s", Path(ex.output_dir) / "logs" / "CITATION.md")
        return 0
    for s in subjects:
        if not s.bold_runs:
            LOGGER.info("sub-%s: timeseries already provided (%d file(s)); nothing to extract.",
                        s.subject, len(s.timeseries))
    to_run = [s for s in subjects if s.bold_runs]
    if not to_run:
        return 0
    nip = config.nipype
    workflow.config["execution"].update({
        "crashdump_dir": str(Path(ex.output_dir) / "logs"),
        "crashfile_format": "txt",
        "stop_on_first_crash": nip.stop_on_first_crash,
        "remove_unnecessary_outputs": False,
    })
    n_runs = sum(len(s.bold_runs) for s in to_run)
    what = (f"ROI timecourses ({atlas.name} atlas)" if atlas is not None else
            f"ICA timecourses ({Path(config.workflow.ica_template).name})")
    LOGGER.info("Extracting %s from %d run(s) of %d subject(s) with the Nipype %s plugin",
                what, n_runs, len(to_run), nip.plugin)
    start = time.time()
    failed_run = None
    try:
        workflow.run(plugin=nip.plugin, plugin_args=nip.plugin_args)
    except RuntimeError as err:  # Nipype's "Workflow did not execute cleanly"
        failed_run = err
    failed = [s.subject for s in to_run if list(crash_dirs[s.subject].glob("crash-*"))]
    for s in to_run:
        status = "FAILED" if s.subject in failed else "done"
        crash = f" — see {crash_dirs[s.subject]}" if s.subject in failed else ""
        LOGGER.info("sub-%s: %s (%d run(s))%s", s.subject, status, len(s.bold_runs), crash)
    LOGGER.info("Participant level finished in %.0f s: %d of %d subject(s) succeeded.",
                time.time() - start, len(to_run) - len(failed), len(to_run))
    if failed or failed_run:
        if not failed:
            LOGGER.error("The workflow did not finish: %s", failed_run)
        return 1
    return 0
