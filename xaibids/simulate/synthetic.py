"""The synthetic ``boxes`` and ``var`` datasets of Lewis et al. 2023 (§2.5, evaluated as in §2.6, Table 1).

Both follow the seed's description; the quantities the seed leaves open are parameters with
the defaults documented below (and recorded in ``simulation.json`` of every dataset).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from xaibids.simulate.base import TimeseriesSimulation, balanced_labels, stream

#: Sampling period written for the abstract (non-fMRI) sequences of Lewis et al. 2023: one step = 1 s.
STEP_SECONDS = 1.0


def _feature_names(n_features: int) -> list[str]:
    width = max(2, len(str(n_features)))
    return [f"feature{i + 1:0{width}d}" for i in range(n_features)]


def simulate_boxes(n_subjects: int = 100, seed: int = 0, n_timepoints: int = 200,
                   n_features: int = 30, window: int = 10, n_target: int = 15,
                   box_mean: float = 0.0, box_std: float = 1.0) -> TimeseriesSimulation:
    """The *boxes* dataset (Lewis et al. 2023, §2.5).

    Each sample is Gaussian noise N(0, 1) of ``n_timepoints`` (200) steps × ``n_features`` (30)
    features with a random class label. A window of ``window`` (10) consecutive steps is drawn
    uniformly; inside it the first ``n_target`` (15) features (class 0) or the last 15 features
    (class 1) are perturbed by adding Gaussian noise. Ground truth (§2.6): the 10 × 15 box.

    Left open by the seed and chosen here: the added noise is N(``box_mean``, ``box_std``²) with
    defaults 0 and 1 (the perturbation doubles the variance inside the box); the label order is
    a shuffled balanced split (see :func:`~xaibids.simulate.base.balanced_labels`).
    """
    _check(n_subjects, n_timepoints, window, "window")
    if not 0 < n_target <= n_features:
        raise ValueError(f"--n-target must be between 1 and --n-features ({n_features}).")
    if box_std < 0:
        raise ValueError("--box-std must be non-negative.")
    labels = balanced_labels(n_subjects, stream(seed, 0))
    names = _feature_names(n_features)
    data = np.empty((n_subjects, n_timepoints, n_features))
    truth = np.zeros(data.shape, dtype=bool)
    onsets = np.empty(n_subjects, dtype=int)
    relevant = []
    for i, label in enumerate(labels):
        rng = stream(seed, 1, i)
        x = rng.standard_normal((n_timepoints, n_features))
        onset = int(rng.integers(0, n_timepoints - window + 1))
        cols = slice(0, n_target) if label == 0 else slice(n_features - n_target, n_features)
        x[onset:onset + window, cols] += rng.normal(box_mean, box_std, (window, n_target))
        data[i] = x
        truth[i, onset:onset + window, cols] = True
        onsets[i] = onset
        relevant.append(names[cols])
    params = dict(n_subjects=n_subjects, seed=seed, n_timepoints=n_timepoints,
                  n_features=n_features, window=window, n_target=n_target, box_mean=box_mean,
                  box_std=box_std)
    description = (
        f"The *boxes* dataset of Lewis et al. 2023 (§2.5): every sample is Gaussian noise N(0, 1) of "
        f"{n_timepoints} steps × {n_features} features. In a window of {window} consecutive steps "
        f"drawn uniformly per sample, the first {n_target} features (group `class0`) or the last "
        f"{n_target} features (group `class1`) are perturbed by adding Gaussian noise "
        f"N({box_mean:g}, {box_std:g}²). Only the features, not the timing, predict the class. "
        f"Ground truth (§2.6): the {window} × {n_target} box of each sample."
    )
    return TimeseriesSimulation(
        kind="boxes", data=data, labels=labels, group_levels=("class0", "class1"),
        group_descriptions=(f"first {n_target} features perturbed inside the window",
                            f"last {n_target} features perturbed inside the window"),
        feature_names=names, truth=truth, onsets=onsets,
        durations=np.full(n_subjects, window), relevant_features=relevant,
        repetition_time=STEP_SECONDS, task="boxes", atlas="Synthetic", params=params,
        description=description)


def psd_transition(rng: np.random.Generator, n: int, radius: float) -> np.ndarray:
    """A random symmetric positive semi-definite ``n × n`` matrix with spectral radius ``radius``.

    ``M Mᵀ`` with standard normal ``M``, scaled so that its largest eigenvalue is ``radius``
    (< 1 keeps the VAR process stable).
    """
    m = rng.standard_normal((n, n))
    s = m @ m.T
    return s * (radius / np.linalg.eigvalsh(s).max())


def var_process(matrix: np.ndarray, noise: np.ndarray, burn_in: int = 0) -> np.ndarray:
    """First-order VAR ``x_t = M x_{t-1} + e_t`` started at ``x_0 = e_0``; the first
    ``burn_in`` rows of ``noise`` are discarded from the output."""
    x = np.empty_like(noise)
    x[0] = noise[0]
    for t in range(1, len(noise)):
        x[t] = matrix @ x[t - 1] + noise[t]
    return x[burn_in:]


def simulate_var(n_subjects: int = 100, seed: int = 0, n_timepoints: int = 200,
                 n_features: int = 30, window: int = 15, alpha: float = 0.5,
                 radius: float = 0.9, burn_in: int = 50) -> TimeseriesSimulation:
    """The *VAR* dataset (Lewis et al. 2023, §2.5).

    Every sample starts as Gaussian noise (µ = 0, σ = 1) whose dynamics follow a vector
    autoregression ``x_t = A x_{t-1} + e_t`` with one positive semi-definite matrix ``A``
    shared by all samples. ``window`` (15) successive steps at a random position are replaced
    by the blend ``α x'_{t:t+15} + (1 − α) x_{t:t+15}``, where ``x'`` are 15 new VAR steps
    computed from new Gaussian noise with matrix ``B`` (class 0) or ``C`` (class 1), both
    positive semi-definite. Ground truth (§2.6): the 15 × 30 window (all features).

    Left open by the seed and chosen here: VAR order 1 with no constant; ``A``, ``B``, ``C`` are
    ``M Mᵀ`` of standard normal ``M`` scaled to spectral radius ``radius`` (0.9);
    ``alpha`` = 0.5; the background runs ``burn_in`` (50) steps before the kept 200 so that it
    is stationary; ``x'`` starts from its own noise (``x'_0 = e'_0``).
    """
    _check(n_subjects, n_timepoints, window, "window")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError("--alpha must be between 0 and 1.")
    if not 0.0 < radius < 1.0:
        raise ValueError("--radius must be in (0, 1) for a stable VAR process.")
    rng0 = stream(seed, 0)
    labels = balanced_labels(n_subjects, rng0)
    mat_a = psd_transition(rng0, n_features, radius)
    mat_b = psd_transition(rng0, n_features, radius)
    mat_c = psd_transition(rng0, n_features, radius)
    names = _feature_names(n_features)
    data = np.empty((n_subjects, n_timepoints, n_features))
    truth = np.zeros(data.shape, dtype=bool)
    onsets = np.empty(n_subjects, dtype=int)
    for i, label in enumerate(labels):
        rng = stream(seed, 1, i)
        x = var_process(mat_a, rng.standard_normal((n_timepoints + burn_in, n_features)), burn_in)
        onset = int(rng.integers(0, n_timepoints - window + 1))
        new = var_process(mat_b if label == 0 else mat_c,
                          rng.standard_normal((window, n_features)))
        x[onset:onset + window] = alpha * new + (1 - alpha) * x[onset:onset + window]
        data[i] = x
        truth[i, onset:onset + window, :] = True
        onsets[i] = onset
    params = dict(n_subjects=n_subjects, seed=seed, n_timepoints=n_timepoints,
                  n_features=n_features, window=window, alpha=alpha, radius=radius,
                  burn_in=burn_in, var_order=1)
    tables = {f"var_{key}": pd.DataFrame(mat, index=names, columns=names).rename_axis("feature")
              .reset_index() for key, mat in (("A", mat_a), ("B", mat_b), ("C", mat_c))}
    description = (
        f"The *VAR* dataset of Lewis et al. 2023 (§2.5): Gaussian noise (µ = 0, σ = 1) driven by a "
        f"first-order vector autoregression x_t = A x_(t-1) + e_t ({n_timepoints} steps × "
        f"{n_features} features after {burn_in} burn-in steps), with one positive semi-definite "
        f"matrix A for all samples. {window} successive steps at a random position are replaced "
        f"by α x' + (1 − α) x with α = {alpha:g}, where x' are {window} new VAR steps from new "
        f"Gaussian noise with matrix B (group `class0`) or C (group `class1`). A, B and C are "
        f"M Mᵀ of standard normal M scaled to spectral radius {radius:g}; they are stored in "
        f"`var_A.tsv`, `var_B.tsv` and `var_C.tsv`. Ground truth (§2.6): the {window} × "
        f"{n_features} window of each sample."
    )
    return TimeseriesSimulation(
        kind="var", data=data, labels=labels, group_levels=("class0", "class1"),
        group_descriptions=("window dynamics from VAR matrix B",
                            "window dynamics from VAR matrix C"),
        feature_names=names, truth=truth, onsets=onsets,
        durations=np.full(n_subjects, window), relevant_features=[list(names)] * n_subjects,
        repetition_time=STEP_SECONDS, task="var", atlas="Synthetic", params=params,
        tables=tables, description=description)


def _check(n_subjects: int, n_timepoints: int, window: int, name: str) -> None:
    if n_subjects < 2:
        raise ValueError("--n-subjects must be at least 2 (one per class).")
    if not 0 < window <= n_timepoints:
        raise ValueError(f"--{name} must be between 1 and --n-timepoints ({n_timepoints}).")
