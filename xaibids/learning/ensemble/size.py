"""``--n-models auto``: the ensemble size after which more seeds stop changing the maps.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from xaibids.attribution.ig import make_baseline
from xaibids.attribution.reliability import (
    pearson_per_sample,
)
from xaibids.learning.dataset import TimeseriesDataset
from xaibids.learning.ensemble.config import AUTO_STEPS, EnsembleConfig, method_params
from xaibids.learning.ensemble.fitting import _build_trained, _obtain_models
from xaibids.learning.ensemble.folds import (
    _check_inputs, dataset_hash, _plan_fold, _prepare_device, ensemble_folds,
)
from xaibids.learning.ensemble.maps import _converged_steps, attribute_fold

LOGGER = logging.getLogger("xaibids")

#: Successive doublings whose maps must agree before :func:`choose_ensemble_size` stops.
ENSEMBLE_AGREEMENTS = 2
#: Columns of :func:`choose_ensemble_size`'s table.
ENSEMBLE_SIZE_COLUMNS = ["n_models", "compared_with", "compared", "correlation", "n_samples",
                         "chosen"]


def choose_ensemble_size(
    dataset: TimeseriesDataset,
    config: EnsembleConfig,
    checkpoint_dir: str | Path,
    threshold: float = 0.95,
    start: int = 2,
    calibration_samples: int = 64,
) -> tuple[int, pd.DataFrame]:
    """``--n-models auto``: the ensemble size after which more seeds stop changing the maps.

    On fold 1, ensembles of ``start``, ``2 start``, ``4 start``, ... models (at most
    ``config.n_models``) are trained -- as the group level trains them, into the same
    checkpoints, so the main run reuses them -- and the stabilized maps of the first
    ``calibration_samples`` test subjects are computed with each (the first attribution method
    and baseline of ``config``). The size ``n`` is chosen when the maps of ``n`` and ``2 n``
    models, and those of ``2 n`` and ``4 n`` models, correlate at ``threshold`` or more (mean
    over subjects of the Pearson correlation of their maps), i.e. when doubling the ensemble
    twice no longer changes the stabilized maps; else ``config.n_models``. One agreement is not
    enough: the smaller ensemble is half of the larger one, so two small ensembles can agree by
    chance when their first models dominate the mean (measured on ``rnn-ei`` at the UK Biobank
    shape, ``docs/benchmarks.md``: r = 0.98 between 2 and 4 models, then 0.82 between 4 and 8).
    Lewis et al. 2023 (§2.4) stabilized over 300 seeds; this measures how many a given dataset needs.
    Hand-written: no library sizes seed ensembles by map convergence.

    With ``config.stabilize == "closest"`` the maps compared are the ensemble's **mean** maps,
    the target the ``closest`` rule selects against (Lewis et al. 2023, §2.4). The selected map is one
    model's map, and each added seed is the closest with a probability of about one in the
    ensemble size, so the selected maps of ``n`` and ``2 n`` models need not converge however
    many seeds are added (``docs/benchmarks.md``: r = 0.69-0.97 between successive sizes);
    once the mean map no longer changes, neither does what the selection aims at. The table's
    ``compared`` column names the maps compared.

    Returns
    -------
    n_models : int
    table : pandas.DataFrame
        Per comparison: ``n_models``, ``compared_with`` (the doubled size), ``compared`` (the
        stabilization rule of the maps compared), ``correlation``, ``n_samples`` and ``chosen``.
    """
    _check_inputs(dataset, config, "choose_ensemble_size")
    if not 0 < threshold < 1:
        raise ValueError(f"The ensemble stability threshold must be in (0, 1), got {threshold!r}.")
    if isinstance(start, bool) or not isinstance(start, int) or not 1 <= start <= config.n_models:
        raise ValueError(f"choose_ensemble_size start must be from 1 to {config.n_models}, "
                         f"got {start!r}.")
    device = _prepare_device(config.device)
    checkpoint_dir = Path(checkpoint_dir)
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    plan = _plan_fold(dataset, config, ensemble_folds(dataset, config), 1, dataset_hash(dataset))
    n_cal = min(calibration_samples, len(plan.test_idx))
    X_cal, y_cal = plan.X_test[:n_cal], dataset.y[plan.test_idx][:n_cal]
    method, base = config.attribution[0], config.baselines[0]
    baseline = make_baseline(base, plan.X_train, seed=plan.split_seed)
    params = {method: method_params(config)[method]}
    compared = "mean" if config.stabilize == "closest" else config.stabilize
    sizes = []
    while not sizes or sizes[-1] < config.n_models:
        sizes.append(min(config.n_models, start * 2 ** len(sizes)))
    rows, previous, models = [], None, []
    for n in sizes:
        new = range(len(models), n)
        for m, (state, *_) in zip(new, _obtain_models(plan, dataset, config, checkpoint_dir,
                                                      new, device)):
            models.append(_build_trained(config, dataset, state, plan.seeds[m]).to(device).eval())
        if params.get("ig", {}).get("n_steps") == AUTO_STEPS:
            params["ig"]["n_steps"] = _converged_steps(config, plan, models[0], y_cal,
                                                       {base: baseline}, params["ig"], device)[0]
        maps = np.concatenate([batch["maps"][method] for batch in attribute_fold(
            models, X_cal, y_cal, methods=(method,), baseline=baseline, how=compared,
            positive=config.positive, batch_size=config.attribution_batch_size, device=device,
            method_params=params, stability=False)])
        if previous is not None:
            r = float(np.nanmean(pearson_per_sample(previous[1], maps)))
            rows.append({"n_models": previous[0], "compared_with": n, "compared": compared,
                         "correlation": r, "n_samples": n_cal, "chosen": False})
            LOGGER.info("Ensemble size: %s maps of %d and %d models correlate at r = %.4f "
                        "(threshold %.3f).", compared, previous[0], n, r, threshold)
            stable = [row["correlation"] >= threshold for row in rows[-ENSEMBLE_AGREEMENTS:]]
            if len(stable) == ENSEMBLE_AGREEMENTS and all(stable):
                rows[-ENSEMBLE_AGREEMENTS]["chosen"] = True
                return (rows[-ENSEMBLE_AGREEMENTS]["n_models"],
                        pd.DataFrame(rows, columns=ENSEMBLE_SIZE_COLUMNS))
        previous = (n, maps)
    LOGGER.warning("Ensemble size: no two doublings in a row gave %s maps that agree at r >= "
                   "%.3f; using the maximum, %d models.", compared, threshold, config.n_models)
    rows.append({"n_models": config.n_models, "compared_with": None, "compared": compared,
                 "correlation": None, "n_samples": n_cal, "chosen": True})
    return config.n_models, pd.DataFrame(rows, columns=ENSEMBLE_SIZE_COLUMNS)
