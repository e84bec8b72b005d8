"""Datasets and seeded, cross-validated ensembles (Lewis et al. 2023, §2.4)."""

from xaibids.learning.dataset import TimeseriesDataset, assemble_dataset
from xaibids.learning.ensemble import (
    EnsembleConfig,
    EnsembleResult,
    attribute_fold,
    make_folds,
    model_seed,
    run_ensemble,
)

__all__ = [
    "EnsembleConfig",
    "EnsembleResult",
    "TimeseriesDataset",
    "assemble_dataset",
    "attribute_fold",
    "make_folds",
    "model_seed",
    "run_ensemble",
]
