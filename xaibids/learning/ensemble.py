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
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import functools
import hashlib
import json
import logging
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from xaibids.attribution.ig import ADAPTIVE, BASELINES, IG_RULES, adaptive_integrated_gradients, make_baseline
from xaibids.attribution.registry import METHODS, attribute, check_supported, map_keys, resolve_params
from xaibids.attribution.reliability import (
    pairwise_model_correlation,
    pearson_per_sample,
    permutation_reproducibility,
)
from xaibids.attribution.stabilize import (
    POSITIVE_METHODS,
    STABILIZE_METHODS,
    make_positive,
    stabilize,
)
from xaibids.learning import training
from xaibids.learning.dataset import TimeseriesDataset
from xaibids.models import MODEL_NAMES, build_model

LOGGER = logging.getLogger("xaibids")

DEVICES = ("auto", "cpu", "cuda")

#: ``EnsembleConfig.batched_training`` values.
BATCHED_TRAINING = ("auto", "on", "off")
#: Most models trained as one batched network: one step holds that many copies of every
#: activation (on the CPU batching gains nothing, 0.7-1.3x in benchmarks/bench_batched_training.py;
#: it is for GPUs, where small models one by one leave the device idle).
BATCHED_GROUP_SIZE = 16

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
    model : {"region-cnn", "lstm-attn", "stdnn", "linear", "cnn3d"}
        Architecture (:func:`xaibids.models.build_model`).
    n_folds : int
        Cross-validation folds (Lewis et al. 2023 uses 10).
    n_models : int
        Models (random seeds) per fold (Lewis et al. 2023 uses 300).
    epochs, batch_size, learning_rate, weight_decay, patience, val_fraction
        Adam training with early stopping on a stratified validation split of
        ``val_fraction`` of each fold's training subjects (0: no early stopping). ``epochs``
        None (the default): 100, or more when they would be fewer than 400 mini-batch steps
        (:func:`xaibids.learning.training.max_epochs`).
    device : {"auto", "cpu", "cuda"}
        ``auto`` uses CUDA when available.
    random_seed : int
        Seed everything derives from (folds, validation splits, model seeds).
    attribution : tuple of str
        Methods of :data:`xaibids.attribution.METHODS`; each must support ``model``.
    ig_steps : int or "adaptive"
        Integration points of IG; 0 chooses them per fold: the smallest count of
        :data:`xaibids.attribution.ig.STEP_LADDER` whose completeness error on the fold's first
        model is within ``ig_tolerance`` (:func:`xaibids.attribution.ig.converged_ig_steps`).
        ``"adaptive"`` subdivides each sample's path until every batch of every model is within
        ``ig_tolerance`` (:func:`xaibids.attribution.ig.adaptive_integrated_gradients`; the
        Gauss-Legendre rule only).
    ig_tolerance : float
        Completeness tolerance of ``ig_steps=0`` and ``"adaptive"``: the summed absolute
        convergence delta relative to the summed absolute change of the target logit (0.01 = 1 %).
    ig_method : str
        IG integration rule (:data:`xaibids.attribution.ig.IG_RULES`): ``gausslegendre``
        (Captum's default) or ``riemann_trapezoid``, ``riemann_left``, ``riemann_right``,
        ``riemann_middle``.
    baseline : str or tuple of str, each of {"zero", "mean", "median", "random"}
        IG baseline(s) (Lewis et al. 2023: zero; Strock et al. 2025 compares the others), computed from the fold's
        standardized training data. With several, the IG maps are keyed ``igZero``, ``igMean``,
        ``igMedian``, ``igRandom``; other baseline-taking methods use the first.
    attribution_params : dict of str to dict
        Parameters per method overriding the defaults of
        ``xaibids.attribution.METHODS[method].defaults`` (e.g. ``{"ig": {"multiply_by_inputs":
        True}, "occlusion": {"window": (5, 1)}}``). ``n_steps`` and ``method`` of IG come from
        ``ig_steps`` and ``ig_method`` unless given here.
    stability : bool
        Compute the stability of the maps across seeds (:attr:`EnsembleResult.stability`).
    stabilize : {"closest", "mean", "median", "none"}
        How the maps of a sample's models are reduced to one (Lewis et al. 2023, §2.4).
    positive : {"abs", "relu", "none"}
        Applied to the stabilized map before it is normalized by its sum.
    attribution_batch_size : int
        Test samples streamed at once through all models of a fold.
    model_kwargs : dict
        Architecture options passed to :func:`~xaibids.models.build_model`.
    keep_model_maps : bool
        Also return every model's map of every sample (:attr:`EnsembleResult.model_maps`).
        Memory then grows with ``n_models x n_samples``: for tests and small studies only.
    batched_training : {"auto", "on", "off"}
        Train the models of a fold (or of a training chunk) that have no checkpoint together, in
        groups of up to :data:`BATCHED_GROUP_SIZE`, as one vmapped network
        (:func:`xaibids.learning.training.train_models_batched`; ``stdnn`` and ``linear``):
        ``auto`` does so on CUDA, where many small models otherwise leave the GPU idle. The
        weights equal one-by-one training up to floating-point rounding.
    """

    model: str = "region-cnn"
    n_folds: int = 5
    n_models: int = 10
    epochs: int | None = None
    batch_size: int = 32
    learning_rate: float = 1e-3
    weight_decay: float = 0.0
    patience: int = 10
    val_fraction: float = 0.2
    device: str = "auto"
    random_seed: int = 0
    attribution: tuple[str, ...] = ("ig",)
    ig_steps: int | str = 50
    baseline: str | tuple[str, ...] = "zero"
    stabilize: str = "closest"
    positive: str = "abs"
    attribution_batch_size: int = 16
    model_kwargs: dict = field(default_factory=dict)
    keep_model_maps: bool = False
    ig_method: str = "gausslegendre"
    attribution_params: dict = field(default_factory=dict)
    stability: bool = True
    ig_tolerance: float = 0.01
    batched_training: str = "auto"

    @property
    def baselines(self) -> tuple[str, ...]:
        """The IG baseline names as a tuple (``baseline`` may be one string)."""
        return (self.baseline,) if isinstance(self.baseline, str) else tuple(self.baseline)

    def __post_init__(self) -> None:
        if isinstance(self.attribution, str):
            self.attribution = (self.attribution,)
        self.attribution = tuple(self.attribution)
        if not isinstance(self.baseline, str):
            self.baseline = tuple(self.baseline)
            if not self.baseline:
                raise ValueError("EnsembleConfig.baseline needs at least one baseline.")
            if len(set(self.baseline)) != len(self.baseline):
                raise ValueError(f"EnsembleConfig.baseline lists a baseline twice: {self.baseline}.")
        for name in self.baselines:
            if name not in BASELINES:
                raise ValueError(f"EnsembleConfig.baseline must be one of {', '.join(BASELINES)}, got {name!r}.")
        choices = (("model", MODEL_NAMES), ("device", DEVICES), ("ig_method", IG_RULES),
                   ("stabilize", STABILIZE_METHODS), ("positive", POSITIVE_METHODS),
                   ("batched_training", BATCHED_TRAINING))
        for name, allowed in choices:
            if getattr(self, name) not in allowed:
                raise ValueError(
                    f"EnsembleConfig.{name} must be one of {', '.join(allowed)}, got {getattr(self, name)!r}."
                )
        if self.batched_training == "on" and self.model not in training.BATCHABLE_MODELS:
            raise ValueError(f"Batched training supports the models "
                             f"{', '.join(training.BATCHABLE_MODELS)}, not {self.model!r}.")
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
        for method in self.attribution:
            check_supported(method, self.model)
        if not isinstance(self.attribution_params, dict):
            raise ValueError("EnsembleConfig.attribution_params must be a dict of parameter dicts by method.")
        for method, params in self.attribution_params.items():
            if method not in self.attribution:
                raise ValueError(f"EnsembleConfig.attribution_params has parameters for {method!r}, "
                                 f"which is not among the requested methods {self.attribution}.")
            if not isinstance(params, dict):
                raise ValueError(f"EnsembleConfig.attribution_params[{method!r}] must be a dict.")
            resolve_params(method, **params)
        if self.ig_steps == ADAPTIVE and self.ig_method != "gausslegendre":
            raise ValueError(f"EnsembleConfig.ig_steps {ADAPTIVE!r} integrates with Gauss-Legendre "
                             f"panels; it cannot use ig_method {self.ig_method!r}.")
        counts = (("n_folds", 2), ("n_models", 1), ("epochs", 1), ("batch_size", 1), ("patience", 1),
                  ("ig_steps", 0), ("attribution_batch_size", 1), ("random_seed", 0))
        for name, minimum in counts:
            if (name == "ig_steps" and self.ig_steps == ADAPTIVE) or (
                    name == "epochs" and self.epochs is None):
                continue
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
                also = f" or {ADAPTIVE!r}" if name == "ig_steps" else ""
                raise ValueError(f"EnsembleConfig.{name} must be an integer >= {minimum}{also}, "
                                 f"got {value!r}.")
            setattr(self, name, int(value))
        if isinstance(self.ig_tolerance, bool) or not isinstance(self.ig_tolerance, (int, float)) \
                or not 0 < self.ig_tolerance < 1:
            raise ValueError(f"EnsembleConfig.ig_tolerance must be in (0, 1), got {self.ig_tolerance!r}.")
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
#: Test samples of a fold on which ``ig_steps=0`` measures the completeness error.
IG_CALIBRATION_SAMPLES = 32


#: IG's ``n_steps`` in :func:`method_params` and the provenance when chosen per fold.
AUTO_STEPS = "auto"


def method_params(config: EnsembleConfig) -> dict[str, dict]:
    """Parameters per method of ``config`` as passed to :func:`attribute_fold`.

    IG gets ``n_steps=config.ig_steps`` and ``method=config.ig_method`` unless
    ``config.attribution_params["ig"]`` sets them; with ``ig_steps=0`` its ``n_steps`` is
    :data:`AUTO_STEPS`, which :func:`attribute_trained_fold` resolves per fold; with
    ``"adaptive"`` it also gets ``completeness_tolerance=config.ig_tolerance``.
    """
    out = {}
    for method in config.attribution:
        params = dict(config.attribution_params.get(method, {}))
        if method == "ig":
            params.setdefault("n_steps", config.ig_steps or AUTO_STEPS)
            params.setdefault("method", config.ig_method)
            if params["n_steps"] == ADAPTIVE:
                params.setdefault("completeness_tolerance", config.ig_tolerance)
        out[method] = params
    return out


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


def attribution_settings(config: EnsembleConfig) -> dict[str, dict]:
    """How each map of an ensemble with ``config`` is made, by map key (for provenance).

    Returns
    -------
    dict of str to dict
        ``{key: {"method": ..., "baseline": name or None, "params": {...all parameters...}}}``
        in the order of :func:`xaibids.attribution.registry.map_keys`.
    """
    params = method_params(config)
    settings = {key: {"method": method, "baseline": base,
                      "params": resolve_params(method, **params[method])}
                for key, method, base in map_keys(config.attribution, config.baselines)}
    for setting in settings.values():
        if setting["method"] == "ig" and setting["params"]["n_steps"] == AUTO_STEPS:
            setting["params"]["completeness_tolerance"] = config.ig_tolerance
        elif setting["method"] == "ig" and setting["params"]["n_steps"] != ADAPTIVE:
            del setting["params"]["completeness_tolerance"]  # only a chosen count has one
    return settings


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
        LOGGER.info("Some subjects have several samples (runs or trials); folds keep a "
                    "subject's samples together.")
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
    if uses_batched_training(config, resolve_device(config.device)):
        payload["batched_training"] = True  # absent otherwise: older checkpoints stay valid
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
    progress_bar=None,
    keep_model_maps: bool = False,
    method_params: dict | None = None,
    stability: bool = True,
) -> Iterator[dict]:
    """Stream a fold's test samples through its models: attribute, stabilize (Lewis et al. 2023, §2.4).

    Samples are processed in batches of ``batch_size``; each batch is explained by every model
    (target = the true class) and stabilized before the next batch starts, so at most
    ``batch_size x len(models)`` raw maps per map key are held at a time. The stability across
    seeds and the per-model feature importance are computed from the same batch.

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
    baseline : str, float, torch.Tensor or dict
        Baseline of the baseline-taking methods (see :func:`xaibids.attribution.ig.make_baseline`),
        or an ordered dict ``{name: value}`` of several; with more than one, IG yields one map
        per baseline keyed ``igZero``, ``igMean``, ... and the other methods use the first.
    n_steps : int or "adaptive"
        IG integration points (unless ``method_params["ig"]["n_steps"]`` is given).
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
    method_params : dict of str to dict, optional
        Parameters per method (:func:`xaibids.attribution.attribute`).
    stability : bool, default=True
        Compute the per-sample stability statistics.

    Yields
    ------
    dict
        Per batch: ``start`` and ``stop`` (positions in ``X_test``), ``maps`` and
        ``single_model_maps`` (map key → float32 ``(b, T, F)``), ``selected`` (map key → list of
        model indices or None), ``losses`` (``(n_models, b)``), ``probabilities``
        (``(n_models, b, n_classes)``), ``feature_importance`` (map key → ``(n_models, b, F)``,
        each model's positive, sum-normalized map summed over time) and, with ``stability``,
        ``stability`` (map key → ``{"seed_correlation": (b,), "split_half_correlation": (b,)}``);
        with ``keep_model_maps`` also ``model_maps`` (map key → float32 ``(n_models, b, T, F)``);
        with IG's ``n_steps="adaptive"``, ``ig_adaptive`` (IG map key → ``{"points", "delta",
        "change"}``, each ``(n_models, b)``: the gradient evaluations spent and the completeness
        terms of :func:`~xaibids.attribution.ig.adaptive_integrated_gradients`).
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
    params = {m: dict((method_params or {}).get(m, {})) for m in methods}
    if "ig" in params:
        params["ig"].setdefault("n_steps", n_steps)
    for m in methods:
        resolve_params(m, **params[m])
        check_supported(m, models[0])
    adaptive_ig = (resolve_params("ig", **params["ig"])
                   if params.get("ig", {}).get("n_steps") == ADAPTIVE else None)
    if adaptive_ig is not None and adaptive_ig["method"] != "gausslegendre":
        raise ValueError(f"Adaptive IG integrates with Gauss-Legendre panels; it cannot use the "
                         f"{adaptive_ig['method']!r} rule.")
    if isinstance(baseline, dict):
        if not baseline:
            raise ValueError("attribute_fold got an empty dict of baselines.")
        baselines = dict(baseline)
    else:
        baselines = {baseline if isinstance(baseline, str) else "given": baseline}
    first = next(iter(baselines.values()))
    keys = [(key, m, baselines[b] if b in baselines else first)
            for key, m, b in map_keys(methods, tuple(baselines))]
    n_models = len(models)
    half = n_models // 2
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
            raw = {key: np.empty((n_models, b) + tuple(xb.shape[1:]), dtype=np.float32) for key, _, _ in keys}
            record = {key: {term: np.empty((n_models, b)) for term in ("points", "delta", "change")}
                      for key, method, _ in keys if adaptive_ig is not None and method == "ig"}
            losses = np.empty((n_models, b))
            probabilities = []
            for i, model in enumerate(models):
                if i and i % RELEASE_EVERY_MODELS == 0:
                    release_free_heap()
                with torch.no_grad():
                    log_p = torch.log_softmax(model(xb), dim=1)
                losses[i] = (-log_p[torch.arange(b, device=device), yb]).cpu().numpy()
                probabilities.append(log_p.exp().cpu().numpy())
                for key, method, base in keys:
                    if key in record:  # adaptive IG, called directly for its completeness record
                        result = adaptive_integrated_gradients(
                            model, xb, yb, base, tolerance=adaptive_ig["completeness_tolerance"],
                            multiply_by_inputs=adaptive_ig["multiply_by_inputs"],
                            internal_batch_size=adaptive_ig["internal_batch_size"])
                        if not result.converged:
                            LOGGER.warning("Adaptive IG (%s) of model %d stopped at its points limit on "
                                           "samples %d-%d: completeness error %.2f %%.", key, i + 1,
                                           start + 1, stop, 100 * result.completeness_error)
                        raw[key][i] = result.attributions.cpu().numpy()
                        for term in record[key]:
                            record[key][term][i] = getattr(result, term).cpu().numpy()
                        continue
                    raw[key][i] = attribute(method, model, xb, target=yb, baseline=base,
                                            **params[method]).cpu().numpy()
            out = {"start": start, "stop": stop, "losses": losses,
                   "probabilities": np.stack(probabilities), "maps": {}, "single_model_maps": {},
                   "selected": {}, "model_maps": {}, "feature_importance": {}, "stability": {}}
            for key, _, _ in keys:
                out["maps"][key], out["selected"][key], stats = _stabilize_batch(
                    raw[key], losses, how, positive, keep_model_maps, stability, half)
                out["single_model_maps"][key] = stats["single_model_maps"]
                out["feature_importance"][key] = stats["feature_importance"]
                if keep_model_maps:
                    out["model_maps"][key] = stats["model_maps"]
                if stability:
                    out["stability"][key] = stats["stability"]
            if record:
                out["ig_adaptive"] = record
            del raw
            release_free_heap()
            if progress_bar is not None:
                progress_bar.update(1)
            yield out


