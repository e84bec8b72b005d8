"""Small-world RNN simulator of excitation/inhibition (E/I) imbalance (Strock et al. 2025, Materials and
Methods, "Simulated fMRI data with a recurrent neural network model").

What the seed's text gives:

* ``n`` = 100 nodes joined by the adjacency matrix ``A`` of a randomly sampled *connected*
  Watts–Strogatz small-world graph (each node linked to its ``k`` = 10 nearest ring neighbours,
  rewiring probability ``p`` = 0.1), scaled by its spectral radius ``ρ``;
* the two classes differ only in the local excitability of ``a`` nodes; the *prevalence* is
  ``a / n`` (1–10 % in the seed) and the *severity* ``δ`` (0.1–0.5) is "the ratio of local
  difference in excitability in affected nodes to the level of excitability";
* hidden neural variables follow a recurrent network with a nonlinear activation and intrinsic
  noise ``ε_t ~ N(0, σ_ε)``; the BOLD signal is their convolution with a canonical HRF
  (sampling period 1 s) plus measurement noise ``ω_t ~ N(0, σ_ω)`` independent across regions;
* ``SNR = 10 log10(ρ_s / σ_ω²)`` with ``ρ_s`` the largest variance of the signal across ROIs,
  computed empirically after simulating the dynamics; 400 samples per condition.

The equations themselves are missing from the seed's text. The seed points to its code
(github.com/scsnl/Strock_Nghiem_bioRxiv_2025: ``model/rnn_exc/train_simple.py`` and
``common/nn_analysis/dataset/fakefmri.py``), and the default model here follows that code,
because it is what produced the seed's results:

* ``W_0 = A / ρ`` and ``W_1 = W_0 + δ · max(W_0) · 1_a 1ᵀ``: every affected node receives an
  *extra input of weight δ/ρ from every node* (itself included) — the local difference in
  excitability (``δ · max(W_0)``) over its level (``max(W_0) = 1/ρ``) is the severity ``δ``
  (``excitability="input"``);
* ``x_0 ~ N(0, 1)``, ``x_t = tanh(W x_(t−1) + ε_t)``, ``σ_ε`` = 0.1, no burn-in, 100 steps;
* HRF with a sampling period of 1 s (SPM's canonical double gamma here,
  ``nilearn.glm.first_level.spm_hrf``);
* ``σ_ω² = ρ_s · 10^(−SNR/10)`` with ``ρ_s`` the largest time variance over samples and ROIs.

Because the extra input is a rank-one term on the affected rows, ``W_1``'s spectral radius
exceeds 1 (≈ 1 + a·δ/ρ): in group ``hyperexcitable`` the affected nodes drift within tens of
steps to a saturated up or down state (|x| → 0.9 at δ = 0.3, 5 %; the sign differs between
subjects) while the other nodes follow only weakly (|x| ≈ 0.3 against 0.1 in controls). This is
the strong, localized effect that lets the seed's stDNN classify at 100 % even at −10 dB.

Deviations from the seed's code, all recorded in ``simulation.json``:

* the affected nodes are drawn at random (the code takes the first ``a`` nodes of the ring);
* the HRF is applied causally (the code's ``np.convolve(…, mode="same")`` centres the 33-sample
  kernel, so its BOLD signal *leads* the neural activity by about 11 s);
* one noise level for both groups: ``ρ_s`` is the largest time variance over ROIs and over a
  reference set of 400 subjects per group drawn from their own random stream (the code
  calibrates each class on itself, which makes the noise level differ between classes);
* ``excitability="gain"`` keeps the other reading of the seed's text,
  ``W_k = Λ_k A / ρ`` with ``Λ_1 = diag((1 + δ) I_a, I_(n−a))`` (the affected nodes' gain on
  their graph neighbours raised by ``1 + δ``). Its class effect is far weaker (a logistic
  regression on every node's log-variance reaches ≈ 0.83 accuracy at 0 dB, 5 %, δ = 0.3), and it
  is kept for comparison only.

A third reading, ``excitability="local"``, is not in the seed: it is the default of the ``bold``
kind (:mod:`xaibids.simulate.bold`), whose class effect must survive fMRIPrep's confound
regression. The affected nodes' recurrent self-excitation is raised by ``δ``,
``W_1 = W_0 + δ · diag(1_a)`` (a local shift of the E/I balance towards excitation), in a
network below criticality (``W_0 = c · A/ρ`` with a global ``coupling`` ``c`` < 1, e.g. 0.8, and
a burn-in that lets the initial state decay). The affected nodes then fluctuate with a larger
amplitude and a longer autocorrelation, in the BOLD band after the HRF, and they drive their
graph neighbours a little more (coupling); nothing drifts or saturates. With ``c`` = 1 (the
seed's critical network) a raised self-excitation makes the affected nodes unstable, so the
``local`` reading is meant for ``c`` < 1.

Every subject's ground truth is the set of affected nodes at all time points. The other nodes
change too through the network (their mean level in group ``hyperexcitable`` rises with
prevalence and severity), much less than the affected ones; they are not part of the ground
truth, as in the seed.
"""

