"""Seeded ensembles per cross-validation fold with stabilized, out-of-fold attributions.

Lewis et al. 2023, §2.4 (figure 3): in every fold of a cross-validation, many models of one architecture
are trained from different random initializations; every *test* sample of the fold is explained
by every model of the fold (so no map comes from a model that saw the sample), and the maps of a
sample are reduced to one stable map (:func:`xaibids.attribution.stabilize.stabilize`).

Memory does not grow with the number of subjects: a fold's test samples are streamed in batches
of ``attribution_batch_size`` through all models of the fold and each batch is stabilized before
the next one starts, so only ``batch x n_models`` raw maps exist at a time. The stability of
the maps across seeds (mean pairwise correlation of the models' maps of a sample, and split-half
correlation of two disjoint half-ensembles' stabilized maps) and each model's feature importance
(for the permutation test of Gotsopoulos et al. 2018, §2.9) are computed from the same batches, as streaming
statistics of ``O(n_samples + n_models x n_features)`` memory.

Several IG baselines (Strock et al. 2025, Fig 7) give one map per baseline, keyed ``igZero``, ``igMean``,
... (:func:`xaibids.attribution.registry.map_keys`); :func:`permutation_test` trains
label-shuffled ensembles for the permutation-based reproducibility of Gotsopoulos et al. 2018, §2.9.

The package, in the order of a run: :mod:`~.config` (the settings), :mod:`~.folds` (folds, seeds
and each fold's plan), :mod:`~.fitting` (training and checkpoints), :mod:`~.maps` (streamed,
stabilized attribution of a fold), :mod:`~.result` (folds merged; :func:`run_ensemble`),
:mod:`~.size` (``--n-models auto``) and :mod:`~.permutation` (Gotsopoulos et al. 2018's
permutation test). Everything callers use is importable from here.
"""

from xaibids.learning.ensemble.config import (
    AUTO_STEPS,
    BATCHED_GROUP_SIZE,
    BATCHED_TRAINING,
    DEVICES,
    EnsembleConfig,
    attribution_settings,
    config_to_dict,
    method_params,
    resolve_device,
    uses_batched_training,
)
from xaibids.learning.ensemble.fitting import load_fold_models, train_fold_chunk
from xaibids.learning.ensemble.folds import dataset_hash, ensemble_folds, make_folds, model_seed
from xaibids.learning.ensemble.maps import (
    IG_CALIBRATION_SAMPLES,
    RELEASE_EVERY_MODELS,
    FoldResult,
    attribute_fold,
    attribute_trained_fold,
    release_free_heap,
)
from xaibids.learning.ensemble.permutation import PermutationResult, permutation_test
from xaibids.learning.ensemble.result import (
    IG_CONVERGENCE_COLUMNS,
    STABILITY_COLUMNS,
    EnsembleResult,
    fold_method_params,
    merge_fold_results,
    run_ensemble,
)
from xaibids.learning.ensemble.size import (
    ENSEMBLE_AGREEMENTS,
    ENSEMBLE_SIZE_COLUMNS,
    choose_ensemble_size,
)

__all__ = [
    "AUTO_STEPS", "BATCHED_GROUP_SIZE", "BATCHED_TRAINING", "DEVICES", "ENSEMBLE_AGREEMENTS",
    "ENSEMBLE_SIZE_COLUMNS", "IG_CALIBRATION_SAMPLES", "IG_CONVERGENCE_COLUMNS",
    "RELEASE_EVERY_MODELS", "STABILITY_COLUMNS", "EnsembleConfig", "EnsembleResult", "FoldResult",
    "PermutationResult", "attribute_fold", "attribute_trained_fold", "attribution_settings",
    "choose_ensemble_size", "config_to_dict", "dataset_hash", "ensemble_folds",
    "fold_method_params", "load_fold_models", "make_folds", "merge_fold_results",
    "method_params", "model_seed", "permutation_test", "release_free_heap", "resolve_device",
    "run_ensemble", "train_fold_chunk", "uses_batched_training",
]