#: Models attributed between two :func:`release_free_heap` calls (a call costs milliseconds).
RELEASE_EVERY_MODELS = 16


@functools.lru_cache(maxsize=1)
def _malloc_trim():
    try:
        return ctypes.CDLL(None).malloc_trim
    except (AttributeError, OSError):  # not glibc (musl, macOS): nothing to call
        return None


def release_free_heap() -> None:
    """Give the heap's free pages back to the operating system (glibc's ``malloc_trim``).

    Attributing model after model allocates and frees large blocks of varying sizes (Captum's
    interpolated inputs and gradients); glibc keeps the freed pages, and how far the resident
    memory creeps up then depends on the allocation order: with 300 ``stdnn`` models and 50 IG
    steps the peak varied from 0.6 to 1.6 GiB between identical runs (Python's hash seed),
    0.4-0.6 GiB when trimming every 16 models, at no measurable cost in time. A no-op where the
    C library has no ``malloc_trim``.
    """
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


def _stabilize_batch(raw: np.ndarray, losses: np.ndarray, how: str, positive: str,
                     keep_model_maps: bool, stability: bool, half: int):
    """Stabilize one batch of raw maps ``(n_models, b, T, F)`` sample by sample.

    Every temporary is one sample's ``(n_models, T, F)``, so the working memory on top of the
    raw maps is a fraction ``~1/b`` of them (issue 10: at 300 models the batch's maps, not
    copies of them, set the peak).
    """
    n_models, b = raw.shape[:2]
    stable = np.empty(raw.shape[1:], dtype=np.float32)
    chosen = []
    single = np.empty(raw.shape[1:], dtype=np.float32)
    importance = np.empty((n_models, b, raw.shape[-1]))
    model_maps = np.empty(raw.shape, dtype=np.float32) if keep_model_maps else None
    pairwise, split = np.full(b, np.nan), np.full(b, np.nan)
    for j in range(b):
        stable[j], sel = stabilize(raw[:, j], losses[:, j], how=how, positive=positive)
        chosen.append(sel)
        # every model's positive map normalized by its sum (Lewis et al. 2023, §2.4)
        pos = make_positive(raw[:, j].astype(np.float64), positive)
        total = np.abs(pos).sum(axis=tuple(range(1, pos.ndim)), keepdims=True)
        ok = (total > 0) & np.isfinite(total)
        normalized = np.where(ok, pos / np.where(ok, total, 1.0), 0.0)
        single[j] = normalized[0]
        importance[:, j] = normalized.sum(axis=1)
        if keep_model_maps:
            model_maps[:, j] = normalized
        del normalized
        if stability:
            pairwise[j] = pairwise_model_correlation(pos)
            if half >= 1:
                a = stabilize(raw[:half, j], losses[:half, j], how=how, positive=positive)[0]
                c = stabilize(raw[half:, j], losses[half:, j], how=how, positive=positive)[0]
                split[j] = pearson_per_sample(a[None], c[None])[0]
    stats = {"single_model_maps": single, "feature_importance": importance,
             "model_maps": model_maps,
             "stability": {"seed_correlation": pairwise, "split_half_correlation": split}}
    return stable, chosen, stats


