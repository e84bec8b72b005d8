"""Participant level: trial-average activation maps of one BOLD run (``--features trials``)."""

from nipype.interfaces import utility as niu
from nipype.pipeline import engine as pe
from niworkflows.engine.workflows import LiterateWorkflow as Workflow

from xaibids.features.trials import TRIALS_SUFFIX
from xaibids.interfaces.bids import DerivativesDataSink
from xaibids.interfaces.timeseries import ExtractTrialMaps
from xaibids.features.timeseries import CONFOUND_TEXT


def init_trial_maps_wf(run, settings, output_dir, sources, mask_source,
                       name="trial_maps_wf"):
    """Extract and write one mean activation map per event of one BOLD run.

    Writes ``*_trials.nii.gz`` (4D, a volume per kept event, with its ``.json`` sidecar),
    ``*_trials.tsv`` (the kept rows of the run's events with the number of volumes averaged) and
    the run's brain mask (``*_desc-brain_mask.nii.gz``), named after the BOLD run.

    Parameters
    ----------
    run : :class:`xaibids.inputs.layout.BoldRun`
        With ``events`` set (:func:`xaibids.inputs.layout.collect_trial_runs`).
    settings : :class:`xaibids.config.WorkflowSettings`
    output_dir : str
    sources : list of str
        BIDS URIs of the input files, for the sidecar's ``Sources``.
    mask_source : str
        BIDS URI of the run's brain mask (the ``Sources`` of its copy).
    """
    workflow = Workflow(name=name)
    band = [f"{kind} {value} Hz" for kind, value in (("high-pass", settings.high_pass),
                                                      ("low-pass", settings.low_pass)) if value]
    workflow.__desc__ = (
        "Single-trial activation maps were made as in [@gotsopoulos2018]: the voxel time courses within "
        "the brain mask were cleaned with nilearn's `NiftiMasker` [@nilearn] ("
        f"{CONFOUND_TEXT[settings.confounds]}"
        + (", linear detrending" if settings.detrend else "")
        + (", " + ", ".join(band) + " filtering" if band else "")
        + (f", {settings.standardize} standardization" if settings.standardize != "none"
           else ", no standardization")
        + "), and for every event of the run's events file the volumes acquired within "
        "[onset, onset + duration) were averaged into one map. "
    )
    extract = pe.Node(
        ExtractTrialMaps(
            bold_file=run.bold, mask_file=run.mask, events_file=run.events,
            confounds=settings.confounds, detrend=settings.detrend,
            standardize=settings.standardize, high_pass=settings.high_pass,
            low_pass=settings.low_pass, metadata=run.metadata, sources=sources),
        name="extract",
    )

    def sink(name, **entities):
        return pe.Node(DerivativesDataSink(base_directory=output_dir, source_file=run.bold,
                                           dismiss_entities=("desc", "res", "den"), **entities),
                       name=name, run_without_submitting=True)

    ds_maps = sink("ds_trial_maps", suffix=TRIALS_SUFFIX, compress=True)
    ds_events = sink("ds_trial_events", suffix=TRIALS_SUFFIX)
    # the input's mask, copied as it is: the grid the maps are on
    ds_mask = sink("ds_mask", desc="brain", suffix="mask", compress=True, in_file=run.mask,
                   meta_dict={"Type": "Brain", "Sources": [mask_source],
                              "Description": "The brain mask the trial maps were made in "
                                             "(the input's, copied)."})
    outputnode = pe.Node(niu.IdentityInterface(fields=["trial_maps"]), name="outputnode")
    workflow.connect([
        (extract, ds_maps, [("out_file", "in_file"), ("out_meta", "meta_dict")]),
        (extract, ds_events, [("out_events", "in_file")]),
        (ds_maps, outputnode, [("out_file", "trial_maps")]),
    ])
    workflow.add_nodes([ds_mask])  # its input is a file, not another node's output
    return workflow
