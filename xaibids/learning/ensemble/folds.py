"""Cross-validation folds, the seeds of the models, and each fold's plan: standardization, inner
validation split, and the fingerprint that tells a checkpoint is stale.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass

import numpy as np
import torch

from xaibids.learning import training
from xaibids.learning.dataset import TimeseriesDataset
from xaibids.learning.ensemble.config import (
    _TRAINING_FIELDS, EnsembleConfig, resolve_device, uses_batched_training,
)

LOGGER = logging.getLogger("xaibids")

def model_seed(random_seed: int, fold: int, index: int) -> int:
    """Seed of model ``index`` (0-based) in fold ``fold`` (1-based), derived from ``random_seed``.

    Uses :class:`numpy.random.SeedSequence`, so seeds of different folds, models and random seeds
    are distinct for all practical purposes. Returns an int below 2**31.
    """
    state = np.random.SeedSequence([int(random_seed), int(fold), int(index)]).generate_state(1)
    return int(state[0] >> 1)


def make_folds(y, groups, n_folds, seed, classes=None) -> list[tuple[np.ndarray, np.ndarray]]:
    """Cross-validation folds, stratified by class and, with groups, never splitting a group.

    Parameters
    ----------
    y : array-like of shape (n_samples,)
        Class index of each sample.
    groups : array-like of shape (n_samples,) or None
        Group of each sample (``--cv-group`` values such as sites, or subjects with several
        runs). With groups, :class:`sklearn.model_selection.StratifiedGroupKFold` is used (falling
        back to :class:`~sklearn.model_selection.GroupKFold` if it leaves a test fold empty): no
        group is in both the training and the test set of a fold. Without,
        :class:`~sklearn.model_selection.StratifiedKFold`.
    n_folds : int
        Number of folds (>= 2).
    seed : int
        Shuffling seed.
    classes : list of str, optional
        Class labels, only to name classes in error messages.

    Returns
    -------
    list of (train_index, test_index)
        Sorted integer indices; every sample is in exactly one test set.
    """
    from sklearn.model_selection import GroupKFold, StratifiedGroupKFold, StratifiedKFold

    y = np.asarray(y)
    if y.ndim != 1 or len(y) == 0:
        raise ValueError(f"make_folds needs a non-empty 1-D array of labels, got shape {y.shape}.")
    if isinstance(n_folds, bool) or not isinstance(n_folds, (int, np.integer)) or n_folds < 2:
        raise ValueError(f"The number of folds must be an integer >= 2, got {n_folds!r}.")
    labels, counts = np.unique(y, return_counts=True)
    if len(labels) < 2:
        raise ValueError("make_folds needs at least two classes among the samples.")

    def name(label):
        return repr(classes[int(label)]) if classes is not None else str(int(label))

    if groups is None:
        small = [(name(lab), int(c)) for lab, c in zip(labels, counts) if c < n_folds]
        if small:
            lab, c = small[0]
            raise ValueError(
                f"Class {lab} has only {c} sample(s), fewer than the {n_folds} folds; "
                f"lower --n-folds to at most {c} or add subjects of that class."
            )
        splitter = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed)
        splits = list(splitter.split(np.zeros(len(y)), y))
    else:
        groups = np.asarray(groups, dtype=object)
        if groups.shape != y.shape:
            raise ValueError(f"make_folds got {len(y)} labels but groups of shape {groups.shape}.")
        _, group_codes = np.unique(groups.astype(str), return_inverse=True)
        n_groups = int(group_codes.max()) + 1
        if n_groups < n_folds:
            raise ValueError(
                f"Only {n_groups} distinct --cv-group value(s) (or subjects) for {n_folds} folds; "
                f"lower --n-folds to at most {n_groups}."
            )
        for lab in labels:
            n_lab_groups = len(np.unique(group_codes[y == lab]))
            if n_lab_groups < 2:
                raise ValueError(
                    f"All samples of class {name(lab)} are in one --cv-group group (or one subject), "
                    "so some fold would train without that class; use a different --cv-group or none."
                )
        splitter = StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=seed)
        splits = list(splitter.split(np.zeros(len(y)), y, group_codes))
        if any(len(test) == 0 for _, test in splits):
            splits = list(GroupKFold(n_splits=n_folds).split(np.zeros(len(y)), y, group_codes))
    folds = [(np.sort(train).astype(int), np.sort(test).astype(int)) for train, test in splits]
    for k, (train, _) in enumerate(folds, start=1):
        missing = sorted(set(labels.tolist()) - set(np.unique(y[train]).tolist()))
        if missing:
            raise ValueError(
                f"Fold {k} has no training sample of class {name(missing[0])}; lower --n-folds "
                "or use a --cv-group with that class in more groups."
            )
    return folds


def _fold_groups(dataset: TimeseriesDataset):
    """Groups for the folds: ``--cv-group`` values, else subjects when a subject has several runs."""
    if dataset.groups is not None:
        return dataset.groups
    subjects = np.asarray(dataset.subjects, dtype=object)
    if len(np.unique(subjects)) < len(subjects):
        LOGGER.info("Some subjects have several samples (runs or trials); folds keep a "
                    "subject's samples together.")
        return subjects
    return None


def dataset_hash(dataset: TimeseriesDataset) -> str:
    digest = hashlib.sha256()
    digest.update(np.ascontiguousarray(dataset.X).tobytes())
    digest.update(np.ascontiguousarray(dataset.y).tobytes())
    digest.update(json.dumps([dataset.classes, dataset.feature_names, list(dataset.subjects)]).encode())
    return digest.hexdigest()


def _fingerprint(config: EnsembleConfig, data_hash: str, train_idx, fit_idx) -> str:
    payload = {name: getattr(config, name) for name in _TRAINING_FIELDS}
    if uses_batched_training(config, resolve_device(config.device)):
        payload["batched_training"] = True  # absent otherwise: older checkpoints stay valid
    payload.update(data=data_hash, train=np.asarray(train_idx).tolist(), fit=np.asarray(fit_idx).tolist())
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


@dataclass
class _FoldPlan:
    """What every step of one fold needs: indices, standardized data, inner split, seeds."""

    fold: int
    train_idx: np.ndarray
    test_idx: np.ndarray
    X_train: np.ndarray
    X_test: np.ndarray
    split_seed: int
    fit_pos: np.ndarray
    val_pos: np.ndarray
    fingerprint: str
    seeds: list[int]


def ensemble_folds(dataset: TimeseriesDataset, config: EnsembleConfig) -> list[tuple[np.ndarray, np.ndarray]]:
    """The cross-validation folds :func:`run_ensemble` uses for ``dataset`` and ``config``."""
    return make_folds(dataset.y, _fold_groups(dataset), config.n_folds, config.random_seed, dataset.classes)


def _check_inputs(dataset, config, caller: str) -> None:
    if not isinstance(dataset, TimeseriesDataset):
        raise TypeError(f"{caller} needs a TimeseriesDataset (see assemble_dataset).")
    if not isinstance(config, EnsembleConfig):
        raise TypeError(f"{caller} needs an EnsembleConfig.")


def _check_fold(fold, n_folds: int) -> int:
    if isinstance(fold, bool) or not isinstance(fold, (int, np.integer)) or not 1 <= fold <= n_folds:
        raise ValueError(f"fold must be an integer from 1 to {n_folds}, got {fold!r}.")
    return int(fold)


def _prepare_device(name: str) -> torch.device:
    device = resolve_device(name)
    if device.type == "cuda":
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # deterministic cuBLAS
    return device


def _plan_fold(dataset: TimeseriesDataset, config: EnsembleConfig, folds, fold: int, data_hash: str) -> _FoldPlan:
    """Standardization, inner split, fingerprint and seeds of fold ``fold`` (1-based)."""
    X, y = dataset.X, dataset.y
    train_idx, test_idx = folds[fold - 1]
    # volumes (a grid) are z-scored per image by the participant step; one scale for all voxels
    mean, std = training.fit_standardizer(X[train_idx], per_feature=dataset.grid is None)
    X_train = training.apply_standardizer(X[train_idx], mean, std)
    X_test = training.apply_standardizer(X[test_idx], mean, std)
    split_seed = int(np.random.SeedSequence([config.random_seed, fold]).generate_state(1)[0] >> 1)
    fit_pos, val_pos = training.inner_split(
        y[train_idx], np.asarray(dataset.subjects, dtype=object)[train_idx],
        config.val_fraction, split_seed,
    )
    return _FoldPlan(
        fold=fold, train_idx=train_idx, test_idx=test_idx, X_train=X_train, X_test=X_test,
        split_seed=split_seed, fit_pos=fit_pos, val_pos=val_pos,
        fingerprint=_fingerprint(config, data_hash, train_idx, fit_pos),
        seeds=[model_seed(config.random_seed, fold, m) for m in range(config.n_models)],
    )