@dataclass
class FoldResult:
    """One fold's share of an :class:`EnsembleResult` (:func:`attribute_trained_fold`).

    :func:`merge_fold_results` combines the folds into the result :func:`run_ensemble` returns;
    :func:`run_ensemble` itself is built from the same pieces, so both are equal exactly.

    Attributes
    ----------
    fold : int
        1-based fold number.
    train_idx, test_idx : ndarray of int
        The fold's training and test sample indices.
    seeds : list of int
        The fold's model seeds, in model-index order.
    maps, single_model_maps : dict of str to ndarray of shape (n_test, n_timepoints, n_features)
        Per map key, the stabilized map and the first model's map of each test sample.
    model_maps : dict of str to ndarray of shape (n_models, n_test, n_timepoints, n_features) or None
        Only with ``EnsembleConfig.keep_model_maps``.
    seed_correlation, split_half_correlation : dict of str to ndarray of shape (n_test,)
        Per-sample stability statistics (NaN without ``EnsembleConfig.stability``).
    run_sums : dict of str to ndarray of shape (n_models, n_classes, n_features)
        Per map key, each model's feature importance summed over the test samples of each class.
    map_info : list of dict
        :attr:`EnsembleResult.map_info` of the test samples, in ``test_idx`` order.
    performance : list of dict
        The fold's rows of :attr:`EnsembleResult.performance`.
    device : str
        Device the models ran on.
    ig_convergence : list of dict
        Rows of :attr:`EnsembleResult.ig_convergence` for this fold.
    mean_model_importance : dict of str to ndarray of shape (n_test, n_features)
        :attr:`EnsembleResult.mean_model_importance` of the test samples.
    """

    fold: int
    train_idx: np.ndarray
    test_idx: np.ndarray
    seeds: list[int]
    maps: dict[str, np.ndarray]
    single_model_maps: dict[str, np.ndarray]
    model_maps: dict[str, np.ndarray] | None
    seed_correlation: dict[str, np.ndarray]
    split_half_correlation: dict[str, np.ndarray]
    run_sums: dict[str, np.ndarray]
    map_info: list[dict]
    performance: list[dict]
    device: str = "cpu"
    ig_convergence: list[dict] = field(default_factory=list)
    mean_model_importance: dict[str, np.ndarray] = field(default_factory=dict)


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


