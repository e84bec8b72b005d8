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

from xaibids.fileio import write_timeseries_tsv
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


def cleaning_options(inputs) -> dict:
    """The cleaning options of a :class:`_CleanedBoldInputSpec`, as keyword arguments."""
    return {name: getattr(inputs, name) for name in
            ("confounds", "detrend", "standardize", "high_pass", "low_pass", "metadata")}


def cleaning_metadata(inputs, confound_columns, repetition_time: float) -> dict:
    """Sidecar entries saying how a run was cleaned (shared by ROI timecourses and trials)."""
    return {"Sources": list(inputs.sources),
            "ConfoundStrategy": inputs.confounds,
            "ConfoundRegressors": confound_columns,
            "Detrend": inputs.detrend,
            "Standardize": inputs.standardize,
            "HighPass": inputs.high_pass or None,
            "LowPass": inputs.low_pass or None,
            "RepetitionTime": repetition_time}


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
                inputs.bold_file, inputs.mask_file, inputs.atlas_file, labels,
                min_coverage=inputs.min_coverage, **cleaning_options(inputs))
        out = Path(runtime.cwd) / "timeseries.tsv"
        write_timeseries_tsv(result.data, result.region_names, out)
        kept = result.sample_mask
        meta = {
            **cleaning_metadata(inputs, result.confound_columns, result.repetition_time),
            "Atlas": inputs.atlas_name,
            "AtlasSource": inputs.atlas_source,
            "AtlasSpace": inputs.atlas_space,
            "AtlasResampling": "nearest" if result.atlas_resampled else "none (same grid)",
            "Statistic": "mean",
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
    out_meta = traits.Dict(desc="sidecar metadata")


class ExtractTrialMaps(SimpleInterface):
    """One mean activation map per event (:func:`xaibids.features.trials.extract_trial_maps`)."""

    input_spec = _ExtractTrialMapsInputSpec
    output_spec = _ExtractTrialMapsOutputSpec

    def _run_interface(self, runtime):
        from xaibids.features.trials import extract_trial_maps

        inputs = self.inputs
        with limited_threads(1):
            result = extract_trial_maps(inputs.bold_file, inputs.mask_file, inputs.events_file,
                                        **cleaning_options(inputs))
        out = Path(runtime.cwd) / "trials.nii.gz"
        result.img.to_filename(out)
        events = Path(runtime.cwd) / "trials.tsv"
        result.events.to_csv(events, sep="\t", index=False, na_rep="n/a")
        meta = {
            **cleaning_metadata(inputs, result.confound_columns, result.repetition_time),
            "Description": "One mean activation map per event of the run's events.tsv: the "
                           "volumes acquired inside [onset, onset + duration) averaged after "
                           "cleaning (Gotsopoulos et al. 2018 §2.3); the rows of the events TSV of the same "
                           "name describe the volumes in order. 0 outside the brain mask.",
            "NumberOfVolumes": result.n_volumes,
            "NumberOfTrials": len(result.events),
            "DroppedEvents": result.n_dropped,
        }
        self._results.update(out_file=str(out), out_events=str(events),
                             out_meta={k: v for k, v in meta.items() if v is not None})
        return runtime
