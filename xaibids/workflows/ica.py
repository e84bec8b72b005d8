"""ICA features: template mode per participant (Nipype), group ICA at the start of the group level.

* **Template mode** (``--features ica --ica-template MAPS.nii.gz``): every run is independent,
  so :func:`init_ica_timeseries_wf` mirrors the ROI workflow (one sub-workflow per run in the
  participant workflow). The template is validated and copied once into the work directory by
  :func:`prepare_ica_template`.
* **Group ICA** (``--features ica`` without a template): the decomposition needs every
  subject, so it cannot run per participant. :func:`run_group_ica` is called once at the start
  of the group level; it cleans each run, fits the group maps, writes them BIDS-Atlas-like under
  ``OUTPUT_DIR/atlases/atlas-<Label>/`` and every run's timecourses through
  :class:`~xaibids.interfaces.bids.DerivativesDataSink`.

Outputs (both modes)::

    sub-<l>/[ses-<s>/]func/sub-<l>[_ses-<s>]_task-<t>[_run-<r>]_desc-ica_timeseries.tsv/.json
    sub-<l>/[ses-<s>/]func/…_space-<tpl>_desc-ica_components.nii.gz/.json  (stage 2)
    atlases/atlas-<Label>/atlas-<Label>_space-<tpl>_desc-ica_components.nii.gz/.tsv/.json
    atlases/atlas-<Label>/atlas-<Label>_space-<tpl>_desc-brain_mask.nii.gz         (group ICA)

``<Label>`` is ``CanICA<n>`` or ``DictLearning<n>`` (e.g. ``CanICA20``).
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import nibabel as nb
import numpy as np
import pandas as pd
from nipype.interfaces import utility as niu
from nipype.pipeline import engine as pe
from niworkflows.engine.workflows import LiterateWorkflow as Workflow

from xaibids.errors import XaibidsError
from xaibids.features.ica import (
    _ALGORITHM_NAME,
    ICA_ALGORITHMS,
    MASK_MODES,
    IcaTimeseries,
    clean_run,
    dual_regression,
    fit_group_ica,
    group_ica_description,
    group_mask,
    template_description,
    write_component_maps,
)
from xaibids.features.ica_templates import (
    IcaError, default_component_names, load_ica_template, template_sidecar,
)
from xaibids.fileio import write_timeseries_tsv
from xaibids.features.timeseries import ExtractionError
from xaibids.interfaces.bids import DerivativesDataSink
from xaibids.interfaces.ica import ExtractIcaTimeseries, ica_sidecar
from xaibids.fileio import atomic_path

LOGGER = logging.getLogger("xaibids")

#: Entities dropped from the timeseries names (component timecourses have no space).
TIMESERIES_DISMISS = ("space", "res", "den")
#: Entities dropped from subject-specific maps: with ``res`` kept, niworkflows' sink queries
#: TemplateFlow for the resolution's description (a download when not cached).
MAPS_DISMISS = ("res", "den")


# --------------------------------------------------------------------------------------------
# Template mode


def prepare_ica_template(template: str | Path, work_dir: str | Path,
                         labels: str | Path | None = None) -> tuple[str, str]:
    """Validate the ICA template and write it once into ``WORK_DIR/ica_template/``.

    Returns ``(maps_path, labels_path)``: the 4D maps (float32, original file name) and a TSV
    with ``index``, ``name``, ``domain`` (``n/a`` where none) in volume order — the
    ``template_files`` of :func:`init_ica_timeseries_wf`. The template's ``Space`` (from a
    JSON beside it) is kept in a JSON beside the copy; runs in another space get a warning. Raises
    :class:`~xaibids.errors.XaibidsError` naming the file and the fix.
    """
    try:
        tpl = load_ica_template(template, labels)
    except ExtractionError as err:
        raise XaibidsError(str(err)) from None
    out_dir = Path(work_dir) / "ica_template"
    out_dir.mkdir(parents=True, exist_ok=True)
    name = Path(template).name
    if not name.endswith((".nii", ".nii.gz")):
        name += ".nii.gz"
    maps_path = out_dir / name
    tpl.img.to_filename(maps_path)
    labels_path = out_dir / "components.tsv"
    tpl.labels.to_csv(labels_path, sep="\t", index=False, na_rep="n/a")
    sidecar = template_sidecar(maps_path, ".json")
    if tpl.space:
        sidecar.write_text(json.dumps({"Space": tpl.space}) + "\n")
    else:
        sidecar.unlink(missing_ok=True)
    LOGGER.info("ICA template %s: %d components%s.", Path(template).name, tpl.n_components,
                f" named by {Path(tpl.labels_path).name}" if tpl.labels_path else
                " (no TSV beside it: named IC01…)")
    return str(maps_path), str(labels_path)


def init_ica_timeseries_wf(run, template_files, settings, output_dir, sources,
                           name="ica_timeseries_wf", stage2=False, template_source=""):
    """Back-reconstruct and write the template components' timecourses of one BOLD run.

    Parameters
    ----------
    run : :class:`xaibids.inputs.layout.BoldRun`
    template_files : tuple of str
        ``(maps_path, labels_path)`` from :func:`prepare_ica_template`.
    settings : :class:`xaibids.config.WorkflowSettings`
        Cleaning options (``confounds``, ``detrend``, ``standardize``, ``high_pass``,
        ``low_pass``) and ``min_coverage``, as for ROI timecourses.
    output_dir : str
    sources : list of str
        BIDS URIs of the input files, for the sidecar's ``Sources``.
    stage2 : bool
        Also write subject-specific maps (dual regression stage 2).
    template_source : str
        Where the template came from (path given by the user), for the sidecar.
    """
    maps_file, labels_file = template_files
    n_components = len(pd.read_csv(labels_file, sep="\t"))
    template_name = Path(maps_file).name
    sidecar = template_sidecar(maps_file, ".json")
    space = json.loads(sidecar.read_text()).get("Space") if sidecar.is_file() else None
    if space and run.space and space != run.space:
        LOGGER.warning(
            "%s is in %s but the ICA template %s is in %s: the maps are resampled onto the BOLD "
            "grid, and any difference between the two templates remains. Use BOLD in %s "
            "(fMRIPrep --output-spaces) for exact correspondence.", Path(run.bold).name,
            run.space, template_name, space, space)
    workflow = Workflow(name=name)
    workflow.__desc__ = template_description(n_components, template_name, settings, stage2)
    extract = pe.Node(
        ExtractIcaTimeseries(
            bold_file=run.bold,
            mask_file=run.mask,
            maps_file=maps_file,
            labels_file=labels_file,
            template_name=template_name,
            template_source=str(template_source),
            confounds=settings.confounds,
            detrend=settings.detrend,
            standardize=settings.standardize,
            high_pass=settings.high_pass,
            low_pass=settings.low_pass,
            min_coverage=settings.min_coverage,
            stage2=stage2,
            metadata=run.metadata,
            sources=sources,
        ),
        name="extract",
    )
    sink = pe.Node(
        DerivativesDataSink(
            base_directory=output_dir,
            source_file=run.bold,
            desc="ica",
            suffix="timeseries",
            dismiss_entities=TIMESERIES_DISMISS,
        ),
        name="ds_timeseries",
        run_without_submitting=True,
    )
    outputnode = pe.Node(niu.IdentityInterface(fields=["timeseries", "components"]),
                         name="outputnode")
    workflow.connect([
        (extract, sink, [("out_file", "in_file"), ("out_meta", "meta_dict")]),
        (sink, outputnode, [("out_file", "timeseries")]),
    ])
    if stage2:
        sink_maps = pe.Node(
            DerivativesDataSink(base_directory=output_dir, source_file=run.bold, desc="ica",
                                suffix="components", compress=True,
                                dismiss_entities=MAPS_DISMISS),
            name="ds_components",
            run_without_submitting=True,
        )
        workflow.connect([
            (extract, sink_maps, [("out_maps", "in_file"), ("out_maps_meta", "meta_dict")]),
            (sink_maps, outputnode, [("out_file", "components")]),
        ])
    return workflow


# --------------------------------------------------------------------------------------------
# Group ICA


def _sink(output_dir, source_file, in_file, meta, **entities) -> str:
    """Run a DerivativesDataSink once, outside any workflow; returns the written path."""
    result = DerivativesDataSink(base_directory=str(output_dir), source_file=str(source_file),
                                 in_file=str(in_file), meta_dict=meta, **entities).run()
    out = result.outputs.out_file
    return out[0] if isinstance(out, list) else out


def _uri(path, roots: dict) -> str:
    from xaibids.outputs.derivatives import source_uri

    try:
        return source_uri(path, roots)
    except ValueError:  # outside every dataset: a file URI still says where it came from
        return Path(path).resolve().as_uri()


def run_group_ica(config, subjects, output_dir, work_dir, *, algorithm: str = "canica",
                  mask_mode: str = "intersection", smoothing_fwhm: float | None = 6.0,
                  n_init: int = 10, threshold: float | str | None = None,
                  alpha: float = 10.0,
                  stage2: bool = False) -> tuple[list[tuple[str, str]], str, str]:
    """Group ICA of all selected runs, then every run's timecourses by back-reconstruction.

    Call once at the start of the group level when ``config.workflow.features == "ica"`` and
    no ``ica_template`` is given (the participant level cannot do it: the decomposition needs
    all subjects).

    Parameters
    ----------
    config : :class:`xaibids.config.Config`
        Reads ``workflow`` (``ica_components``, ``confounds``, ``detrend``, ``standardize``,
        ``high_pass``, ``low_pass``), ``seeds.random_seed`` (the ICA ``random_state``) and
        ``execution`` (``bids_dir``, ``derivatives``: roots of the ``Sources`` URIs).
    subjects : list of :class:`xaibids.inputs.layout.SubjectData`
        From :func:`xaibids.levels.participant.collect_inputs`; subjects without BOLD runs are
        skipped with a warning.
    output_dir, work_dir : path
        Derivatives are written under ``output_dir``; the cleaned images go to
        ``work_dir/ica/cleaned`` and are deleted at the end.
    algorithm, mask_mode, smoothing_fwhm, n_init, threshold, alpha
        See :func:`xaibids.features.ica.fit_group_ica` and
        :func:`xaibids.features.ica.group_mask`.
    stage2
        Also write subject-specific maps per run.

    Returns
    -------
    runs : list of (str, str)
        ``("sub-<label>", timeseries TSV path)`` per run, as ``gather_timeseries`` returns.
    components : str
        The group maps ``OUTPUT_DIR/atlases/atlas-<Label>/atlas-<Label>_space-<tpl>_desc-ica_
        components.nii.gz`` (its ``.tsv`` beside it names the components).
    methods : str
        Methods boilerplate (pandoc ``[@key]`` citations of ``references.bib``).
    """
    from nilearn.masking import apply_mask

    wf = config.workflow
    if algorithm not in ICA_ALGORITHMS:
        raise XaibidsError(f"Unknown ICA algorithm {algorithm!r}; use one of {ICA_ALGORITHMS}.")
    if mask_mode not in MASK_MODES:
        raise XaibidsError(f"Unknown ICA mask mode {mask_mode!r}; use one of {MASK_MODES}.")
    n_components = int(wf.ica_components)
    runs = [(s.subject, r) for s in subjects for r in s.bold_runs]
    skipped = [s.subject for s in subjects if not s.bold_runs]
    if skipped:
        LOGGER.warning("Group ICA: no preprocessed BOLD for %s; they are left out.",
                       ", ".join("sub-" + s for s in skipped))
    if not runs:
        raise XaibidsError(
            "Group ICA (--features ica without --ica-template) needs preprocessed BOLD runs; none "
            "were found. Pass the fMRIPrep derivatives with -d fmriprep=PATH."
        )
    spaces = sorted({str(r.space) for _, r in runs})
    if len(spaces) > 1:
        raise XaibidsError(
            f"Group ICA needs all runs in one template space; found {', '.join(spaces)}. Select "
            'one with --bids-filter-file (e.g. {"bold": {"space": "MNI152NLin6Asym"}}).'
        )
    space = None if spaces[0] == "None" else spaces[0]
    output_dir, work_dir = Path(output_dir), Path(work_dir)
    ex = config.execution
    roots = {"raw": ex.bids_dir, **ex.derivatives}
    clean_dir = work_dir / "ica" / "cleaned"
    clean_dir.mkdir(parents=True, exist_ok=True)
    try:
        mask = group_mask([r.mask for _, r in runs], mask_mode)
        n_voxels = int(np.count_nonzero(np.asarray(mask.dataobj)))
        if n_components > n_voxels:
            raise IcaError(f"--ica-components {n_components} exceeds the {n_voxels} voxels of "
                           "the group mask.")
        LOGGER.info("Group ICA: cleaning %d run(s) of %d subject(s) within the %s of their "
                    "brain masks (%d voxels).", len(runs), len({s for s, _ in runs}), mask_mode,
                    n_voxels)
        cleaned = []
        for subject, run in runs:
            result = clean_run(run.bold, mask, wf.confounds, wf.detrend, wf.standardize,
                               wf.high_pass, wf.low_pass, run.metadata, reference_img=mask)
            if result.data.shape[0] <= n_components:
                raise IcaError(
                    f"{Path(run.bold).name} keeps {result.data.shape[0]} volume(s) after "
                    f"cleaning, not more than --ica-components {n_components}; lower "
                    "--ica-components or leave this run out (--bids-filter-file)."
                )
            stem = Path(run.bold).name.split(".")[0]
            path = clean_dir / f"{stem}_cleaned.nii.gz"
            img = result.masker.inverse_transform(result.data.astype(np.float32))
            nb.Nifti1Image(np.asarray(img.dataobj, dtype=np.float32), img.affine).to_filename(path)
            result.data = None  # keep only the metadata in memory
            cleaned.append((subject, run, result, path))
        LOGGER.info("Group ICA: fitting %d components with %s (random seed %d).", n_components,
                    _ALGORITHM_NAME[algorithm], config.seeds.random_seed)
        maps_img = fit_group_ica([str(p) for *_, p in cleaned], mask, n_components, algorithm,
                                 random_state=config.seeds.random_seed,
                                 smoothing_fwhm=smoothing_fwhm, n_init=n_init,
                                 threshold=threshold, alpha=alpha)
    except ExtractionError as err:
        raise XaibidsError(str(err)) from None

    label = f"{_ALGORITHM_NAME[algorithm]}{n_components}"
    atlas_dir = output_dir / "atlases" / f"atlas-{label}"
    stem = atlas_dir / (f"atlas-{label}" + (f"_space-{space}" if space else "") + "_desc-ica")
    names = default_component_names(n_components)
    labels = pd.DataFrame({"index": np.arange(1, n_components + 1), "name": names})
    run_sources = [_uri(p, roots) for _, r in runs for p in (r.bold, r.mask, r.confounds) if p]
    params = {
        "ICAMode": "group",
        "Algorithm": _ALGORITHM_NAME[algorithm],
        "NumberOfComponents": n_components,
        "RandomSeed": int(config.seeds.random_seed),
        "MaskMode": mask_mode,
        "SmoothingFWHM": smoothing_fwhm or None,
        "NumberOfInitializations": int(n_init) if algorithm == "canica" else None,
        "Threshold": threshold,
        "Alpha": alpha if algorithm == "dictlearning" else None,
        "ConfoundStrategy": wf.confounds,
        "Detrend": wf.detrend,
        "Standardize": wf.standardize,
        "HighPass": wf.high_pass or None,
        "LowPass": wf.low_pass or None,
    }
    params = {k: v for k, v in params.items() if v is not None}
    files = write_component_maps(
        maps_img, labels, stem,
        {"Sources": run_sources, "Space": space, "ComponentNames": names, **params}
        if space else {"Sources": run_sources, "ComponentNames": names, **params})
    mask_path = atlas_dir / (f"atlas-{label}" + (f"_space-{space}" if space else "")
                             + "_desc-brain_mask.nii.gz")
    with atomic_path(mask_path, suffix=".nii.gz") as tmp:
        mask.to_filename(tmp)
    components_uri = _uri(files["maps"], {"": str(output_dir)})

    # read back what was written, so the timecourses are those of the published maps
    masked_maps = apply_mask(nb.load(files["maps"]), mask)
    written = []
    for subject, run, result, path in cleaned:
        data = apply_mask(str(path), mask).astype(np.float64)
        dual = dual_regression(data, masked_maps, demean=True, stage2=stage2)
        ts = IcaTimeseries(
            data=dual.timecourses, names=names, coverage=np.ones(n_components),
            sample_mask=result.sample_mask, n_volumes=result.n_volumes,
            repetition_time=result.repetition_time, maps_resampled=False,
            confound_columns=result.confound_columns)
        tmp = work_dir / "ica" / f"{path.name.split('.')[0]}_timeseries.tsv"
        write_timeseries_tsv(ts.data, names, tmp)
        sources = [_uri(p, roots) for p in (run.bold, run.mask, run.confounds) if p]
        meta = ica_sidecar(ts, sources + [components_uri], wf.confounds, wf.detrend,
                           wf.standardize, wf.high_pass, wf.low_pass,
                           {**params, "ICAComponents": components_uri,
                            "BackReconstruction": "dual regression stage 1 (spatial least "
                                                  "squares, demeaned)",
                            "BOLDResampled": result.resampled or None})
        tsv = _sink(output_dir, run.bold, tmp, meta, desc="ica", suffix="timeseries",
                    dismiss_entities=TIMESERIES_DISMISS)
        written.append((f"sub-{subject}", tsv))
        if stage2:
            maps_tmp = work_dir / "ica" / f"{path.name.split('.')[0]}_components.nii.gz"
            result.masker.inverse_transform(dual.maps.astype(np.float32)).to_filename(maps_tmp)
            _sink(output_dir, run.bold, maps_tmp,
                  {"Sources": sources + [components_uri], "ComponentNames": names,
                   "BackReconstruction": "dual regression stage 2 (temporal least squares on "
                                         "variance-normalized stage-1 timecourses, demeaned)"},
                  desc="ica", suffix="components", compress=True,
                  dismiss_entities=MAPS_DISMISS)
    methods = group_ica_description(
        n_components, algorithm, len(runs), len({s for s, _ in runs}), mask_mode,
        smoothing_fwhm, config.seeds.random_seed, wf, stage2, n_init, threshold)
    LOGGER.info("Group ICA: maps written to %s; timecourses of %d run(s).", files["maps"],
                len(written))
    shutil.rmtree(clean_dir, ignore_errors=True)
    return written, str(files["maps"]), methods
