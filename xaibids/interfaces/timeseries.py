"""Nipype interface around :func:`xaibids.features.timeseries.extract_roi_timeseries`."""

from pathlib import Path

import numpy as np
import pandas as pd
from nipype.interfaces.base import (
    BaseInterfaceInputSpec,
    File,
    SimpleInterface,
    TraitedSpec,
    traits,
)

from xaibids.features.io import write_timeseries_tsv
from xaibids.features.timeseries import extract_roi_timeseries
from xaibids.threads import limited_threads


class _CleanedBoldInputSpec(BaseInterfaceInputSpec):
    """A BOLD run, its mask and the cleaning options (``--confounds`` … ``--low-pass``)."""

    bold_file = File(exists=True, mandatory=True, desc="BOLD run (preprocessed, template space)")
    mask_file = File(exists=True, mandatory=True, desc="brain mask on the BOLD grid")
    confounds = traits.Str("simple", usedefault=True)
    detrend = traits.Bool(True, usedefault=True)
    standardize = traits.Str("none", usedefault=True)
    high_pass = traits.Float(0.0, usedefault=True)
    low_pass = traits.Float(0.0, usedefault=True)
    metadata = traits.Dict(desc="BOLD sidecar metadata")
    sources = traits.List(traits.Str, desc="BIDS URIs of the inputs")


class _ExtractRoiTimeseriesInputSpec(_CleanedBoldInputSpec):
    atlas_file = File(exists=True, mandatory=True, desc="3D label image")
    atlas_labels = File(exists=True, mandatory=True, desc="TSV with index and name")
    atlas_name = traits.Str(mandatory=True, desc="BIDS atlas label")
    atlas_space = traits.Either(None, traits.Str, default=None, usedefault=True)
    atlas_source = traits.Str("", usedefault=True)
    min_coverage = traits.Float(0.5, usedefault=True)


class _ExtractRoiTimeseriesOutputSpec(TraitedSpec):
    out_file = File(exists=True, desc="timeseries TSV")
    out_meta = traits.Dict(desc="sidecar metadata")


class ExtractRoiTimeseries(SimpleInterface):
    """Mean signal per atlas region after confound regression, with per-region coverage."""

    input_spec = _ExtractRoiTimeseriesInputSpec
    output_spec = _ExtractRoiTimeseriesOutputSpec

    def _run_interface(self, runtime):
        inputs = self.inputs
        labels = pd.read_csv(inputs.atlas_labels, sep="\t")
        # the node declares one thread (Nipype's default n_procs); BLAS keeps to it
        with limited_threads(1):
            result = extract_roi_timeseries(
                inputs.bold_file,
                inputs.mask_file,
                inputs.atlas_file,
                labels,
                confounds=inputs.confounds,
                detrend=inputs.detrend,
                standardize=inputs.standardize,
                high_pass=inputs.high_pass,
                low_pass=inputs.low_pass,
                min_coverage=inputs.min_coverage,
                metadata=inputs.metadata,
            )
        out = Path(runtime.cwd) / "timeseries.tsv"
        write_timeseries_tsv(result.data, result.region_names, out)
        kept = result.sample_mask
        meta = {
            "Sources": list(inputs.sources),
            "Atlas": inputs.atlas_name,
            "AtlasSource": inputs.atlas_source,
            "AtlasSpace": inputs.atlas_space,
            "AtlasResampling": "nearest" if result.atlas_resampled else "none (same grid)",
            "Statistic": "mean",
            "ConfoundStrategy": inputs.confounds,
            "ConfoundRegressors": result.confound_columns,
            "Detrend": inputs.detrend,
            "Standardize": inputs.standardize,
            "HighPass": inputs.high_pass or None,
            "LowPass": inputs.low_pass or None,
            "RepetitionTime": result.repetition_time,
            "SamplingFrequency": 1.0 / result.repetition_time,
            "NumberOfVolumes": result.n_volumes,
            "NumberOfVolumesKept": int(result.data.shape[0]),
            "CensoredVolumes": (
                [] if kept is None
                else sorted(set(range(result.n_volumes)) - set(np.asarray(kept).tolist()))
            ),
            "CoverageThreshold": inputs.min_coverage,
            "Coverage": {n: round(float(c), 4)
                         for n, c in zip(result.region_names, result.coverage)},
        }
        self._results["out_file"] = str(out)
        self._results["out_meta"] = {k: v for k, v in meta.items() if v is not None}
        return runtime


class _ExtractTrialMapsInputSpec(_CleanedBoldInputSpec):
    events_file = File(exists=True, mandatory=True, desc="the run's events.tsv")


class _ExtractTrialMapsOutputSpec(TraitedSpec):
    out_file = File(exists=True, desc="4D trial maps")
    out_events = File(exists=True, desc="TSV of the kept events, one row per volume")
    out_mask = File(exists=True, desc="the brain mask the maps were made in")
    out_meta = traits.Dict(desc="sidecar metadata")


class ExtractTrialMaps(SimpleInterface):
    """One mean activation map per event (:func:`xaibids.features.trials.extract_trial_maps`)."""

    input_spec = _ExtractTrialMapsInputSpec
    output_spec = _ExtractTrialMapsOutputSpec

    def _run_interface(self, runtime):
        from xaibids.features.trials import extract_trial_maps

        inputs = self.inputs
        with limited_threads(1):
            result = extract_trial_maps(
                inputs.bold_file, inputs.mask_file, inputs.events_file,
                confounds=inputs.confounds, detrend=inputs.detrend,
                standardize=inputs.standardize, high_pass=inputs.high_pass,
                low_pass=inputs.low_pass, metadata=inputs.metadata)
        out = Path(runtime.cwd) / "trials.nii.gz"
        result.img.to_filename(out)
        events = Path(runtime.cwd) / "trials.tsv"
        result.events.to_csv(events, sep="\t", index=False, na_rep="n/a")
        mask = Path(runtime.cwd) / "mask.nii.gz"
        import nibabel as nb

        nb.load(inputs.mask_file).to_filename(mask)
        meta = {
            "Sources": list(inputs.sources),
            "Description": "One mean activation map per event of the run's events.tsv: the "
                           "volumes acquired inside [onset, onset + duration) averaged after "
                           "cleaning (seed 004 §2.3); the rows of the events TSV of the same "
                           "name describe the volumes in order. 0 outside the brain mask.",
            "ConfoundStrategy": inputs.confounds,
            "ConfoundRegressors": result.confound_columns,
            "Detrend": inputs.detrend,
            "Standardize": inputs.standardize,
            "HighPass": inputs.high_pass or None,
            "LowPass": inputs.low_pass or None,
            "RepetitionTime": result.repetition_time,
            "NumberOfVolumes": result.n_volumes,
            "NumberOfTrials": len(result.events),
            "DroppedEvents": result.n_dropped,
        }
        self._results.update(out_file=str(out), out_events=str(events), out_mask=str(mask),
                             out_meta={k: v for k, v in meta.items() if v is not None})
        return runtime
