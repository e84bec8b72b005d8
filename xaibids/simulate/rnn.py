"""Small-world RNN simulator of excitation/inhibition (E/I) imbalance (seed 001, Materials and
Methods, "Simulated fMRI data with a recurrent neural network model").

The seed's model, as far as its text gives it:

* ``n`` = 100 nodes joined by the adjacency matrix ``A`` of a randomly sampled *connected*
  Watts–Strogatz small-world graph (each node linked to its ``k`` = 10 nearest ring neighbours,
  rewiring probability ``p`` = 0.1);
* the two classes differ only in the local excitability of ``a`` nodes:
  ``W_k = Λ_k Aᵀ`` with ``Λ_0 = (1/ρ) I_n`` and ``Λ_1 = (1/ρ) diag((1 + δ) I_a, I_(n−a))``, where
  ``ρ`` is the spectral radius of ``A``, the *prevalence* is ``a / n`` (1–10 % in the seed) and the
  *severity* is ``δ`` (0.1–0.5), the ratio of the local change of excitability to its level;
* hidden neural variables follow a recurrent network with a nonlinear activation and intrinsic
  noise ``ε_t ~ N(0, σ_ε)``, the BOLD signal is their convolution with the canonical
  hemodynamic response function (sampling period 1 s) plus measurement noise
  ``ω_t ~ N(0, σ_ω)`` independent across regions;
* ``σ_ω`` sets the SNR: ``SNR = 10 log10(ρ_s / σ_ω²)`` with ``ρ_s`` the largest variance of the
  signal across regions, computed empirically after simulating the dynamics.

The equations themselves are missing from the seed's text, so the following are choices,
exposed as parameters and recorded in ``simulation.json``:

* dynamics ``x_t = tanh(W x_(t−1) + ε_t)`` with ``σ_ε`` = 0.2 (``neural_noise``), started at 0 and
  run ``burn_in`` = 100 steps before the kept ones;
* the affected nodes are drawn at random (not the first ``a``; the block form above is the
  same matrix up to a permutation), ``a = max(1, round(prevalence · n))``;
* the HRF is SPM's canonical double gamma (``nilearn.glm.first_level.spm_hrf``), applied
  causally;
* ``ρ_s`` is computed once per dataset from a 1000-step reference run of the *class-0*
  network (so the noise level carries no class information), on the HRF-convolved signal;
* ``n_timepoints`` = 200 volumes per subject.

Class information therefore sits in the affected nodes (their gain on incoming activity is
``1 + δ`` times larger, which raises their variance and their coupling to their neighbours);
every subject's ground truth is the set of affected nodes at all time points. Through the
recurrent connections the graph neighbours of affected nodes change too, much less (a few
neighbours reach nominal significance at high SNR and severity); nodes that are not neighbours
of an affected node carry no class information.
"""

from __future__ import annotations

from dataclasses import dataclass

import networkx as nx
import numpy as np
import pandas as pd
from scipy.signal import lfilter

from xaibids.simulate.base import TimeseriesSimulation, balanced_labels, stream

#: Length of the reference run used to measure the signal variance for the SNR.
REFERENCE_STEPS = 1000


@dataclass
class EINetwork:
    """The shared structure of an E/I dataset: graph, affected nodes and the two weight matrices."""

    adjacency: np.ndarray
    spectral_radius: float
    affected: np.ndarray
    excitability: np.ndarray  # (2, n): diagonal of Λ_0 and Λ_1
    weights: tuple[np.ndarray, np.ndarray]  # W_0, W_1

    @property
    def n_nodes(self) -> int:
        return int(self.adjacency.shape[0])


def canonical_hrf(tr: float) -> np.ndarray:
    """SPM's canonical HRF sampled every ``tr`` seconds (32 s long, unit sum)."""
    from nilearn.glm.first_level import spm_hrf

    return spm_hrf(tr, oversampling=1)


def build_network(n_nodes: int, k: int, rewire_p: float, prevalence: float, severity: float,
                  rng: np.random.Generator, affected: np.ndarray | None = None) -> EINetwork:
    """Sample the small-world graph and the affected nodes; build ``W_0`` and ``W_1``."""
    if n_nodes < 3:
        raise ValueError("the network needs at least 3 nodes.")
    if not 2 <= k < n_nodes:
        raise ValueError(f"--k must be between 2 and the number of nodes − 1 ({n_nodes - 1}).")
    if not 0.0 <= rewire_p <= 1.0:
        raise ValueError("--rewire-p must be between 0 and 1.")
    if severity < 0:
        raise ValueError("--severity must be non-negative.")
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
    lam = np.full((2, n_nodes), 1.0 / radius)
    lam[1, affected] *= 1.0 + severity
    weights = tuple(lam[c][:, None] * adjacency.T for c in (0, 1))
    return EINetwork(adjacency, radius, affected, lam, weights)