def uses_batched_training(config: EnsembleConfig, device: torch.device) -> bool:
    """Whether :func:`_obtain_models` trains missing models together (see ``batched_training``)."""
    if config.model not in training.BATCHABLE_MODELS or config.batched_training == "off":
        return False
    return config.batched_training == "on" or device.type == "cuda"


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


def _attribute_plan(dataset: TimeseriesDataset, config: EnsembleConfig, plan: _FoldPlan,
                    models: list[torch.nn.Module], device: torch.device, progress_bar=None) -> FoldResult:
    """Steps 4-5 of :func:`run_ensemble` for one fold: attribute, stabilize, score."""
    y = dataset.y
    n_classes = len(dataset.classes)
    test_idx, seeds, k = plan.test_idx, plan.seeds, plan.fold
    n_test = len(test_idx)
    settings = attribution_settings(config)
    keys = list(settings)
    shape = (n_test,) + tuple(dataset.X.shape[1:])
    maps = {m: np.full(shape, np.nan, dtype=np.float32) for m in keys}
    single = {m: np.full(shape, np.nan, dtype=np.float32) for m in keys}
    every = ({m: np.full((len(models),) + shape, np.nan, dtype=np.float32) for m in keys}
             if config.keep_model_maps else None)
    seed_r = {m: np.full(n_test, np.nan) for m in keys}
    split_r = {m: np.full(n_test, np.nan) for m in keys}
    run_sums = {m: np.zeros((len(models), n_classes, dataset.X.shape[2])) for m in keys}
    mean_importance = {m: np.full((n_test, dataset.X.shape[2]), np.nan, dtype=np.float32)
                       for m in keys}
    map_info: list[dict | None] = [None] * n_test
    baseline = {name: make_baseline(name, plan.X_train, seed=plan.split_seed) for name in config.baselines}
    params = method_params(config)
    convergence = []
    if params.get("ig", {}).get("n_steps") == AUTO_STEPS:
        params["ig"]["n_steps"], convergence = _converged_steps(
            config, plan, models[0], y[test_idx], baseline, params["ig"], device)
    losses = np.empty((len(models), n_test))
    probabilities = np.empty((len(models), n_test, n_classes))
    adaptive = {key: {term: np.empty((len(models), n_test)) for term in ("points", "delta", "change")}
                for key, setting in settings.items()
                if setting["method"] == "ig" and setting["params"]["n_steps"] == ADAPTIVE}
    for batch in attribute_fold(
        models, plan.X_test, y[test_idx], methods=config.attribution, baseline=baseline,
        how=config.stabilize, positive=config.positive,
        batch_size=config.attribution_batch_size, device=device, progress_bar=progress_bar,
        keep_model_maps=config.keep_model_maps, method_params=params,
        stability=config.stability,
    ):
        start, stop = batch["start"], batch["stop"]
        positions = test_idx[start:stop]
        losses[:, start:stop] = batch["losses"]
        probabilities[:, start:stop] = batch["probabilities"]
        for key, record in batch.get("ig_adaptive", {}).items():
            for term, values in record.items():
                adaptive[key][term][:, start:stop] = values
        for method in keys:
            maps[method][start:stop] = batch["maps"][method]
            single[method][start:stop] = batch["single_model_maps"][method]
            if every is not None:
                every[method][:, start:stop] = batch["model_maps"][method]
            if config.stability:
                seed_r[method][start:stop] = batch["stability"][method]["seed_correlation"]
                split_r[method][start:stop] = batch["stability"][method]["split_half_correlation"]
            importance = batch["feature_importance"][method]  # (n_models, b, F)
            mean_importance[method][start:stop] = importance.mean(axis=0)
            for c in range(n_classes):
                run_sums[method][:, c] += importance[:, y[positions] == c].sum(axis=1)
        for j, sample in enumerate(positions):
            mean_p = batch["probabilities"][:, j].mean(axis=0)
            pred = int(np.argmax(mean_p))
            chosen = {m: batch["selected"][m][j] for m in keys}
            map_info[start + j] = {
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
            if adaptive:
                map_info[start + j]["ig_points"] = {
                    key: float(record["points"][:, start + j].mean()) for key, record in adaptive.items()}
            elif "ig" in params:
                map_info[start + j]["ig_steps"] = params["ig"]["n_steps"]
    for key, record in adaptive.items():
        error = float(np.abs(record["delta"]).sum() / max(np.abs(record["change"]).sum(), 1e-300))
        convergence.append({"fold": k, "baseline": settings[key]["baseline"], "n_steps": ADAPTIVE,
                            "completeness_error": error, "chosen": True,
                            "mean_points": float(record["points"].mean())})
        LOGGER.info("Fold %d: adaptive IG (%s baseline) spent %.1f gradient evaluations per map on "
                    "average; completeness error %.2f %%.", k, settings[key]["baseline"],
                    float(record["points"].mean()), 100 * error)
    y_test = y[test_idx]
    rows = []
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
                k, config.n_folds, len(seeds), ens["accuracy"], ens["balanced_accuracy"])
    return FoldResult(
        fold=k, train_idx=plan.train_idx, test_idx=test_idx, seeds=list(seeds), maps=maps,
        single_model_maps=single, model_maps=every, seed_correlation=seed_r,
        split_half_correlation=split_r, run_sums=run_sums, map_info=map_info, performance=rows,
        device=str(device), ig_convergence=convergence, mean_model_importance=mean_importance,
    )


