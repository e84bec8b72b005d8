"""Seeded ensembles per cross-validation fold with stabilized, out-of-fold attributions.

Seed 000, §2.4 (figure 3): in every fold of a cross-validation, many models of one architecture
are trained from different random initializations; every *test* sample of the fold is explained
by every model of the fold (so no map comes from a model that saw the sample), and the maps of a
sample are reduced to one stable map (:func:`xaibids.attribution.stabilize.stabilize`).

Memory does not grow with the number of subjects: a fold's test samples are streamed in batches
of ``attribution_batch_size`` through all models of the fold and each batch is stabilized before
the next one starts, so only ``batch x n_models`` raw maps exist at a time.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from xaibids.attribution.ig import BASELINES, make_baseline
from xaibids.attribution.registry import METHODS, attribute
from xaibids.attribution.stabilize import POSITIVE_METHODS, STABILIZE_METHODS, stabilize
from xaibids.learning import training
from xaibids.learning.dataset import TimeseriesDataset
from xaibids.models import MODEL_NAMES, build_model

LOGGER = logging.getLogger("xaibids")

DEVICES = ("auto", "cpu", "cuda")

# Settings that change what a trained model is; a checkpoint made with other values is stale.
_TRAINING_FIELDS = (
    "model", "model_kwargs", "epochs", "batch_size", "learning_rate", "weight_decay",
    "patience", "val_fraction", "random_seed", "n_folds",
)


@dataclass
class EnsembleConfig:
    """Settings of the ensemble, its training and its attributions.

    Attributes
    ----------
    model : {"lstm-attn", "stdnn", "linear"}
        Architecture (:func:`xaibids.models.build_model`).
    n_folds : int
        Cross-validation folds (seed 000 uses 10).
    n_models : int
        Models (random seeds) per fold (seed 000 uses 300).
    epochs, batch_size, learning_rate, weight_decay, patience, val_fraction
        Adam training with early stopping on a stratified validation split of
        ``val_fraction`` of each fold's training subjects (0: no early stopping).
    device : {"auto", "cpu", "cuda"}
        ``auto`` uses CUDA when available.
    random_seed : int
        Seed everything derives from (folds, validation splits, model seeds).
    attribution : tuple of str
        Methods of :data:`xaibids.attribution.METHODS` (``"ig"``).
    ig_steps : int
        Integration points of IG.
    baseline : {"zero", "mean", "median", "random"}
        IG baseline (seed 000: zero; seed 001 compares the others), computed from the fold's
        standardized training data.
    stabilize : {"closest", "mean", "median", "none"}
        How the maps of a sample's models are reduced to one (seed 000, §2.4).
    positive : {"abs", "relu"}
        Applied to the stabilized map before it is normalized by its sum.
    attribution_batch_size : int
        Test samples streamed at once through all models of a fold.
    model_kwargs : dict
        Architecture options passed to :func:`~xaibids.models.build_model`.
    keep_model_maps : bool
        Also return every model's map of every sample (:attr:`EnsembleResult.model_maps`).
        Memory then grows with ``n_models x n_samples``: for tests and small studies only.
    """

    model: str = "stdnn"
    n_folds: int = 5
    n_models: int = 10
    epochs: int = 100
    batch_size: int = 32
    learning_rate: float = 1e-3
    weight_decay: float = 0.0
    patience: int = 10
    val_fraction: float = 0.2
    device: str = "auto"
    random_seed: int = 0
    attribution: tuple[str, ...] = ("ig",)
    ig_steps: int = 50
    baseline: str = "zero"
    stabilize: str = "closest"
    positive: str = "abs"
    attribution_batch_size: int = 16
    model_kwargs: dict = field(default_factory=dict)
    keep_model_maps: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.attribution, str):
            self.attribution = (self.attribution,)
        self.attribution = tuple(self.attribution)
        choices = (("model", MODEL_NAMES), ("device", DEVICES), ("baseline", BASELINES),
                   ("stabilize", STABILIZE_METHODS), ("positive", POSITIVE_METHODS))
        for name, allowed in choices:
            if getattr(self, name) not in allowed:
                raise ValueError(
                    f"EnsembleConfig.{name} must be one of {', '.join(allowed)}, got {getattr(self, name)!r}."
                )
        if not self.attribution:
            raise ValueError("EnsembleConfig.attribution needs at least one method.")
        unknown = [m for m in self.attribution if m not in METHODS]
        if unknown:
            raise ValueError(
                f"Unknown attribution method(s) {', '.join(map(repr, unknown))}; "
                f"available: {', '.join(sorted(METHODS))}."
            )
        if len(set(self.attribution)) != len(self.attribution):
            raise ValueError(f"EnsembleConfig.attribution lists a method twice: {self.attribution}.")
        for name, minimum in (("n_folds", 2), ("n_models", 1), ("epochs", 1), ("batch_size", 1),
                              ("patience", 1), ("ig_steps", 1), ("attribution_batch_size", 1),
                              ("random_seed", 0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
                raise ValueError(f"EnsembleConfig.{name} must be an integer >= {minimum}, got {value!r}.")
            setattr(self, name, int(value))
        if not (isinstance(self.learning_rate, (int, float)) and self.learning_rate > 0):
            raise ValueError(f"EnsembleConfig.learning_rate must be positive, got {self.learning_rate!r}.")
        if not (isinstance(self.weight_decay, (int, float)) and self.weight_decay >= 0):
            raise ValueError(f"EnsembleConfig.weight_decay must be >= 0, got {self.weight_decay!r}.")
        if not (isinstance(self.val_fraction, (int, float)) and 0 <= self.val_fraction < 1):
            raise ValueError(f"EnsembleConfig.val_fraction must be in [0, 1), got {self.val_fraction!r}.")
        if not isinstance(self.model_kwargs, dict):
            raise ValueError("EnsembleConfig.model_kwargs must be a dict of architecture options.")


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


def model_seed(random_seed: int, fold: int, index: int) -> int:
    """Seed of model ``index`` (0-based) in fold ``fold`` (1-based), derived from ``random_seed``.

    Uses :class:`numpy.random.SeedSequence`, so seeds of different folds, models and random seeds
    are distinct for all practical purposes. Returns an int below 2**31.
    """
    state = np.random.SeedSequence([int(random_seed), int(fold), int(index)]).generate_state(1)
    return int(state[0] >> 1)


def resolve_device(device: str) -> torch.device:
    """``auto`` → CUDA when available, else CPU; ``cuda`` without a GPU is an error."""
    if device not in DEVICES:
        raise ValueError(f"device must be one of {', '.join(DEVICES)}, got {device!r}.")
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda was requested but PyTorch finds no CUDA GPU; use --device cpu or auto.")
    return torch.device(device)


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
        LOGGER.info("Some subjects have several runs; folds keep the runs of a subject together.")
        return subjects
    return None


def _dataset_hash(dataset: TimeseriesDataset) -> str:
    digest = hashlib.sha256()
    digest.update(np.ascontiguousarray(dataset.X).tobytes())
    digest.update(np.ascontiguousarray(dataset.y).tobytes())
    digest.update(json.dumps([dataset.classes, dataset.feature_names, list(dataset.subjects)]).encode())
    return digest.hexdigest()


def _fingerprint(config: EnsembleConfig, data_hash: str, train_idx, fit_idx) -> str:
    payload = {name: getattr(config, name) for name in _TRAINING_FIELDS}
    payload.update(data=data_hash, train=np.asarray(train_idx).tolist(), fit=np.asarray(fit_idx).tolist())
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def _balanced_accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    recalls = [np.mean(y_pred[y_true == c] == c) for c in np.unique(y_true)]
    return float(np.mean(recalls))


def attribute_fold(
    models: list[torch.nn.Module],
    X_test: np.ndarray,
    y_test: np.ndarray,
    methods: tuple[str, ...] = ("ig",),
    baseline="zero",
    n_steps: int = 50,
    how: str = "closest",
    positive: str = "abs",
    batch_size: int = 16,
    device: str | torch.device = "cpu",
    progress_bar: tqdm | None = None,
    keep_model_maps: bool = False,
) -> Iterator[dict]:
    """Stream a fold's test samples through all its models and stabilize their maps.

    Seed 000, §2.4: every model's map of every test sample, then one stabilized map per
    sample. Only ``batch_size x len(models)`` raw maps per method are held at a time.

    Parameters
    ----------
    models : list of torch.nn.Module
        The fold's trained models (any mode; they are switched to ``eval()``).
    X_test : ndarray of shape (n_test, n_timepoints, n_features)
        Standardized test samples.
    y_test : ndarray of shape (n_test,)
        True classes (the attribution target, and the loss weighting the selection).
    methods : tuple of str
        Keys of :data:`xaibids.attribution.METHODS`.
    baseline : str, float or torch.Tensor
        IG baseline (see :func:`xaibids.attribution.ig.make_baseline`).
    n_steps : int
        IG integration points.
    how, positive : str
        As in :func:`xaibids.attribution.stabilize.stabilize`.
    batch_size : int
        Test samples per batch.
    device : str or torch.device
        Where the models run. On CUDA, cuDNN is disabled during this pass because it cannot
        back-propagate through an LSTM in ``eval()`` mode.
    progress_bar : tqdm, optional
        Updated by one per batch.
    keep_model_maps : bool, default=False
        Also yield every model's positive, sum-normalized map.

    Yields
    ------
    dict
        Per batch: ``start`` and ``stop`` (positions in ``X_test``), ``maps`` and
        ``single_model_maps`` (method → float32 ``(b, T, F)``), ``selected`` (method → list of
        model indices or None), ``losses`` (``(n_models, b)``) and ``probabilities``
        (``(n_models, b, n_classes)``); with ``keep_model_maps`` also ``model_maps``
        (method → float32 ``(n_models, b, T, F)``).
    """
    device = torch.device(device)
    if not models:
        raise ValueError("attribute_fold needs at least one model.")
    X_test, y_test = np.asarray(X_test), np.asarray(y_test)
    if X_test.ndim != 3 or y_test.shape != (len(X_test),):
        raise ValueError(
            f"attribute_fold needs X_test of shape (n, T, F) and y_test of shape (n,), got "
            f"{X_test.shape} and {y_test.shape}."
        )
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"attribute_fold batch_size must be a positive integer, got {batch_size!r}.")
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ValueError(f"Unknown attribution method(s) {unknown}; available: {', '.join(sorted(METHODS))}.")
    n_test = len(X_test)
    for model in models:
        model.to(device).eval()
    # cuDNN's RNN backward only runs in training mode; attributions need eval() (no dropout).
    cudnn_off = (torch.backends.cudnn.flags(enabled=False) if device.type == "cuda"
                 else contextlib.nullcontext())
    with cudnn_off:
        for start in range(0, n_test, batch_size):
            stop = min(start + batch_size, n_test)
            xb = torch.as_tensor(X_test[start:stop], dtype=torch.float32, device=device)
            yb = torch.as_tensor(y_test[start:stop], dtype=torch.int64, device=device)
            b = stop - start
            raw = {m: np.empty((len(models), b) + tuple(xb.shape[1:]), dtype=np.float32) for m in methods}
            losses = np.empty((len(models), b))
            probabilities = []
            for i, model in enumerate(models):
                with torch.no_grad():
                    log_p = torch.log_softmax(model(xb), dim=1)
                losses[i] = (-log_p[torch.arange(b, device=device), yb]).cpu().numpy()
                probabilities.append(log_p.exp().cpu().numpy())
                for method in methods:
                    raw[method][i] = attribute(
                        method, model, xb, target=yb, baseline=baseline, n_steps=n_steps
                    ).cpu().numpy()
            out = {"start": start, "stop": stop, "losses": losses,
                   "probabilities": np.stack(probabilities), "maps": {}, "single_model_maps": {},
                   "selected": {}, "model_maps": {}}
            for method in methods:
                stable = np.empty(raw[method].shape[1:], dtype=np.float32)
                single = np.empty_like(stable)
                chosen = []
                for j in range(b):
                    stable[j], sel = stabilize(raw[method][:, j], losses[:, j], how=how, positive=positive)
                    single[j], _ = stabilize(raw[method][:1, j], None, how="none", positive=positive)
                    chosen.append(sel)
                out["maps"][method], out["single_model_maps"][method] = stable, single
                out["selected"][method] = chosen
                if keep_model_maps:
                    out["model_maps"][method] = np.stack([
                        np.stack([stabilize(raw[method][i:i + 1, j], None, how="none",
                                            positive=positive)[0] for j in range(b)])
                        for i in range(len(models))
                    ]).astype(np.float32)
            del raw
            if progress_bar is not None:
                progress_bar.update(1)
            yield out


def run_ensemble(
    dataset: TimeseriesDataset,
    config: EnsembleConfig,
    checkpoint_dir: str | Path,
    progress: bool = True,
) -> EnsembleResult:
    """Train seeded ensembles per fold and compute stabilized out-of-fold maps (seed 000, §2.4).

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
    if not isinstance(dataset, TimeseriesDataset):
        raise TypeError("run_ensemble needs a TimeseriesDataset (see assemble_dataset).")
    if not isinstance(config, EnsembleConfig):
        raise TypeError("run_ensemble needs an EnsembleConfig.")
    device = resolve_device(config.device)
    if device.type == "cuda":
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # deterministic cuBLAS
    checkpoint_dir = Path(checkpoint_dir)
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    X, y = dataset.X, dataset.y
    n, T, F = X.shape
    n_classes = len(dataset.classes)
    folds = make_folds(y, _fold_groups(dataset), config.n_folds, config.random_seed, dataset.classes)
    data_hash = _dataset_hash(dataset)
    methods = config.attribution
    maps = {m: np.full((n, T, F), np.nan, dtype=np.float32) for m in methods}
    single = {m: np.full((n, T, F), np.nan, dtype=np.float32) for m in methods}
    every = ({m: np.full((config.n_models, n, T, F), np.nan, dtype=np.float32) for m in methods}
             if config.keep_model_maps else None)
    map_info: list[dict | None] = [None] * n
    rows: list[dict] = []
    n_trained = n_reused = 0
    batches = sum(-(-len(test) // config.attribution_batch_size) for _, test in folds)
    train_bar = tqdm(total=len(folds) * config.n_models, desc="Training", unit="model",
                     disable=not progress, position=0, leave=True)
    attr_bar = tqdm(total=batches, desc="Attributing", unit="batch",
                    disable=not progress, position=1, leave=True)
    try:
        for k, (train_idx, test_idx) in enumerate(folds, start=1):
            mean, std = training.fit_standardizer(X[train_idx])
            X_train = training.apply_standardizer(X[train_idx], mean, std)
            X_test = training.apply_standardizer(X[test_idx], mean, std)
            split_seed = int(np.random.SeedSequence([config.random_seed, k]).generate_state(1)[0] >> 1)
            fit_pos, val_pos = training.inner_split(
                y[train_idx], np.asarray(dataset.subjects, dtype=object)[train_idx],
                config.val_fraction, split_seed,
            )
            fingerprint = _fingerprint(config, data_hash, train_idx, fit_pos)
            seeds = [model_seed(config.random_seed, k, m) for m in range(config.n_models)]
            models = []
            for seed in seeds:
                pt_path, json_path = training.checkpoint_paths(checkpoint_dir, k, seed)
                loaded = training.load_checkpoint(pt_path, json_path, fingerprint)
                if loaded is None:
                    state, info = training.train_model(
                        config.model, config.model_kwargs,
                        X_train[fit_pos], y[train_idx][fit_pos],
                        X_train[val_pos], y[train_idx][val_pos],
                        n_classes=n_classes, seed=seed, epochs=config.epochs,
                        batch_size=config.batch_size, learning_rate=config.learning_rate,
                        weight_decay=config.weight_decay, patience=config.patience, device=device,
                    )
                    info.update(fold=k, seed=seed, model=config.model, fingerprint=fingerprint)
                    training.save_checkpoint(state, info, pt_path, json_path)
                    n_trained += 1
                else:
                    state, info = loaded
                    n_reused += 1
                torch.manual_seed(seed)
                model = build_model(config.model, n_features=F, n_timepoints=T,
                                    n_classes=n_classes, **config.model_kwargs)
                model.load_state_dict(state)
                models.append(model.to(device).eval())
                train_bar.update(1)
            baseline = make_baseline(config.baseline, X_train, seed=split_seed)
            losses = np.empty((len(models), len(test_idx)))
            probabilities = np.empty((len(models), len(test_idx), n_classes))
            for batch in attribute_fold(
                models, X_test, y[test_idx], methods=methods, baseline=baseline,
                n_steps=config.ig_steps, how=config.stabilize, positive=config.positive,
                batch_size=config.attribution_batch_size, device=device, progress_bar=attr_bar,
                keep_model_maps=config.keep_model_maps,
            ):
                start, stop = batch["start"], batch["stop"]
                positions = test_idx[start:stop]
                losses[:, start:stop] = batch["losses"]
                probabilities[:, start:stop] = batch["probabilities"]
                for method in methods:
                    maps[method][positions] = batch["maps"][method]
                    single[method][positions] = batch["single_model_maps"][method]
                    if every is not None:
                        every[method][:, positions] = batch["model_maps"][method]
                for j, sample in enumerate(positions):
                    mean_p = batch["probabilities"][:, j].mean(axis=0)
                    pred = int(np.argmax(mean_p))
                    chosen = {m: batch["selected"][m][j] for m in methods}
                    map_info[sample] = {
                        "sample": int(sample),
                        "subject": dataset.subjects[sample],
                        "source": dataset.sources[sample],
                        "fold": k,
                        "model_seeds": list(seeds),
                        "selected_model_index": chosen,
                        "selected_model_seed": {m: (None if i is None else seeds[i]) for m, i in chosen.items()},
                        "model_losses": [float(v) for v in batch["losses"][:, j]],
                        "prediction": dataset.classes[pred],
                        "prediction_index": pred,
                        "probability": float(mean_p[pred]),
                        "probabilities": {c: float(p) for c, p in zip(dataset.classes, mean_p)},
                        "true_label": dataset.classes[int(y[sample])],
                        "true_index": int(y[sample]),
                        "correct": bool(pred == int(y[sample])),
                    }
            y_test = y[test_idx]
            for i, seed in enumerate(seeds):
                pred = probabilities[i].argmax(axis=1)
                rows.append({"fold": k, "model": seed, "n_models": 1,
                             "accuracy": float(np.mean(pred == y_test)),
                             "balanced_accuracy": _balanced_accuracy(y_test, pred),
                             "loss": float(losses[i].mean())})
            mean_p = probabilities.mean(axis=0)
            pred = mean_p.argmax(axis=1)
            true_p = np.clip(mean_p[np.arange(len(y_test)), y_test], 1e-12, None)
            rows.append({"fold": k, "model": "ensemble", "n_models": len(seeds),
                         "accuracy": float(np.mean(pred == y_test)),
                         "balanced_accuracy": _balanced_accuracy(y_test, pred),
                         "loss": float(-np.log(true_p).mean())})
            ens = rows[-1]
            LOGGER.info("Fold %d/%d: ensemble of %d models, accuracy %.3f, balanced accuracy %.3f.",
                        k, len(folds), len(seeds), ens["accuracy"], ens["balanced_accuracy"])
            del models
    finally:
        train_bar.close()
        attr_bar.close()
    if n_reused:
        LOGGER.info("Reused %d checkpointed model(s), trained %d.", n_reused, n_trained)
    performance = pd.DataFrame(rows, columns=["fold", "model", "n_models", "accuracy",
                                              "balanced_accuracy", "loss"])
    performance["model"] = performance["model"].astype(object)
    return EnsembleResult(
        maps=maps, map_info=map_info, performance=performance, single_model_maps=single,
        folds=folds, n_trained=n_trained, n_reused=n_reused, device=str(device), model_maps=every,
    )


def config_to_dict(config: EnsembleConfig) -> dict:
    """All settings of ``config`` as a plain dict (for ``config.toml`` and boilerplate)."""
    out = dataclasses.asdict(config)
    out["attribution"] = list(out["attribution"])
    return out