def neural_dynamics(weights: np.ndarray, n_steps: int, neural_noise: float,
                    rng: np.random.Generator) -> np.ndarray:
    """``x_t = tanh(W x_(t−1) + ε_t)`` from ``x_0 = 0``; returns ``(n_steps, n)``."""
    n = weights.shape[0]
    eps = rng.normal(0.0, neural_noise, (n_steps, n))
    out = np.empty((n_steps, n))
    x = np.zeros(n)
    for t in range(n_steps):
        x = np.tanh(weights @ x + eps[t])
        out[t] = x
    return out


def hemodynamic(x: np.ndarray, hrf: np.ndarray) -> np.ndarray:
    """Causal convolution of every column of ``x`` with ``hrf``."""
    return lfilter(hrf, [1.0], x, axis=0)


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
                              burn_in: int) -> float:
    """Largest variance across regions of the class-0 BOLD signal (``ρ_s`` of the SNR)."""
    x = neural_dynamics(network.weights[0], REFERENCE_STEPS + burn_in, neural_noise,
                        stream(seed, 2, 0))
    return float(hemodynamic(x, canonical_hrf(tr))[burn_in:].var(axis=0).max())


def noise_sd_for_snr(signal_variance: float, snr_db: float) -> float:
    """``σ_ω`` such that ``10 log10(signal_variance / σ_ω²) = snr_db``."""
    return float(np.sqrt(signal_variance / 10.0 ** (snr_db / 10.0)))


def simulate_rnn_ei(n_subjects: int = 100, seed: int = 0, n_nodes: int = 100, k: int = 10,
                    rewire_p: float = 0.1, prevalence: float = 0.05, severity: float = 0.3,
                    snr_db: float = 0.0, n_timepoints: int = 200, neural_noise: float = 0.2,
                    burn_in: int = 100, tr: float = 1.0) -> TimeseriesSimulation:
    """The RNN E/I-imbalance dataset of seed 001 (see the module docstring for the model).

    Defaults are the seed's central condition (5 % prevalence, δ = 0.3, 0 dB; Fig 2).
    """
    if n_subjects < 2:
        raise ValueError("--n-subjects must be at least 2 (one per class).")
    if n_timepoints < 2:
        raise ValueError("--n-timepoints must be at least 2.")
    if neural_noise <= 0:
        raise ValueError("--neural-noise must be positive.")
    rng0 = stream(seed, 0)
    labels = balanced_labels(n_subjects, rng0)
    network = build_network(n_nodes, k, rewire_p, prevalence, severity, rng0)
    signals = clean_signals(network, labels, seed, n_timepoints, tr, neural_noise, burn_in)
    signal_var = reference_signal_variance(network, seed, tr, neural_noise, burn_in)
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
                  neural_noise=neural_noise, burn_in=burn_in, tr=tr,
                  spectral_radius=network.spectral_radius, reference_signal_variance=signal_var,
                  measurement_noise_sd=noise_sd,
                  dynamics="x_t = tanh(W x_(t-1) + eps_t); y_t = (HRF * x)_t + omega_t")
    tables = {
        "rnn_adjacency": pd.DataFrame(network.adjacency.astype(int), columns=names)
        .assign(node=names)[["node"] + names],
        "groundtruth_features": features_table(names, network),
    }
    description = (
        f"The small-world RNN E/I-imbalance simulator of seed 001 (Materials and Methods): "
        f"{n_nodes} nodes on a connected Watts–Strogatz graph (k = {k}, p = {rewire_p:g}; "
        f"adjacency in `rnn_adjacency.tsv`), recurrent weights W = Λ Aᵀ with Λ = I/ρ for group "
        f"`control` and the excitability of {len(network.affected)} node(s) "
        f"({100 * len(network.affected) / n_nodes:g} % prevalence) raised by δ = {severity:g} "
        f"for group `hyperexcitable`. Hidden states x_t = tanh(W x_(t−1) + ε_t), "
        f"ε ~ N(0, {neural_noise:g}²), are convolved with SPM's canonical HRF (TR = {tr:g} s) "
        f"and measurement noise is added for an SNR of {snr_db:g} dB relative to the largest "
        f"regional signal variance of a reference control run. {n_timepoints} volumes per "
        f"subject after {burn_in} burn-in steps. Ground truth: the affected nodes "
        f"({', '.join(relevant)}) at every time point, for both groups. Through the "
        f"recurrent connections their graph neighbours change slightly too (weaker, "
        f"indirect effects that are not part of the ground truth)."
    )
    return TimeseriesSimulation(
        kind="rnn-ei", data=data, labels=labels, group_levels=("control", "hyperexcitable"),
        group_descriptions=("typical excitability on every node",
                            f"excitability raised by δ = {severity:g} on the affected nodes"),
        feature_names=names, truth=truth, onsets=np.zeros(n_subjects, dtype=int),
        durations=np.full(n_subjects, n_timepoints),
        relevant_features=[relevant] * n_subjects, repetition_time=tr, task="rest",
        atlas="SmallWorld", params=params, tables=tables, description=description)


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