def _converged_steps(config, plan, model, y_test, baselines: dict, ig_params: dict, device):
    """IG steps of one fold for ``ig_steps=0``: :func:`converged_ig_steps` on the first model
    and the first :data:`IG_CALIBRATION_SAMPLES` test samples, for every baseline."""
    from xaibids.attribution.ig import converged_ig_steps

    n = min(IG_CALIBRATION_SAMPLES, len(plan.X_test))
    xb = torch.as_tensor(plan.X_test[:n], dtype=torch.float32, device=device)
    yb = torch.as_tensor(y_test[:n], dtype=torch.int64, device=device)
    cudnn_off = (torch.backends.cudnn.flags(enabled=False) if device.type == "cuda"
                 else contextlib.nullcontext())
    with cudnn_off:
        steps, trials = converged_ig_steps(
            model.eval(), xb, yb, tuple(baselines.values()), tolerance=config.ig_tolerance,
            method=ig_params.get("method", config.ig_method),
            internal_batch_size=ig_params.get("internal_batch_size"))
    names = list(baselines)
    worst = max(t["completeness_error"] for t in trials if t["n_steps"] == steps)
    if worst > config.ig_tolerance:
        LOGGER.warning("Fold %d: IG did not converge to %.1f %% completeness error within %d "
                       "steps (error %.2f %%); using %d.", plan.fold, 100 * config.ig_tolerance,
                       steps, 100 * worst, steps)
    else:
        LOGGER.info("Fold %d: IG with %d steps (completeness error %.2f %% <= %.1f %%).",
                    plan.fold, steps, 100 * worst, 100 * config.ig_tolerance)
    return steps, [{"fold": plan.fold, "baseline": names[t["baseline"]], "n_steps": t["n_steps"],
                    "completeness_error": t["completeness_error"],
                    "chosen": t["n_steps"] == steps, "mean_points": t["n_steps"]} for t in trials]


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
    plan = _plan_fold(dataset, config, folds, fold, _dataset_hash(dataset))
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


