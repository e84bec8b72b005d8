"""The models of a fold: trained (one by one or batched) and checkpointed, or loaded from their
checkpoints.
"""

from __future__ import annotations

import hashlib
import logging
import time
from pathlib import Path

import numpy as np
import torch

from xaibids.attribution.ig import make_baseline
from xaibids.learning import training
from xaibids.learning.dataset import TimeseriesDataset
from xaibids.models import build_model
from xaibids.learning.ensemble.config import (
    BATCHED_GROUP_SIZE, EnsembleConfig, uses_batched_training,
)
from xaibids.learning.ensemble.folds import (
    _check_fold, _check_inputs, dataset_hash, _FoldPlan, _plan_fold, _prepare_device,
    ensemble_folds,
)

LOGGER = logging.getLogger("xaibids")

def _obtain_model(plan: _FoldPlan, dataset: TimeseriesDataset, config: EnsembleConfig,
                  checkpoint_dir: Path, index: int, device: torch.device) -> tuple[dict, dict, bool]:
    """Model ``index`` of the fold from its checkpoint, else trained and checkpointed.

    Returns ``(state_dict, info, trained)``.
    """
    seed = plan.seeds[index]
    pt_path, json_path = training.checkpoint_paths(checkpoint_dir, plan.fold, seed)
    loaded = training.load_checkpoint(pt_path, json_path, plan.fingerprint)
    if loaded is not None:
        return loaded[0], loaded[1], False
    y_train = dataset.y[plan.train_idx]
    state, info = training.train_model(
        config.model, config.model_kwargs,
        plan.X_train[plan.fit_pos], y_train[plan.fit_pos],
        plan.X_train[plan.val_pos], y_train[plan.val_pos],
        n_classes=len(dataset.classes), seed=seed, epochs=config.epochs,
        batch_size=config.batch_size, learning_rate=config.learning_rate,
        weight_decay=config.weight_decay, patience=config.patience, device=device,
    )
    info.update(fold=plan.fold, seed=seed, model=config.model, fingerprint=plan.fingerprint)
    training.save_checkpoint(state, info, pt_path, json_path)
    return state, info, True


def _obtain_models(plan: _FoldPlan, dataset: TimeseriesDataset, config: EnsembleConfig,
                   checkpoint_dir: Path, indices, device: torch.device, on_model=None
                   ) -> list[tuple[dict, dict, bool, float]]:
    """:func:`_obtain_model` for each of ``indices``, with the seconds each took.

    With batched training the models without a checkpoint are first trained together (groups
    of :data:`BATCHED_GROUP_SIZE`), each then checkpointed where one-by-one training would put
    it; a group's time is shared equally by its models. ``on_model()`` is called once per model
    as soon as it is there (a progress bar).
    """
    on_model = on_model or (lambda: None)
    indices = [int(m) for m in indices]
    trained_now: dict[int, tuple[dict, dict, float]] = {}
    if uses_batched_training(config, device):
        # the checkpoints found are kept: the loop below then does not read them again
        found = {m: training.load_checkpoint(
            *training.checkpoint_paths(checkpoint_dir, plan.fold, plan.seeds[m]),
            plan.fingerprint) for m in indices}
        missing = [m for m in indices if found[m] is None]
        y_train = dataset.y[plan.train_idx]
        for start in range(0, len(missing), BATCHED_GROUP_SIZE):
            group = missing[start:start + BATCHED_GROUP_SIZE]
            if len(group) < 2:
                break  # one model: the one-by-one path below
            start_time = time.perf_counter()
            results = training.train_models_batched(
                config.model, config.model_kwargs,
                plan.X_train[plan.fit_pos], y_train[plan.fit_pos],
                plan.X_train[plan.val_pos], y_train[plan.val_pos],
                n_classes=len(dataset.classes), seeds=[plan.seeds[m] for m in group],
                epochs=config.epochs, batch_size=config.batch_size,
                learning_rate=config.learning_rate, weight_decay=config.weight_decay,
                patience=config.patience, device=device,
            )
            for m, (state, info) in zip(group, results):
                info.update(fold=plan.fold, seed=plan.seeds[m], model=config.model,
                            fingerprint=plan.fingerprint, batched=len(group))
                training.save_checkpoint(
                    state, info, *training.checkpoint_paths(checkpoint_dir, plan.fold, plan.seeds[m]))
            share = (time.perf_counter() - start_time) / len(group)
            for m, (state, info) in zip(group, results):
                trained_now[m] = (state, info, share)
                on_model()
        reused = {m: found[m] for m in indices if found[m] is not None}
    else:
        reused = {}
    out = []
    for m in indices:
        if m in trained_now:
            state, info, seconds = trained_now[m]
            out.append((state, info, True, seconds))
            continue
        if m in reused:
            out.append((*reused[m], False, 0.0))
            on_model()
            continue
        start_time = time.perf_counter()
        state, info, trained = _obtain_model(plan, dataset, config, checkpoint_dir, m, device)
        out.append((state, info, trained, time.perf_counter() - start_time))
        on_model()
    return out


def _load_state(plan: _FoldPlan, checkpoint_dir: Path, index: int, caller: str) -> dict:
    """The checkpointed weights of model ``index`` of the fold; an error when missing or stale."""
    seed = plan.seeds[index]
    pt_path, json_path = training.checkpoint_paths(checkpoint_dir, plan.fold, seed)
    loaded = training.load_checkpoint(pt_path, json_path, plan.fingerprint)
    if loaded is None:
        raise FileNotFoundError(
            f"No up-to-date checkpoint of model {index} (seed {seed}) of fold {plan.fold} in "
            f"{checkpoint_dir}; {caller} with the same dataset and settings first."
        )
    return loaded[0]


