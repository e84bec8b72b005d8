"""The ensemble's result: folds merged into one :class:`EnsembleResult`, and :func:`run_ensemble`,
every fold in one process.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from xaibids.learning.dataset import TimeseriesDataset
from xaibids.learning.ensemble.config import (
    AUTO_STEPS, EnsembleConfig, attribution_settings, method_params,
)
from xaibids.learning.ensemble.fitting import _build_trained, _obtain_models
from xaibids.learning.ensemble.folds import (
    _check_inputs, dataset_hash, _plan_fold, _prepare_device, ensemble_folds,
)
from xaibids.learning.ensemble.maps import FoldResult, _attribute_plan

LOGGER = logging.getLogger("xaibids")

@dataclass
class EnsembleResult:
    """Output of :func:`run_ensemble`.

    Attributes
    ----------
    maps : dict of str to ndarray of shape (n_samples, n_timepoints, n_features)
        Per attribution method, the stabilized out-of-fold map of every sample (float32,
        non-negative, each summing to 1).
    map_info : list of dict
        Per sample: ``sample``, ``subject``, ``source``, ``fold``, ``model_seeds`` (the fold's
        models), ``selected_model_index`` and ``selected_model_seed`` (dicts per method; None for
        the ``mean``/``median`` stabilizations), ``model_losses`` (each model's cross-entropy on
        the sample), ``prediction`` (ensemble class label), ``prediction_index``, ``probability``
        (ensemble probability of the predicted class), ``probabilities`` (per class label),
        ``true_label``, ``true_index`` and ``correct``. The ensemble probability is the mean of
        the models' softmax outputs.
    performance : pandas.DataFrame
        Columns ``fold``, ``model`` (seed, or ``"ensemble"``), ``n_models``, ``accuracy``,
        ``balanced_accuracy``, ``loss`` (mean test cross-entropy), one row per model and one
        ``ensemble`` row per fold.
    single_model_maps : dict of str to ndarray of shape (n_samples, n_timepoints, n_features)
        Per method, the map of each fold's *first* model only, made positive and normalized
        the same way: the unstabilized reference for stability comparisons.
    folds : list of (ndarray, ndarray)
        Training and test sample indices of each fold (fold ``k`` is ``folds[k - 1]``).
    n_trained, n_reused : int
        Models trained in this call, and models loaded from existing checkpoints.
    device : str
        Device the models ran on.
    model_maps : dict of str to ndarray of shape (n_models, n_samples, n_timepoints, n_features) or None
        Only with ``EnsembleConfig.keep_model_maps``: every model's map (model ``m`` of the
        sample's fold in row ``m``), positive and normalized like the stabilized maps.
    stability : pandas.DataFrame
        Stability of the maps across seeds, long table with columns ``method`` (map key),
        ``metric``, ``value``, ``n_samples``. Metrics: ``seed_correlation`` (per sample, the mean
        Pearson correlation over all pairs of the fold's models' positive maps; averaged over
        samples), ``split_half_correlation`` (per sample, Pearson correlation between the maps
        stabilized from the first ``n_models // 2`` models and from the others; averaged over
        samples) and ``split_half_spearman_brown`` (``2r / (1 + r)`` of that mean, the
        reliability of the full ensemble). NaN with a single model; empty with
        ``EnsembleConfig.stability=False``.
    run_importance : dict of str to ndarray of shape (n_models, n_classes, n_features)
        Per map key, the feature importance of each "run" ``m`` -- model ``m`` of every fold,
        which together explain every sample once, out of fold, like one cross-validation run of
        Gotsopoulos et al. 2018 (§2.7) -- for each true class: the model's positive, sum-normalized map summed
        over time, averaged over the samples of that class.
    mean_model_importance : dict of str to ndarray of shape (n_samples, n_features)
        Per map key, each sample's feature importance averaged over its fold's models: every
        model's positive, sum-normalized map summed over time, then the mean over the models
        (NaN for samples not attributed). Less noisy than the one stabilized map per sample,
        it is what the ``empirical-null`` selection rule tests (:mod:`xaibids.stats.selection`).
    attribution_params : dict of str to dict
        Per map key: ``method``, ``baseline`` (name or None) and ``params`` (every parameter
        with defaults filled in), the record of how each map was made.
    ig_convergence : pandas.DataFrame
        With ``EnsembleConfig.ig_steps=0``: per fold, IG baseline and step count tried, the
        completeness error and whether that count was ``chosen``; ``mean_points`` equals
        ``n_steps``. With ``"adaptive"``: per fold and baseline one row, ``n_steps`` "adaptive",
        the completeness error over all the fold's models and test samples and the mean gradient
        evaluations per map (``mean_points``). Empty with a fixed count.
    """

    maps: dict[str, np.ndarray]
    map_info: list[dict]
    performance: pd.DataFrame
    single_model_maps: dict[str, np.ndarray]
    folds: list[tuple[np.ndarray, np.ndarray]]
    n_trained: int = 0
    n_reused: int = 0
    device: str = "cpu"
    model_maps: dict[str, np.ndarray] | None = None
    stability: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=STABILITY_COLUMNS))
    run_importance: dict[str, np.ndarray] = field(default_factory=dict)
    mean_model_importance: dict[str, np.ndarray] = field(default_factory=dict)
    attribution_params: dict[str, dict] = field(default_factory=dict)
    ig_convergence: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(
        columns=IG_CONVERGENCE_COLUMNS))


STABILITY_COLUMNS = ["method", "metric", "value", "n_samples"]
IG_CONVERGENCE_COLUMNS = ["fold", "baseline", "n_steps", "completeness_error", "chosen", "mean_points"]
def fold_method_params(config: EnsembleConfig, result: EnsembleResult, fold: int) -> dict[str, dict]:
    """:func:`method_params` with IG's step count as ``result`` used it in fold ``fold``."""
    params = method_params(config)
    if params.get("ig", {}).get("n_steps") == AUTO_STEPS:
        chosen = result.ig_convergence[result.ig_convergence["chosen"]
                                       & (result.ig_convergence["fold"] == fold)]
        if chosen.empty:
            raise ValueError(f"The ensemble result has no IG step count chosen for fold {fold}.")
        params["ig"]["n_steps"] = int(chosen["n_steps"].iloc[0])
    return params


