"""Nipype interface around :func:`xaibids.features.ica.extract_ica_timeseries` (template mode)."""

from pathlib import Path

import numpy as np
import pandas as pd
from nipype.interfaces.base import (
    BaseInterfaceInputSpec,
    File,
    SimpleInterface,
    TraitedSpec,
    isdefined,
    traits,
)

from xaibids.features.ica import extract_ica_timeseries
from xaibids.fileio import write_timeseries_tsv
from xaibids.threads import limited_threads


def ica_sidecar(result, sources, confounds, detrend, standardize, high_pass, low_pass,
                extra: dict) -> dict:
    """The timeseries JSON shared by template and group mode (``None`` values left out)."""
    kept = result.sample_mask
    meta = {
        "Sources": list(sources),
        **extra,
        "ComponentNames": list(result.names),
        "ConfoundStrategy": confounds,
        "ConfoundRegressors": result.confound_columns,
        "Detrend": detrend,
        "Standardize": standardize,
        "HighPass": high_pass or None,
        "LowPass": low_pass or None,
        "RepetitionTime": result.repetition_time,
        "SamplingFrequency": 1.0 / result.repetition_time,
        "NumberOfVolumes": result.n_volumes,
        "NumberOfVolumesKept": int(result.data.shape[0]),
        "CensoredVolumes": (
            [] if kept is None
            else sorted(set(range(result.n_volumes)) - set(np.asarray(kept).tolist()))
        ),
    }
    return {k: v for k, v in meta.items() if v is not None}


class _ExtractIcaTimeseriesInputSpec(BaseInterfaceInputSpec):
    bold_file = File(exists=True, mandatory=True, desc="preprocessed BOLD in template space")
    mask_file = File(exists=True, mandatory=True, desc="brain mask of the BOLD run")
    maps_file = File(exists=True, mandatory=True, desc="4D spatial maps (one per volume)")
    labels_file = File(exists=True, mandatory=True,
                       desc="TSV with index, name (and domain), one row per map in volume order")
    template_name = traits.Str("", usedefault=True, desc="template file name for the sidecar")
    template_source = traits.Str("", usedefault=True, desc="BIDS URI or path of the template")
    confounds = traits.Str("simple", usedefault=True)
    detrend = traits.Bool(True, usedefault=True)
    standardize = traits.Str("none", usedefault=True)
    high_pass = traits.Float(0.0, usedefault=True)
    low_pass = traits.Float(0.0, usedefault=True)
    min_coverage = traits.Float(0.5, usedefault=True)
    stage2 = traits.Bool(False, usedefault=True, desc="also write subject-specific maps")
    metadata = traits.Dict(desc="BOLD sidecar metadata")
    sources = traits.List(traits.Str, desc="BIDS URIs of the inputs")


class _ExtractIcaTimeseriesOutputSpec(TraitedSpec):
    out_file = File(exists=True, desc="timeseries TSV (one column per component)")
    out_meta = traits.Dict(desc="sidecar metadata")
    out_maps = File(desc="subject-specific maps (stage 2), when asked for")
    out_maps_meta = traits.Dict(desc="sidecar of the subject-specific maps")


class ExtractIcaTimeseries(SimpleInterface):
    """Component timecourses of one run by dual regression on template maps."""

    input_spec = _ExtractIcaTimeseriesInputSpec
    output_spec = _ExtractIcaTimeseriesOutputSpec

    def _run_interface(self, runtime):
        inputs = self.inputs
        labels = pd.read_csv(inputs.labels_file, sep="\t", dtype=str, keep_default_na=False)
        # the node declares one thread (Nipype's default n_procs); BLAS keeps to it
        with limited_threads(1):
            result = extract_ica_timeseries(
                inputs.bold_file,
                inputs.mask_file,
                inputs.maps_file,
                names=labels["name"].tolist(),
                confounds=inputs.confounds,
                detrend=inputs.detrend,
                standardize=inputs.standardize,
                high_pass=inputs.high_pass,
                low_pass=inputs.low_pass,
                min_coverage=inputs.min_coverage,
                metadata=inputs.metadata if isdefined(inputs.metadata) else None,
                stage2=inputs.stage2,
            )
        out = Path(runtime.cwd) / "timeseries.tsv"
        write_timeseries_tsv(result.data, result.names, out)
        sources = list(inputs.sources) if isdefined(inputs.sources) else []
        template = {
            "ICAMode": "template",
            "ICATemplate": inputs.template_name or None,
            "ICATemplateSource": inputs.template_source or None,
            "ICATemplateResampling": ("continuous" if result.maps_resampled
                                      else "none (same grid)"),
            "BackReconstruction": "dual regression stage 1 (spatial least squares, demeaned)",
            "CoverageThreshold": inputs.min_coverage,
            "Coverage": {n: round(float(c), 4) for n, c in zip(result.names, result.coverage)},
        }
        self._results["out_file"] = str(out)
        self._results["out_meta"] = ica_sidecar(
            result, sources, inputs.confounds, inputs.detrend, inputs.standardize,
            inputs.high_pass, inputs.low_pass, template)
        if inputs.stage2:
            maps = Path(runtime.cwd) / "components.nii.gz"
            result.subject_maps.to_filename(maps)
            self._results["out_maps"] = str(maps)
            maps_meta = {
                "Sources": sources,
                "ComponentNames": list(result.names),
                "BackReconstruction": "dual regression stage 2 (temporal least squares on "
                                      "variance-normalized stage-1 timecourses, demeaned)",
                "ICATemplate": inputs.template_name or None,
            }
            self._results["out_maps_meta"] = {k: v for k, v in maps_meta.items()
                                              if v is not None}
        return runtime