def _build_trained(config: EnsembleConfig, dataset: TimeseriesDataset, state: dict, seed: int) -> torch.nn.Module:
    """The architecture of ``config`` with the trained weights ``state`` (on the CPU)."""
    _, T, F = dataset.X.shape
    torch.manual_seed(seed)
    model = build_model(config.model, n_features=F, n_timepoints=T, n_classes=len(dataset.classes),
                        **config.model_kwargs)
    model.load_state_dict(state)
    return model


def _state_digest(state: dict) -> str:
    """SHA-256 of a state dict's names, shapes, dtypes and values."""
    digest = hashlib.sha256()
    for name in sorted(state):
        tensor = state[name].detach().cpu().contiguous()
        digest.update(f"{name}:{tuple(tensor.shape)}:{tensor.dtype}".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()


def train_fold_chunk(
    dataset: TimeseriesDataset,
    config: EnsembleConfig,
    checkpoint_dir: str | Path,
    fold: int,
    indices=None,
) -> list[dict]:
    """Train models ``indices`` of fold ``fold`` into ``checkpoint_dir``, as :func:`run_ensemble` would.

    Step 3 of :func:`run_ensemble` for a subset of one fold's models, sharing its code: the same
    seeds, inner split, checkpoint paths and fingerprints, so :func:`run_ensemble`,
    :func:`attribute_trained_fold` and :func:`load_fold_models` reuse these checkpoints (and
    this function reuses theirs). Independent chunks (other folds, other indices) can run at
    the same time in other processes or on other machines sharing ``checkpoint_dir``
    (:func:`xaibids.workflows.group.init_group_training_wf`).

    Parameters
    ----------
    dataset, config, checkpoint_dir
        As for :func:`run_ensemble`.
    fold : int
        1-based fold number.
    indices : iterable of int, optional
        0-based model indices (``0 .. config.n_models - 1``); all of the fold's models when None.

    Returns
    -------
    list of dict
        Per model, in the order of ``indices``: ``fold``, ``index``, ``seed``, ``trained`` (False:
        an up-to-date checkpoint was found), ``seconds``, ``checkpoint`` (path of the weights),
        ``fingerprint``, ``weights_sha256`` (of the weights' values), ``val_loss`` and
        ``best_epoch``.
    """
    _check_inputs(dataset, config, "train_fold_chunk")
    device = _prepare_device(config.device)
    checkpoint_dir = Path(checkpoint_dir)
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    folds = ensemble_folds(dataset, config)
    fold = _check_fold(fold, len(folds))
    indices = list(range(config.n_models)) if indices is None else list(indices)
    bad = [m for m in indices if isinstance(m, bool) or not isinstance(m, (int, np.integer))
           or not 0 <= m < config.n_models]
    if bad or len(set(indices)) != len(indices):
        raise ValueError(f"train_fold_chunk indices must be distinct integers from 0 to "
                         f"{config.n_models - 1}, got {indices!r}.")
    plan = _plan_fold(dataset, config, folds, fold, dataset_hash(dataset))
    records = []
    obtained = _obtain_models(plan, dataset, config, checkpoint_dir, indices, device)
    for m, (state, info, trained, seconds) in zip(map(int, indices), obtained):
        records.append({
            "fold": fold, "index": m, "seed": plan.seeds[m], "trained": trained,
            "seconds": round(seconds, 3),
            "checkpoint": str(training.checkpoint_paths(checkpoint_dir, fold, plan.seeds[m])[0]),
            "fingerprint": plan.fingerprint, "weights_sha256": _state_digest(state),
            "val_loss": info.get("val_loss"), "best_epoch": info.get("best_epoch"),
        })
        if trained:
            LOGGER.info("Fold %d/%d, model %d/%d (seed %d): trained in %.1f s (best epoch %s, "
                        "validation loss %.4f).", fold, len(folds), m + 1, config.n_models,
                        plan.seeds[m], seconds, info.get("best_epoch"), info.get("val_loss", float("nan")))
        else:
            LOGGER.info("Fold %d/%d, model %d/%d (seed %d): reused its checkpoint.",
                        fold, len(folds), m + 1, config.n_models, plan.seeds[m])
    return records


def load_fold_models(
    dataset: TimeseriesDataset,
    config: EnsembleConfig,
    checkpoint_dir: str | Path,
    fold: int = 1,
) -> tuple[list[torch.nn.Module], np.ndarray, np.ndarray, dict]:
    """The trained models of one fold, from the checkpoints :func:`run_ensemble` wrote.

    For the checks that need models rather than maps (:func:`xaibids.attribution.reliability.
    randomization_check`, :func:`~xaibids.attribution.reliability.faithfulness`).

    Parameters
    ----------
    dataset, config, checkpoint_dir
        As given to :func:`run_ensemble` (which must have run).
    fold : int, default=1
        1-based fold number.

    Returns
    -------
    models : list of torch.nn.Module
        The fold's models in ``eval()`` mode on the CPU, in model-index order.
    X_test : ndarray of shape (n_test, n_timepoints, n_features)
        The fold's test samples, standardized as for attribution.
    y_test : ndarray of shape (n_test,)
    baselines : dict of str to float or torch.Tensor
        The fold's baseline values by name (``config.baselines``).
    """
    folds = ensemble_folds(dataset, config)
    fold = _check_fold(fold, len(folds))
    plan = _plan_fold(dataset, config, folds, fold, dataset_hash(dataset))
    models = [
        _build_trained(config, dataset, _load_state(plan, Path(checkpoint_dir), m, "run run_ensemble"),
                       plan.seeds[m]).eval()
        for m in range(config.n_models)
    ]
    baselines = {name: make_baseline(name, plan.X_train, seed=plan.split_seed) for name in config.baselines}
    return models, plan.X_test, dataset.y[plan.test_idx], baselines
