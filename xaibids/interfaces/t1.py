"""Nipype interface around :func:`xaibids.features.t1.preprocess_t1` (``--features t1``)."""

from pathlib import Path

from nipype.interfaces.base import (
    BaseInterfaceInputSpec,
    File,
    SimpleInterface,
    TraitedSpec,
    isdefined,
    traits,
)

from xaibids.features.t1 import DEFAULT_MARGIN, DEFAULT_RESOLUTION, preprocess_t1
from xaibids.threads import limited_threads


class _PreprocessT1wInputSpec(BaseInterfaceInputSpec):
    in_file = File(exists=True, mandatory=True,
                   desc="raw T1w, or a preprocessed T1w in a template space")
    mask_file = File(exists=True, desc="brain mask of a template-space T1w (desc-brain_mask)")
    in_template_space = traits.Bool(False, usedefault=True,
                                    desc="in_file is already in an MNI152 template space")
    space = traits.Str("", usedefault=True, desc="space entity of a template-space input")
    resolution = traits.Float(DEFAULT_RESOLUTION, usedefault=True, desc="voxel size (mm)")
    margin = traits.Int(DEFAULT_MARGIN, usedefault=True,
                        desc="voxels around the template brain's bounding box")
    random_seed = traits.Int(0, usedefault=True, desc="seed of ANTs' metric sampling")
    num_threads = traits.Int(1, usedefault=True, nohash=True, desc="ITK and BLAS threads")
    report = traits.Bool(True, usedefault=True, desc="write the registration reportlet")


class _PreprocessT1wOutputSpec(TraitedSpec):
    out_file = File(exists=True, desc="normalized T1w on the cropped template grid")
    out_report = File(desc="registration reportlet (SVG)")
    provenance = traits.Dict(desc="sidecar metadata (without Sources)")


class PreprocessT1w(SimpleInterface):
    """Registration (raw input), brain mask, resampling onto the template grid, z-scoring."""

    input_spec = _PreprocessT1wInputSpec
    output_spec = _PreprocessT1wOutputSpec

    def _run_interface(self, runtime):
        inputs = self.inputs
        out = Path(runtime.cwd) / "t1w_preproc.nii.gz"
        report = Path(runtime.cwd) / "registration.svg" if inputs.report else None
        with limited_threads(inputs.num_threads):  # ITK, and BLAS alike
            provenance = preprocess_t1(
                inputs.in_file,
                out,
                resolution=inputs.resolution,
                margin=inputs.margin,
                mask_file=inputs.mask_file if isdefined(inputs.mask_file) else None,
                in_template_space=inputs.in_template_space,
                random_seed=inputs.random_seed,
                n_threads=inputs.num_threads,
                report_file=report,
                space=inputs.space or None,
            )
        self._results["out_file"] = str(out)
        if report is not None:
            self._results["out_report"] = str(report)
        self._results["provenance"] = provenance
        return runtime
