"""Top-level participant workflow: one sub-workflow per subject, one per run within it."""

from __future__ import annotations

from copy import deepcopy

from niworkflows.engine.workflows import LiterateWorkflow as Workflow

from xaibids import __version__
from xaibids.errors import XaibidsError
from xaibids.outputs.derivatives import source_uri
from xaibids.workflows.roi import init_roi_timeseries_wf


def _run_name(entities: dict) -> str:
    parts = [f"{k}_{entities[k]}" for k in ("session", "task", "acquisition", "run", "echo")
             if entities.get(k) is not None]
    return "_".join(parts) or "run"


def init_xaibids_participant_wf(config, subjects, atlas, atlas_files, crash_dirs,
                                ica_template_files=None):
    """Build the participant-level workflow.

    ``config.workflow.features`` picks the per-run sub-workflow: ``roi`` (ROI timecourses),
    ``ica`` with ``config.workflow.ica_template`` (template-mode ICA timecourses, see
    :func:`xaibids.workflows.ica.init_ica_timeseries_wf`) or ``t1`` (one per T1w image,
    :func:`xaibids.workflows.t1.init_t1_preproc_wf`) or ``trials`` (single-trial activation
    maps of every BOLD run, :func:`xaibids.workflows.trials.init_trial_maps_wf`). Group ICA (``ica`` without a
    template) needs all subjects and runs at the group level
    (:func:`xaibids.workflows.ica.run_group_ica`); asking for it here raises
    :class:`~xaibids.errors.XaibidsError`.

    Parameters
    ----------
    config : :class:`xaibids.config.Config`
    subjects : list of :class:`xaibids.inputs.layout.SubjectData`
        Subjects with the BOLD runs or T1w images to extract (subjects without are skipped).
    atlas : :class:`xaibids.features.atlases.Atlas`
    atlas_files : tuple of str
        Label image and labels TSV of ``atlas`` written to the work directory.
    crash_dirs : dict
        Subject label → folder for that subject's crash files.
    ica_template_files : tuple of str, optional
        ``(maps, labels)`` from :func:`xaibids.workflows.ica.prepare_ica_template`; made from
        ``config.workflow.ica_template`` in the work directory when not given (ICA only;
        ``atlas`` and ``atlas_files`` are then unused and may be ``None``).
    """
    ex = config.execution
    features = config.workflow.features
    if features == "ica":
        from xaibids.workflows.ica import init_ica_timeseries_wf, prepare_ica_template

        if not config.workflow.ica_template:
            raise XaibidsError(
                "--features ica without --ica-template runs group ICA, which needs all subjects "
                "and is done at the group level; the participant level extracts ICA timecourses "
                "only with a template (--ica-template MAPS.nii.gz)."
            )
        if ica_template_files is None:
            ica_template_files = prepare_ica_template(config.workflow.ica_template, ex.work_dir)
    workflow = Workflow(name="xaibids_participant_wf")
    workflow.base_dir = ex.work_dir
    workflow.__desc__ = (
        f"Results included in this manuscript come from processing with xaibids {__version__}, "
        "which is based on Nipype [@nipype1] and niworkflows; data were queried with PyBIDS "
        "[@pybids]. "
    )
    roots = {"raw": ex.bids_dir, **ex.derivatives}
    for subject in subjects:
        if not subject.to_extract:
            continue
        subject_wf = Workflow(name=f"single_subject_{subject.subject}_wf")
        subject_wf.config["execution"].update(
            {"crashdump_dir": str(crash_dirs[subject.subject]), "crashfile_format": "txt"})
        for t1w in subject.t1w:
            from xaibids.workflows.t1 import init_t1_preproc_wf

            subject_wf.add_nodes([init_t1_preproc_wf(
                t1w, config.workflow, ex.output_dir,
                [source_uri(path, roots) for path in t1w.files()], config.seeds.random_seed,
                num_threads=max(1, config.nipype.omp_nthreads),
                name=f"t1_preproc_{_run_name(t1w.entities)}_wf")])
        for run in subject.bold_runs:
            sources = [source_uri(path, roots)
                       for path in (run.bold, run.mask, run.confounds, run.events) if path]
            if features == "trials":
                from xaibids.workflows.trials import init_trial_maps_wf

                run_wf = init_trial_maps_wf(run, config.workflow, ex.output_dir, sources,
                                            source_uri(run.mask, roots),
                                            name=f"trial_maps_{_run_name(run.entities)}_wf")
            elif features == "ica":
                run_wf = init_ica_timeseries_wf(
                    run, ica_template_files, config.workflow, ex.output_dir, sources,
                    name=f"ica_timeseries_{_run_name(run.entities)}_wf",
                    template_source=config.workflow.ica_template,
                    stage2=config.workflow.ica_subject_maps,
                )
            else:
                run_wf = init_roi_timeseries_wf(
                    run, atlas, atlas_files, config.workflow, ex.output_dir, sources,
                    name=f"roi_timeseries_{_run_name(run.entities)}_wf",
                )
            subject_wf.add_nodes([run_wf])
        # as fMRIPrep does: nodes keep their own copy of the config, so push the crash folder
        for node in subject_wf._get_all_nodes():
            node.config = deepcopy(subject_wf.config)
        workflow.add_nodes([subject_wf])
    return workflow
