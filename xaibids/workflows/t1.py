"""Participant level: one T1w image brought onto the xaibids template grid (``--features t1``)."""

from nipype.interfaces import utility as niu
from nipype.pipeline import engine as pe
from niworkflows.engine.workflows import LiterateWorkflow as Workflow

from xaibids.interfaces.bids import DerivativesDataSink
from xaibids.interfaces.t1 import PreprocessT1w


def output_space(t1w) -> str:
    """The ``space-`` of a preprocessed volume: the template xaibids registers raw images to,
    or the space a derivatives dataset already put the image in."""
    from xaibids.features.t1 import TEMPLATE_SPACE

    return t1w.space if t1w.in_template_space and t1w.space else TEMPLATE_SPACE


def init_t1_preproc_wf(t1w, settings, output_dir, sources, random_seed, num_threads=1,
                       name="t1_preproc_wf"):
    """Preprocess one T1w image and write it (and its registration figure) as derivatives.

    Raw images follow ClinicaDL's *t1-linear*: N4 bias-field correction and affine registration
    to nilearn's MNI152 template (ANTs, through antspyx); images already in a template space
    (fMRIPrep/sMRIPrep) are only resampled. Both are then masked with the template brain mask,
    z-scored within it and resampled onto the ``--t1-resolution`` grid cropped to the brain's
    bounding box (:func:`xaibids.features.t1.preprocess_t1`).

    Parameters
    ----------
    t1w : :class:`xaibids.inputs.layout.T1wImage`
    settings : :class:`xaibids.config.WorkflowSettings`
    output_dir : str
    sources : list of str
        BIDS URIs of the input files, for the sidecar's ``Sources``.
    random_seed : int
        Seed of the registration's metric sampling.
    num_threads : int
        ITK threads of the registration.
    """
    from xaibids.features.t1 import resolution_label
    from xaibids.features.t1 import TEMPLATE_SPACE

    workflow = Workflow(name=name)
    resolution = float(settings.t1_resolution)
    if t1w.in_template_space:
        workflow.__desc__ = (
            f"Preprocessed T1-weighted images already in a template space ({t1w.space}) were "
            f"resampled onto a {resolution:g} mm grid covering the brain's bounding box of the "
            f"{TEMPLATE_SPACE} template (trilinear interpolation with nibabel/nilearn "
            "[@nilearn]), masked with the brain mask and z-scored within it. "
        )
    else:
        workflow.__desc__ = (
            "Each T1-weighted image was corrected for intensity non-uniformity with N4 "
            "[@tustison2010n4] and aligned to nilearn's MNI152 template (ICBM 2009a, "
            f"{TEMPLATE_SPACE}) by an affine registration with ANTs [@avants2008], as ClinicaDL's "
            "t1-linear pipeline [@wen2020clinicadl]; the registered image was masked with the "
            "template's brain mask, z-scored within it and resampled onto a "
            f"{resolution:g} mm grid cropped to the brain's bounding box (as Kan et al. 2020's "
            "~58 x 70 x 58 volumes). "
        )
    preprocess = pe.Node(
        PreprocessT1w(in_file=t1w.path, in_template_space=t1w.in_template_space,
                      space=t1w.space or "", resolution=resolution, random_seed=int(random_seed),
                      num_threads=int(num_threads),
                      **({"mask_file": t1w.mask} if t1w.mask else {})),
        name="preprocess", n_procs=int(num_threads))
    meta = pe.Node(niu.Function(function=_sidecar,
                                input_names=["provenance", "sources", "resolution"],
                                output_names=["meta"]), name="sidecar")
    meta.inputs.sources = sources
    meta.inputs.resolution = (f"{resolution:g} mm isotropic grid aligned with the {TEMPLATE_SPACE} "
                              "template, cropped to its brain's bounding box")
    space = output_space(t1w)
    ds_t1w = pe.Node(
        DerivativesDataSink(base_directory=output_dir, source_file=t1w.path, space=space,
                            res=resolution_label(resolution), desc="preproc", suffix="T1w",
                            datatype="anat", compress=True),
        name="ds_t1w", run_without_submitting=True)
    ds_report = pe.Node(
        DerivativesDataSink(base_directory=output_dir, source_file=t1w.path, space=space,
                            desc="registration", suffix="T1w", datatype="figures"),
        name="ds_report", run_without_submitting=True)
    outputnode = pe.Node(niu.IdentityInterface(fields=["t1w"]), name="outputnode")
    workflow.connect([
        (preprocess, meta, [("provenance", "provenance")]),
        (preprocess, ds_t1w, [("out_file", "in_file")]),
        (meta, ds_t1w, [("meta", "meta_dict")]),
        (preprocess, ds_report, [("out_report", "in_file")]),
        (ds_t1w, outputnode, [("out_file", "t1w")]),
    ])
    return workflow


def _sidecar(provenance, sources, resolution):
    """The JSON sidecar of the preprocessed T1w: its provenance, ``Resolution`` (what the
    ``res-`` label means), ``SkullStripped`` and ``Sources``."""
    meta = dict(provenance)
    meta["Resolution"] = resolution
    meta["SkullStripped"] = True  # masked with the template's brain mask
    meta["Sources"] = list(sources)
    return meta
