"""Participant level: ROI timecourses of one preprocessed BOLD run."""

from nipype.interfaces import utility as niu
from nipype.pipeline import engine as pe
from niworkflows.engine.workflows import LiterateWorkflow as Workflow

from xaibids.features.timeseries import CONFOUND_TEXT
from xaibids.interfaces.bids import DerivativesDataSink
from xaibids.interfaces.timeseries import ExtractRoiTimeseries



def init_roi_timeseries_wf(run, atlas, atlas_files, settings, output_dir, sources,
                           name="roi_timeseries_wf"):
    """Extract and write the ROI timecourses of one BOLD run.

    Parameters
    ----------
    run : :class:`xaibids.inputs.layout.BoldRun`
    atlas : :class:`xaibids.features.atlases.Atlas`
    atlas_files : tuple of str
        The atlas label image and labels TSV written once for the whole run.
    settings : :class:`xaibids.config.WorkflowSettings`
    output_dir : str
    sources : list of str
        BIDS URIs of the input files, for the sidecar's ``Sources``.
    """
    workflow = Workflow(name=name)
    band = []
    if settings.high_pass:
        band.append(f"high-pass {settings.high_pass} Hz")
    if settings.low_pass:
        band.append(f"low-pass {settings.low_pass} Hz")
    workflow.__desc__ = (
        f"Regional BOLD timecourses were extracted as the mean signal within each of the "
        f"{len(atlas.labels)} regions of the {atlas.name} atlas (nearest-neighbour resampled to "
        f"the BOLD grid) with nilearn's `NiftiLabelsMasker` [@nilearn]. "
        + ("No confounds were regressed out; the signal was cleaned with "
           if settings.confounds == "none" else
           f"Confounds were regressed out ({CONFOUND_TEXT[settings.confounds]}) in the same "
           "step as ")
        + ("linear detrending, " if settings.detrend else "")
        + (", ".join(band) + " filtering, " if band else "")
        + (f"and {settings.standardize} standardization" if settings.standardize != "none"
           else "without standardization")
        + f". Regions with less than {100 * settings.min_coverage:.0f}% of their voxels inside "
        "the brain mask were set to missing (n/a), as in XCP-D. "
    )
    extract = pe.Node(
        ExtractRoiTimeseries(
            bold_file=run.bold,
            mask_file=run.mask,
            atlas_file=atlas_files[0],
            atlas_labels=atlas_files[1],
            atlas_name=atlas.name,
            atlas_space=atlas.space,
            atlas_source=atlas.source,
            confounds=settings.confounds,
            detrend=settings.detrend,
            standardize=settings.standardize,
            high_pass=settings.high_pass,
            low_pass=settings.low_pass,
            min_coverage=settings.min_coverage,
            metadata=run.metadata,
            sources=sources,
        ),
        name="extract",
    )
    sink = pe.Node(
        DerivativesDataSink(
            base_directory=output_dir,
            source_file=run.bold,
            atlas=atlas.name,
            statistic="mean",
            suffix="timeseries",
            dismiss_entities=("desc", "res", "den"),
        ),
        name="ds_timeseries",
        run_without_submitting=True,
    )
    outputnode = pe.Node(niu.IdentityInterface(fields=["timeseries"]), name="outputnode")
    workflow.connect([
        (extract, sink, [("out_file", "in_file"), ("out_meta", "meta_dict")]),
        (sink, outputnode, [("out_file", "timeseries")]),
    ])
    return workflow