def merge_fold_results(
    dataset: TimeseriesDataset,
    config: EnsembleConfig,
    fold_results: list[FoldResult],
    n_trained: int = 0,
    n_reused: int = 0,
) -> EnsembleResult:
    """Combine every fold's :class:`FoldResult` into the :class:`EnsembleResult` of :func:`run_ensemble`.

    Parameters
    ----------
    dataset, config
        As for :func:`run_ensemble`.
    fold_results : list of FoldResult
        One per fold, in any order (:func:`attribute_trained_fold`).
    n_trained, n_reused : int
        Models trained and models reused from checkpoints, for :attr:`EnsembleResult.n_trained`
        and :attr:`EnsembleResult.n_reused`.

    Returns
    -------
    EnsembleResult
    """
    _check_inputs(dataset, config, "merge_fold_results")
    by_fold = {r.fold: r for r in fold_results}
    if sorted(by_fold) != list(range(1, config.n_folds + 1)) or len(fold_results) != config.n_folds:
        raise ValueError(f"merge_fold_results needs one result per fold 1..{config.n_folds}, got folds "
                         f"{sorted(r.fold for r in fold_results)}.")
    results = [by_fold[k] for k in range(1, config.n_folds + 1)]
    n, T, F = dataset.X.shape
    n_classes = len(dataset.classes)
    settings = attribution_settings(config)
    keys = list(settings)
    covered = np.concatenate([r.test_idx for r in results])
    if len(covered) != n or not np.array_equal(np.sort(covered), np.arange(n)):
        raise ValueError("merge_fold_results: the folds' test samples do not cover the dataset exactly once; "
                         "were they made from this dataset and config?")
    maps = {m: np.full((n, T, F), np.nan, dtype=np.float32) for m in keys}
    single = {m: np.full((n, T, F), np.nan, dtype=np.float32) for m in keys}
    every = ({m: np.full((config.n_models, n, T, F), np.nan, dtype=np.float32) for m in keys}
             if config.keep_model_maps else None)
    seed_r = {m: np.full(n, np.nan) for m in keys}
    split_r = {m: np.full(n, np.nan) for m in keys}
    run_sums = {m: np.zeros((config.n_models, n_classes, F)) for m in keys}
    mean_importance = {m: np.full((n, F), np.nan, dtype=np.float32) for m in keys}
    map_info: list[dict | None] = [None] * n
    rows: list[dict] = []
    for r in results:
        positions = r.test_idx
        for m in keys:
            maps[m][positions] = r.maps[m]
            single[m][positions] = r.single_model_maps[m]
            if every is not None:
                every[m][:, positions] = r.model_maps[m]
            seed_r[m][positions] = r.seed_correlation[m]
            split_r[m][positions] = r.split_half_correlation[m]
            run_sums[m] += r.run_sums[m]
            mean_importance[m][positions] = r.mean_model_importance[m]
        for j, sample in enumerate(positions):
            map_info[sample] = r.map_info[j]
        rows.extend(r.performance)
    if n_reused:
        LOGGER.info("Reused %d checkpointed model(s), trained %d.", n_reused, n_trained)
    performance = pd.DataFrame(rows, columns=["fold", "model", "n_models", "accuracy",
                                              "balanced_accuracy", "loss"])
    performance["model"] = performance["model"].astype(object)
    stability_rows = []
    if config.stability:
        for method in keys:
            for metric, values in (("seed_correlation", seed_r[method]),
                                   ("split_half_correlation", split_r[method])):
                finite = np.isfinite(values)
                value = float(values[finite].mean()) if finite.any() else float("nan")
                stability_rows.append({"method": method, "metric": metric, "value": value,
                                       "n_samples": int(finite.sum())})
            r = stability_rows[-1]["value"]
            stability_rows.append({"method": method, "metric": "split_half_spearman_brown",
                                   "value": 2 * r / (1 + r) if np.isfinite(r) and r > -1 else float("nan"),
                                   "n_samples": stability_rows[-1]["n_samples"]})
    class_counts = np.bincount(dataset.y, minlength=n_classes).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        run_importance = {m: run_sums[m] / class_counts[None, :, None] for m in keys}
    devices = list(dict.fromkeys(r.device for r in results))
    return EnsembleResult(
        maps=maps, map_info=map_info, performance=performance, single_model_maps=single,
        folds=[(r.train_idx, r.test_idx) for r in results], n_trained=int(n_trained),
        n_reused=int(n_reused), device=",".join(devices), model_maps=every,
        stability=pd.DataFrame(stability_rows, columns=STABILITY_COLUMNS),
        run_importance=run_importance, mean_model_importance=mean_importance,
        attribution_params=settings,
        ig_convergence=pd.DataFrame([row for r in results for row in r.ig_convergence],
                                    columns=IG_CONVERGENCE_COLUMNS),
    )


