"""The group level's default ensemble on a dataset, as the benchmark scripts run it.

``xaibids.config.Config`` through ``xaibids.levels.group.ensemble_config`` (the group level's
path from options to the ensemble), with only the model, folds, models per fold, master seed
and fold grouping set; then the verdict on the out-of-fold predictions and the group
importance table with the default selection rule, withheld when the verdict says "not above
chance", as ``xaibids … group`` does.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass


@dataclass
class DefaultRun:
    """What :func:`run_default_ensemble` returns."""

    result: object  # xaibids.learning.ensemble.EnsembleResult
    verdict: object  # xaibids.stats.verdict.Verdict
    table: object  # pandas.DataFrame: the IG importance table with ``selected``
    seconds: float


def run_default_ensemble(dataset, model: str, n_folds: int, n_models: int, seed: int,
                         cv_group: str = "", sparsity: float | None = None) -> DefaultRun:
    from xaibids.config import Config
    from xaibids.learning.ensemble import run_ensemble
    from xaibids.levels.group import ensemble_config
    from xaibids.stats import SelectionRule, group_importance
    from xaibids.stats.verdict import out_of_fold_verdict

    config = Config()
    config.learning.model, config.learning.n_folds = model, n_folds
    config.learning.n_models, config.seeds.random_seed = n_models, seed
    config.learning.cv_group = cv_group
    if sparsity is not None:
        config.learning.sparsity = sparsity
    ens = ensemble_config(config, dataset)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        result = run_ensemble(dataset, ens, tmp, progress=False)
    verdict = out_of_fold_verdict(result.map_info, len(dataset.classes), random_state=seed)
    table = group_importance(result.maps["ig"], dataset.y, dataset.classes,
                             dataset.feature_names, n_boot=0,
                             selection=SelectionRule(config.statistics.selection,
                                                     config.statistics.selection_alpha),
                             withheld=None if verdict.above_chance else "not above chance",
                             selection_importance=result.mean_model_importance["ig"])
    return DefaultRun(result, verdict, table, time.perf_counter() - start)