from __future__ import annotations

from dataclasses import dataclass

import networkx as nx
import numpy as np
import pandas as pd
from scipy.signal import lfilter

from xaibids.simulate.base import TimeseriesSimulation, balanced_labels, stream

#: Reference subjects per group used to measure the signal variance of the SNR (the seed's 400
#: samples per condition and class).
REFERENCE_SUBJECTS = 400
#: The readings of the excitability change (see the module docstring).
EXCITABILITY_MODELS = ("input", "gain", "local")


@dataclass
class EINetwork:
    """The shared structure of an E/I dataset: graph, affected nodes and the two weight matrices."""

    adjacency: np.ndarray
    spectral_radius: float
    affected: np.ndarray
    # (2, n): level of excitability per node in group 0 and 1 (``local``: self-excitation)
    excitability: np.ndarray
    weights: tuple[np.ndarray, np.ndarray]  # W_0, W_1
    model: str = "input"

    @property
    def n_nodes(self) -> int:
        return int(self.adjacency.shape[0])


def canonical_hrf(tr: float) -> np.ndarray:
    """SPM's canonical HRF sampled every ``tr`` seconds (32 s long, unit sum)."""
    from nilearn.glm.first_level import spm_hrf

    return spm_hrf(tr, oversampling=1)


def build_network(n_nodes: int, k: int, rewire_p: float, prevalence: float, severity: float,
                  rng: np.random.Generator, affected: np.ndarray | None = None,
                  excitability: str = "input", coupling: float = 1.0) -> EINetwork:
    """Sample the small-world graph and the affected nodes; build ``W_0`` and ``W_1``.

    ``W_0 = coupling · A/ρ`` (``coupling`` 1: the seed's critical network); ``W_1`` follows the
    ``excitability`` reading of the module docstring.
    """
    if n_nodes < 3:
        raise ValueError("the network needs at least 3 nodes.")
    if not 2 <= k < n_nodes:
        raise ValueError(f"--k must be between 2 and the number of nodes − 1 ({n_nodes - 1}).")
    if not 0.0 <= rewire_p <= 1.0:
        raise ValueError("--rewire-p must be between 0 and 1.")
    if severity < 0:
        raise ValueError("--severity must be non-negative.")
    if excitability not in EXCITABILITY_MODELS:
        raise ValueError(f"--excitability must be one of {', '.join(EXCITABILITY_MODELS)}.")
    if not 0.0 < coupling <= 1.0:
        raise ValueError("--coupling must be in (0, 1] (1: the critical network of Strock et "
                         "al. 2025's code; below 1 the network is stable).")
    graph = nx.connected_watts_strogatz_graph(n_nodes, k, rewire_p, tries=1000,
                                              seed=int(rng.integers(2**31 - 1)))
    adjacency = nx.to_numpy_array(graph, nodelist=range(n_nodes), dtype=float)
    radius = float(np.abs(np.linalg.eigvalsh(adjacency)).max())
    if affected is None:
        if not 0.0 < prevalence <= 1.0:
            raise ValueError("--prevalence must be in (0, 1] (a fraction, e.g. 0.05 for 5 %).")
        n_affected = max(1, int(round(prevalence * n_nodes)))
        affected = np.sort(rng.choice(n_nodes, n_affected, replace=False))
    affected = np.asarray(affected, dtype=int)
    w0 = coupling * adjacency.T / radius
    if excitability == "local":
        level = np.zeros((2, n_nodes))
        level[1, affected] = severity
        w1 = w0 + np.diag(level[1])
        return EINetwork(adjacency, radius, affected, level, (w0, w1), excitability)
    level = np.full((2, n_nodes), float(w0.max()))
    level[1, affected] *= 1.0 + severity
    if excitability == "input":
        w1 = w0.copy()
        w1[affected, :] += severity * w0.max()
    else:
        w1 = (level[1] / level[0])[:, None] * w0
    return EINetwork(adjacency, radius, affected, level, (w0, w1), excitability)


def neural_dynamics(weights: np.ndarray, n_steps: int, neural_noise: float,
                    rng: np.random.Generator, n_runs: int | None = None) -> np.ndarray:
    """``x_0 ~ N(0, 1)``, ``x_t = tanh(W x_(t−1) + ε_t)``; ``(n_steps, n)`` (``x_0`` first) or,
    with ``n_runs``, ``(n_runs, n_steps, n)`` for that many independent runs at once."""
    n = weights.shape[0]
    shape = (n,) if n_runs is None else (n_runs, n)
    x = rng.standard_normal(shape)
    eps = rng.normal(0.0, neural_noise, (n_steps,) + shape)
    out = np.empty((n_steps,) + shape)
    out[0] = x
    for t in range(1, n_steps):
        x = np.tanh(x @ weights.T + eps[t])
        out[t] = x
    return out if n_runs is None else np.moveaxis(out, 0, 1)


