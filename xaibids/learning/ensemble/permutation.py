"""Permutation-based significance and reproducibility of feature importances (Gotsopoulos et al.
2018, §2.9): ensembles trained on label-shuffled data.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from xaibids.attribution.reliability import permutation_reproducibility
from xaibids.learning.dataset import TimeseriesDataset
from xaibids.learning.ensemble.config import EnsembleConfig, attribution_settings
from xaibids.learning.ensemble.result import EnsembleResult, run_ensemble

LOGGER = logging.getLogger("xaibids")

@dataclass
class PermutationResult:
    """Output of :func:`permutation_test`.

    Attributes
    ----------
    tables : dict of str to pandas.DataFrame
        Per map key, :func:`xaibids.attribution.reliability.permutation_reproducibility`'s table
        (``class``, ``feature``, ``null_threshold``, ``reproducibility``, ``reproducible``,
        ``reproducibility_threshold``, ``n_runs``); written as ``desc-<key>_permutation.tsv``.
    thresholds : dict of str to int
        Per map key, the permutation-derived reproducibility threshold.
    accuracy : pandas.DataFrame
        Columns ``set`` (``real``, ``null``, ``reproducibility``), ``permutation`` (index, -1 for
        the real runs) and ``balanced_accuracy`` (of single models, mean over folds -- and over
        the models for the real runs -- so that real and null runs are alike).
    p_value : float
        ``(1 + #{null >= real}) / (1 + n_permutations)`` for the real balanced accuracy.
    real : EnsembleResult
        The real (correctly labelled) ensemble.
    """

    tables: dict[str, pd.DataFrame]
    thresholds: dict[str, int]
    accuracy: pd.DataFrame
    p_value: float
    real: EnsembleResult


def _single_model_accuracy(result: EnsembleResult) -> float:
    perf = result.performance
    return float(perf[perf.model != "ensemble"].balanced_accuracy.mean())


def permutation_test(
    dataset: TimeseriesDataset,
    config: EnsembleConfig,
    n_permutations: int,
    checkpoint_dir: str | Path,
    alpha: float = 0.05,
    real: EnsembleResult | None = None,
    progress: bool = False,
) -> PermutationResult:
    """Permutation-based significance and reproducibility of feature importances (Gotsopoulos et al. 2018, §2.9).

    Reading of Gotsopoulos et al. 2018 for seeded ensembles
    ----------------------------------------
    Gotsopoulos et al. 2018 repeats one leave-one-subject-out classification 1000 times ("runs", differing by
    their random initialization) and, per voxel and category, counts in how many runs the
    voxel's importance exceeds a significance threshold taken from a null distribution of 1000
    runs with permuted labels, one permutation each (§2.9.1-2.9.2); a second set of permutation
    runs, scored in the same way, gives the reproducibility threshold, the largest
    reproducibility any voxel reaches by chance (§2.9.3). Here:

    - a **real run** is model index ``m`` of every fold (:attr:`EnsembleResult.run_importance`):
      those models together explain every sample once, out of fold, exactly like one
      cross-validated run of the seed, and differ from the other runs by their random
      initialization. The real ensemble thus gives ``config.n_models`` runs;
    - a run's **importance** of feature ``f`` for class ``c`` is the mean over the samples of true
      class ``c`` of its positive, sum-normalized map summed over time (voxel and category of the
      seed);
    - **null runs**: ``n_permutations`` runs, each with its own shuffle of the labels over all
      samples before the folds are made (§2.9.1), trained with the same settings (one model per
      fold: a run); the per-feature, per-class null threshold is the ``1 - alpha`` quantile of
      their importances;
    - **reproducibility** of a feature: the number of real runs in which it exceeds its threshold;
    - **reproducibility permutations**: ``config.n_models`` further runs, each with its own
      shuffle, as many as there are real runs; the reproducibility threshold is the maximum
      count any feature and class reaches among them, and a real feature is ``reproducible``
      when its count exceeds it ("the lowest reproducibility value where no voxels appear
      significant", §3.2, is one above the maximum).

    Every permutation run trains in its own checkpoint folder (``permutation-<p>``,
    ``reproducibility-<r>`` under ``checkpoint_dir``), so an interrupted test resumes.

    Parameters
    ----------
    dataset : TimeseriesDataset
    config : EnsembleConfig
        Settings of the real ensemble and of every permutation run.
    n_permutations : int
        Label-shuffled runs for the null distribution (Gotsopoulos et al. 2018: 1000); at least ``1 / alpha``
        are needed for a meaningful quantile.
    checkpoint_dir : str or Path
        Parent folder of the permutations' checkpoints (and of ``real`` when it is computed).
    alpha : float, default=0.05
        Per-feature significance level.
    real : EnsembleResult, optional
        The real ensemble if already run with ``config``; else it is run in
        ``checkpoint_dir/real``.
    progress : bool, default=False
        Progress bars of the ensembles.

    Returns
    -------
    PermutationResult
    """
    if not isinstance(config, EnsembleConfig):
        raise TypeError("permutation_test needs an EnsembleConfig.")
    if isinstance(n_permutations, bool) or not isinstance(n_permutations, (int, np.integer)) or n_permutations < 1:
        raise ValueError(f"permutation_test n_permutations must be a positive integer, got {n_permutations!r}.")
    if not (isinstance(alpha, float) and 0 < alpha < 1):
        raise ValueError(f"permutation_test alpha must be a float in (0, 1), got {alpha!r}.")
    if n_permutations < 1 / alpha:
        LOGGER.warning("Only %d null runs for alpha=%g: the null threshold is the largest null importance.",
                       n_permutations, alpha)
    checkpoint_dir = Path(checkpoint_dir)
    if real is None:
        real = run_ensemble(dataset, config, checkpoint_dir / "real", progress=progress)
    keys = list(attribution_settings(config))
    missing = [k for k in keys if k not in real.run_importance]
    if missing:
        raise ValueError(f"The real ensemble has no run importances for {missing}; was it run with this config?")
    run_config = dataclasses.replace(config, n_models=1, stability=False, keep_model_maps=False)
    rows = [{"set": "real", "permutation": -1, "balanced_accuracy": _single_model_accuracy(real)}]

    def shuffled_run(kind: str, index: int) -> dict[str, np.ndarray]:
        rng = np.random.default_rng([config.random_seed, 2004, 0 if kind == "null" else 1, index])
        permuted = dataclasses.replace(dataset, y=rng.permutation(dataset.y))
        name = "permutation" if kind == "null" else "reproducibility"
        result = run_ensemble(permuted, run_config, checkpoint_dir / f"{name}-{index:04d}", progress=progress)
        rows.append({"set": kind, "permutation": index, "balanced_accuracy": _single_model_accuracy(result)})
        return {k: result.run_importance[k][0] for k in keys}

    null_runs = [shuffled_run("null", p) for p in range(n_permutations)]
    repro_runs = [shuffled_run("reproducibility", r) for r in range(config.n_models)]
    tables, thresholds = {}, {}
    for k in keys:
        tables[k], thresholds[k] = permutation_reproducibility(
            real.run_importance[k], np.stack([run[k] for run in null_runs]),
            np.stack([run[k] for run in repro_runs])[None], alpha=alpha,
            feature_names=list(dataset.feature_names), classes=list(dataset.classes),
        )
    accuracy = pd.DataFrame(rows, columns=["set", "permutation", "balanced_accuracy"])
    null_acc = accuracy[accuracy.set == "null"].balanced_accuracy.to_numpy()
    p_value = float((1 + np.sum(null_acc >= rows[0]["balanced_accuracy"])) / (1 + len(null_acc)))
    return PermutationResult(tables=tables, thresholds=thresholds, accuracy=accuracy, p_value=p_value,
                             real=real)
