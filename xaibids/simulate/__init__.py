"""Ground-truth simulators: two-class BIDS datasets whose truly relevant features are known.

Kinds (``xaibids-simulate KIND OUT_DIR``):

``boxes``, ``var``
    The synthetic datasets of Lewis et al. 2023 (§2.5; metrics §2.6, Table 1),
    :mod:`xaibids.simulate.synthetic`.
``rnn-ei``
    The small-world RNN excitation/inhibition simulator of Strock et al. 2025 (Materials and Methods),
    :mod:`xaibids.simulate.rnn`.
``bold``
    ``rnn-ei`` dynamics painted into the regions of a real atlas on the MNI152 template and
    written as fMRIPrep-style derivatives, :mod:`xaibids.simulate.bold`.
``t1-atrophy``
    MNI152 T1w volumes with class-dependent intensity loss in chosen atlas regions (the setting
    of Kan et al. 2020), raw and/or fMRIPrep-style, :mod:`xaibids.simulate.t1`.
``voxel-patterns``
    The overlapping voxel patterns of Gotsopoulos et al. 2018 (§2.5, scenarios 1–3) as 4D "trial" images,
    :mod:`xaibids.simulate.voxels`.

Every kind writes a valid BIDS raw dataset at ``OUT_DIR`` (``participants.tsv`` with the
class column ``group``: two classes, up to five for ``voxel-patterns``), the derivatives
xaibids reads under ``OUT_DIR/derivatives/``, and the ground truth in machine-readable form,
described in the dataset's README. The same seed gives byte-identical files; output is
assembled in a staging folder and appears only when complete.
"""

from __future__ import annotations

import os
from pathlib import Path

from xaibids.simulate import bidsio

KINDS = ("boxes", "var", "rnn-ei", "bold", "t1-atrophy", "voxel-patterns")

#: Kind-specific options (keyword names of the simulator functions), in CLI order.
KIND_OPTIONS = {
    "boxes": ("n_timepoints", "n_features", "window", "n_target", "box_mean", "box_std"),
    "var": ("n_timepoints", "n_features", "window", "alpha", "radius", "burn_in"),
    "rnn-ei": ("n_nodes", "k", "rewire_p", "prevalence", "severity", "snr_db", "n_timepoints",
               "neural_noise", "burn_in", "tr", "excitability", "coupling"),
    "bold": ("atlas", "voxel_size", "n_timepoints", "tr", "snr_db", "prevalence", "severity",
             "k", "rewire_p", "neural_noise", "burn_in", "smoothness", "signal_change",
             "motion_scale", "motion_artifact", "affected", "excitability", "coupling"),
    "t1-atrophy": ("atlas", "regions", "severity", "voxel_size", "space", "edge_fwhm", "bias",
                   "noise", "jitter"),
    "voxel-patterns": ("scenario", "n_classes", "n_trials", "design", "grid", "voxel_size",
                       "grid_size", "effect_mean", "effect_mean_right", "effect_sd"),
}

#: Default number of subjects per kind (the seeds use 30 000 samples for boxes/var, 400 for
#: each RNN condition; these defaults stay laptop-sized).
DEFAULT_N_SUBJECTS = {"boxes": 1000, "var": 1000, "rnn-ei": 400, "bold": 40,
                      "t1-atrophy": 40, "voxel-patterns": 40}


def simulate(kind: str, out_dir: str | os.PathLike, n_subjects: int | None = None,
             seed: int = 0, overwrite: bool = False, **options) -> Path:
    """Simulate a dataset of ``kind`` into ``out_dir`` and return its path.

    ``options`` are the kind's parameters (see :data:`KIND_OPTIONS`); ``None`` values take
    the defaults. Raises :class:`ValueError` for bad parameters and
    :class:`~xaibids.simulate.bidsio.OutputExistsError` if ``out_dir`` is not empty.
    """
    if kind not in KINDS:
        raise ValueError(f"Unknown kind {kind!r}; choose one of {', '.join(KINDS)}.")
    unknown = set(options) - set(KIND_OPTIONS[kind])
    if unknown:
        raise ValueError(f"Option(s) {sorted(unknown)} do not apply to kind {kind!r}.")
    options = {k: v for k, v in options.items() if v is not None}
    if n_subjects is None:
        n_subjects = DEFAULT_N_SUBJECTS[kind]
    if seed < 0:
        raise ValueError("--seed must be a non-negative integer.")
    if kind in ("bold", "t1-atrophy", "voxel-patterns"):
        if kind == "bold":
            from xaibids.simulate.bold import simulate_bold as writer
        elif kind == "t1-atrophy":
            from xaibids.simulate.t1 import simulate_t1_atrophy as writer
        else:
            from xaibids.simulate.voxels import simulate_voxel_patterns as writer

        with bidsio.staged_output(out_dir, overwrite) as stage:
            writer(stage, n_subjects=n_subjects, seed=seed, **options)
        return Path(out_dir)
    if kind == "boxes":
        from xaibids.simulate.synthetic import simulate_boxes as func
    elif kind == "var":
        from xaibids.simulate.synthetic import simulate_var as func
    else:
        from xaibids.simulate.rnn import simulate_rnn_ei as func
    from xaibids.simulate.write import write_timeseries_dataset

    bidsio.check_output_dir(out_dir, overwrite)  # fail before spending time simulating
    sim = func(n_subjects=n_subjects, seed=seed, **options)
    with bidsio.staged_output(out_dir, overwrite) as stage:
        write_timeseries_dataset(sim, stage)
    return Path(out_dir)