def attribute_trained_fold(
    dataset: TimeseriesDataset,
    config: EnsembleConfig,
    checkpoint_dir: str | Path,
    fold: int,
    progress: bool = False,
) -> FoldResult:
    """Steps 4-5 of :func:`run_ensemble` for one fold whose models are all checkpointed.

    Loads the fold's ``config.n_models`` checkpoints (written by :func:`train_fold_chunk` or
    :func:`run_ensemble`; a missing or stale one raises :class:`FileNotFoundError`), streams
    the fold's test samples through them and stabilizes their maps.

    Returns
    -------
    FoldResult
        Combine the folds with :func:`merge_fold_results`.
    """
    _check_inputs(dataset, config, "attribute_trained_fold")
    device = _prepare_device(config.device)
    folds = ensemble_folds(dataset, config)
    fold = _check_fold(fold, len(folds))
    plan = _plan_fold(dataset, config, folds, fold, _dataset_hash(dataset))
    models = [
        _build_trained(config, dataset, _load_state(plan, Path(checkpoint_dir), m, "train it (train_fold_chunk)"),
                       plan.seeds[m]).to(device).eval()
        for m in range(config.n_models)
    ]
    bar = tqdm(total=-(-len(plan.test_idx) // config.attribution_batch_size),
               desc=f"Attributing fold {fold}", unit="batch", disable=not progress)
    try:
        return _attribute_plan(dataset, config, plan, models, device, progress_bar=bar)
    finally:
        bar.close()


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
    data_hash = _dataset_hash(dataset)
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


def config_to_dict(config: EnsembleConfig) -> dict:
    """All settings of ``config`` as a plain dict (for ``config.toml`` and boilerplate)."""
    out = dataclasses.asdict(config)
    out["attribution"] = list(out["attribution"])
    if not isinstance(out["baseline"], str):
        out["baseline"] = list(out["baseline"])
    return out


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
    plan = _plan_fold(dataset, config, ensemble_folds(dataset, config), 1, _dataset_hash(dataset))
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
    plan = _plan_fold(dataset, config, folds, fold, _dataset_hash(dataset))
    models = [
        _build_trained(config, dataset, _load_state(plan, Path(checkpoint_dir), m, "run run_ensemble"),
                       plan.seeds[m]).eval()
        for m in range(config.n_models)
    ]
    baselines = {name: make_baseline(name, plan.X_train, seed=plan.split_seed) for name in config.baselines}
    return models, plan.X_test, dataset.y[plan.test_idx], baselines


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
