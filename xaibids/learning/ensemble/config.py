"""The ensemble's settings (:class:`EnsembleConfig`), the device, and each attribution
method's parameters.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np
import torch

from xaibids.attribution.ig import ADAPTIVE, BASELINES, IG_RULES
from xaibids.attribution.registry import METHODS, check_supported, map_keys, resolve_params
from xaibids.attribution.stabilize import POSITIVE_METHODS, STABILIZE_METHODS
from xaibids.learning import training
from xaibids.models import MODEL_NAMES


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


def resolve_device(device: str) -> torch.device:
    """``auto`` → CUDA when available, else CPU; ``cuda`` without a GPU is an error."""
    if device not in DEVICES:
        raise ValueError(f"device must be one of {', '.join(DEVICES)}, got {device!r}.")
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda was requested but PyTorch finds no CUDA GPU; use --device cpu or auto.")
    return torch.device(device)


def uses_batched_training(config: EnsembleConfig, device: torch.device) -> bool:
    """Whether :func:`xaibids.learning.ensemble.fitting._obtain_models` trains missing models together (see ``batched_training``)."""
    if config.model not in training.BATCHABLE_MODELS or config.batched_training == "off":
        return False
    return config.batched_training == "on" or device.type == "cuda"


def config_to_dict(config: EnsembleConfig) -> dict:
    """All settings of ``config`` as a plain dict (for ``config.toml`` and boilerplate)."""
    out = dataclasses.asdict(config)
    out["attribution"] = list(out["attribution"])
    if not isinstance(out["baseline"], str):
        out["baseline"] = list(out["baseline"])
    return out