def run_ensemble(
    dataset: TimeseriesDataset,
    config: EnsembleConfig,
    checkpoint_dir: str | Path,
    progress: bool = True,
) -> EnsembleResult:
    """Train seeded ensembles per fold and compute stabilized out-of-fold maps (Lewis et al. 2023, §2.4).

    For each fold ``k`` (1-based) of :func:`make_folds`:

    1. standardize each feature with the mean and SD of the fold's training samples (NaN → 0);
    2. split the training subjects into fitting and validation parts (stratified, seeded by
       ``random_seed`` and ``k``; the same for all models of the fold);
    3. for ``m`` in ``0..n_models-1`` with seed :func:`model_seed` ``(random_seed, k, m)``: load
       ``checkpoint_dir/fold-{k}/model-{seed}.pt`` if it exists with a matching JSON sidecar,
       else train with Adam and early stopping (:func:`xaibids.learning.training.train_model`)
       and checkpoint it atomically -- a rerun after an interruption only trains what is missing;
    4. stream the fold's test samples through all models (:func:`attribute_fold`): attribution
       of the true class and stabilization into one map per sample;
    5. score each model and the ensemble (mean of the models' softmax outputs) on the test set.

    The same steps are available one by one -- :func:`train_fold_chunk` (step 3 for some of a
    fold's models), :func:`attribute_trained_fold` (steps 4-5 of a fold) and
    :func:`merge_fold_results` -- for running them as separate jobs
    (:func:`xaibids.workflows.group.run_group_ensemble`); this function is made of them, so
    both ways give equal results.

    Parameters
    ----------
    dataset : TimeseriesDataset
        Samples and labels (:func:`xaibids.learning.dataset.assemble_dataset`).
    config : EnsembleConfig
        Settings.
    checkpoint_dir : str or Path
        Folder of the model checkpoints (created when missing).
    progress : bool, default=True
        Show tqdm bars over folds x models (training) and attribution batches.

    Returns
    -------
    EnsembleResult
    """
    _check_inputs(dataset, config, "run_ensemble")
    device = _prepare_device(config.device)
    checkpoint_dir = Path(checkpoint_dir)
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    folds = ensemble_folds(dataset, config)
    data_hash = dataset_hash(dataset)
    results: list[FoldResult] = []
    n_trained = n_reused = 0
    batches = sum(-(-len(test) // config.attribution_batch_size) for _, test in folds)
    train_bar = tqdm(total=len(folds) * config.n_models, desc="Training", unit="model",
                     disable=not progress, position=0, leave=True)
    attr_bar = tqdm(total=batches, desc="Attributing", unit="batch",
                    disable=not progress, position=1, leave=True)
    try:
        for k in range(1, len(folds) + 1):
            plan = _plan_fold(dataset, config, folds, k, data_hash)
            models = []
            obtained = _obtain_models(plan, dataset, config, checkpoint_dir,
                                      range(config.n_models), device,
                                      on_model=lambda: train_bar.update(1))
            for m, (state, _, trained, _) in enumerate(obtained):
                n_trained += int(trained)
                n_reused += int(not trained)
                models.append(_build_trained(config, dataset, state, plan.seeds[m]).to(device).eval())
            results.append(_attribute_plan(dataset, config, plan, models, device, progress_bar=attr_bar))
            del models
    finally:
        train_bar.close()
        attr_bar.close()
    return merge_fold_results(dataset, config, results, n_trained=n_trained, n_reused=n_reused)