def hemodynamic(x: np.ndarray, hrf: np.ndarray, axis: int = 0) -> np.ndarray:
    """Causal convolution of ``x`` with ``hrf`` along ``axis`` (time)."""
    return lfilter(hrf, [1.0], x, axis=axis)


def clean_signals(network: EINetwork, labels: np.ndarray, seed: int, n_timepoints: int,
                  tr: float, neural_noise: float, burn_in: int) -> np.ndarray:
    """Noise-free BOLD signals ``(n_subjects, n_timepoints, n_nodes)`` (subject streams)."""
    hrf = canonical_hrf(tr)
    out = np.empty((len(labels), n_timepoints, network.n_nodes))
    for i, label in enumerate(labels):
        x = neural_dynamics(network.weights[label], n_timepoints + burn_in, neural_noise,
                            stream(seed, 1, i))
        out[i] = hemodynamic(x, hrf)[burn_in:]
    return out


def reference_signal_variance(network: EINetwork, seed: int, tr: float, neural_noise: float,
                              burn_in: int, n_timepoints: int,
                              n_reference: int = REFERENCE_SUBJECTS) -> float:
    """``ρ_s`` of the SNR: the largest time variance over ROIs and over ``n_reference``
    reference subjects of each group (noise-free BOLD, own random stream)."""
    hrf = canonical_hrf(tr)
    largest = 0.0
    for label in (0, 1):
        x = neural_dynamics(network.weights[label], n_timepoints + burn_in, neural_noise,
                            stream(seed, 2, label), n_runs=n_reference)
        y = hemodynamic(x, hrf, axis=1)[:, burn_in:]
        largest = max(largest, float(y.var(axis=1).max()))
    return largest


def noise_sd_for_snr(signal_variance: float, snr_db: float) -> float:
    """``σ_ω`` such that ``10 log10(signal_variance / σ_ω²) = snr_db``."""
    return float(np.sqrt(signal_variance / 10.0 ** (snr_db / 10.0)))


def simulate_rnn_ei(n_subjects: int = 400, seed: int = 0, n_nodes: int = 100, k: int = 10,
                    rewire_p: float = 0.1, prevalence: float = 0.05, severity: float = 0.3,
                    snr_db: float = 0.0, n_timepoints: int = 100, neural_noise: float = 0.1,
                    burn_in: int = 0, tr: float = 1.0,
                    excitability: str = "input", coupling: float = 1.0) -> TimeseriesSimulation:
    """The RNN E/I-imbalance dataset of Strock et al. 2025 (see the module docstring for the model).

    Defaults are the seed's central condition (5 % prevalence, δ = 0.3, 0 dB; Fig 2) and its
    code's dynamics (σ_ε = 0.1, 100 steps of 1 s, no burn-in).
    """
    if n_subjects < 2:
        raise ValueError("--n-subjects must be at least 2 (one per class).")
    if n_timepoints < 2:
        raise ValueError("--n-timepoints must be at least 2.")
    if neural_noise <= 0:
        raise ValueError("--neural-noise must be positive.")
    if burn_in < 0:
        raise ValueError("--burn-in must be non-negative.")
    rng0 = stream(seed, 0)
    labels = balanced_labels(n_subjects, rng0)
    network = build_network(n_nodes, k, rewire_p, prevalence, severity, rng0,
                            excitability=excitability, coupling=coupling)
    signals = clean_signals(network, labels, seed, n_timepoints, tr, neural_noise, burn_in)
    signal_var = reference_signal_variance(network, seed, tr, neural_noise, burn_in,
                                           n_timepoints)
    noise_sd = noise_sd_for_snr(signal_var, snr_db)
    data = np.empty_like(signals)
    for i in range(n_subjects):
        # measurement noise: a second stream per subject, independent of the dynamics
        data[i] = signals[i] + stream(seed, 1, i, 1).normal(0.0, noise_sd, signals[i].shape)
    width = max(3, len(str(n_nodes)))
    names = [f"node{j + 1:0{width}d}" for j in range(n_nodes)]
    truth = np.zeros(data.shape, dtype=bool)
    truth[:, :, network.affected] = True
    relevant = [names[j] for j in network.affected]
    params = dict(n_subjects=n_subjects, seed=seed, n_nodes=n_nodes, k=k, rewire_p=rewire_p,
                  prevalence=prevalence, n_affected=int(len(network.affected)),
                  severity=severity, snr_db=snr_db, n_timepoints=n_timepoints,
                  neural_noise=neural_noise, burn_in=burn_in, tr=tr, excitability=excitability,
                  coupling=coupling, spectral_radius=network.spectral_radius,
                  spectral_radius_w1=float(np.abs(np.linalg.eigvals(network.weights[1])).max()),
                  reference_subjects_per_group=REFERENCE_SUBJECTS,
                  reference_signal_variance=signal_var, measurement_noise_sd=noise_sd,
                  dynamics=dynamics_text(excitability, coupling))
    tables = {
        "rnn_adjacency": pd.DataFrame(network.adjacency.astype(int), columns=names)
        .assign(node=names)[["node"] + names],
        "groundtruth_features": features_table(names, network),
    }
    description = (
        f"The small-world RNN E/I-imbalance simulator of Strock et al. 2025 (Materials and Methods; "
        f"equations from the seed's published code): {n_nodes} nodes on a connected "
        f"Watts–Strogatz graph (k = {k}, p = {rewire_p:g}; adjacency A in `rnn_adjacency.tsv`), "
        f"recurrent weights W_0 = {_coupling_text(coupling)}A/ρ for group `control`; for group "
        f"`hyperexcitable` {change_text(network, severity)} "
        + f"Hidden states x_0 ~ N(0, 1), x_t = tanh(W x_(t−1) + ε_t), "
        f"ε ~ N(0, {neural_noise:g}²), are convolved (causally) with SPM's canonical HRF "
        f"(TR = {tr:g} s) and measurement noise is added for an SNR of {snr_db:g} dB relative "
        f"to the largest regional signal variance of {REFERENCE_SUBJECTS} reference subjects "
        f"per group (one noise level for both groups). {n_timepoints} volumes per subject"
        + (f" after {burn_in} burn-in steps" if burn_in else "") + ". Ground truth: the "
        f"affected nodes ({', '.join(relevant)}) at every time point, for both groups. Through "
        f"the recurrent connections the other nodes change too (weaker, indirect effects that "
        f"are not part of the ground truth)."
    )
    return TimeseriesSimulation(
        kind="rnn-ei", data=data, labels=labels, group_levels=("control", "hyperexcitable"),
        group_descriptions=("typical excitability on every node",
                            f"excitability raised by δ = {severity:g} on the affected nodes"),
        feature_names=names, truth=truth, onsets=np.zeros(n_subjects, dtype=int),
        durations=np.full(n_subjects, n_timepoints),
        relevant_features=[relevant] * n_subjects, repetition_time=tr, task="rest",
        atlas="SmallWorld", params=params, tables=tables, description=description)


def _coupling_text(coupling: float, times: str = "·") -> str:
    return "" if coupling == 1.0 else f"{coupling:g}{times}"


def change_text(network: EINetwork, severity: float) -> str:
    """What differs in group ``hyperexcitable``, in words (README and dataset description)."""
    n_aff, n = len(network.affected), network.n_nodes
    who = f"{n_aff} affected node(s) ({100 * n_aff / n:.3g} % prevalence)"
    if network.model == "input":
        return (f"every one of the {who} receives an extra input of weight δ/ρ from every "
                f"node, δ = {severity:g} (W_1 = W_0 + δ·max(W_0)·1_a 1ᵀ).")
    if network.model == "gain":
        return (f"the gain of the {who} on their neighbours is raised by 1 + δ, "
                f"δ = {severity:g} (W_1 = Λ_1 A/ρ).")
    return (f"the recurrent self-excitation of the {who} is raised by δ = {severity:g} "
            "(W_1 = W_0 + δ·diag(1_a)): a local shift of the E/I balance towards excitation "
            "that raises the amplitude and autocorrelation of their activity.")


def dynamics_text(excitability: str, coupling: float = 1.0) -> str:
    """One-line statement of the model, for ``simulation.json``."""
    change = {"input": "W_1 = W_0 + severity*max(W_0)*1_a 1^T",
              "gain": "W_1 = diag(1+severity on affected) W_0",
              "local": "W_1 = W_0 + severity*diag(1_a)"}[excitability]
    return (f"W_0 = {_coupling_text(coupling, '*')}A/rho; {change}; x_0 ~ N(0,1); "
            "x_t = tanh(W x_(t-1) + eps_t); "
            "y_t = (HRF * x)_t + omega_t (causal HRF)")


def features_table(names: list[str], network: EINetwork) -> pd.DataFrame:
    """Dataset-level ground truth: one row per feature, ``relevant`` = 1 for affected nodes."""
    relevant = np.zeros(len(names), dtype=int)
    relevant[network.affected] = 1
    return pd.DataFrame({
        "feature": names,
        "relevant": relevant,
        "excitability_control": network.excitability[0],
        "excitability_hyperexcitable": network.excitability[1],
    })
