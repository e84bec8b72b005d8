"""Training of one model of an ensemble: standardization, inner split, Adam, early stopping.

Building blocks of :func:`xaibids.learning.ensemble.run_ensemble`; every function here is
deterministic given its seed on the CPU.
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import math
import os
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from xaibids.fileio import atomic_write_bytes
from xaibids.models import build_model

LOGGER = logging.getLogger("xaibids")


def fit_standardizer(X: np.ndarray, per_feature: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature mean and standard deviation over samples and time points, ignoring NaN.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_timepoints, n_features)
        Training samples of one fold only (the test samples must not leak into the scaling).
    per_feature : bool, default=True
        False: one mean and one standard deviation over all values (returned as arrays of
        shape ``(1,)``). Used for volumes, whose voxels are features: a per-voxel scaling
        divides by the tiny spread of voxels whose intensity hardly varies across subjects
        (the brain's edge, the ventricles) and turns their noise into the largest inputs.

    Returns
    -------
    mean, std : ndarray of shape (n_features,)
        Features that are constant (or entirely NaN) get ``std = 1`` (and ``mean = 0`` when
        entirely NaN), so they standardize to zeros instead of NaN or infinity.
    """
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 3 or X.shape[0] == 0:
        raise ValueError(f"fit_standardizer needs a non-empty (n, T, F) array, got shape {X.shape}.")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN features are handled below
        axes = (0, 1) if per_feature else None
        mean = np.atleast_1d(np.nanmean(X, axis=axes))
        std = np.atleast_1d(np.nanstd(X, axis=axes))
    mean = np.where(np.isfinite(mean), mean, 0.0)
    std = np.where(np.isfinite(std) & (std > 0), std, 1.0)
    return mean, std


def apply_standardizer(X: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """Standardize ``X`` with :func:`fit_standardizer`'s statistics and set NaN to 0.

    After standardization 0 is the training mean of the feature, so missing values (``n/a``)
    carry no signal. Returns float32.
    """
    Z = (np.asarray(X, dtype=np.float64) - mean) / std
    return np.nan_to_num(Z, nan=0.0, posinf=0.0, neginf=0.0).astype(np.float32)


def inner_split(
    y: np.ndarray, units: np.ndarray | list, val_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Split a fold's training samples into fitting and validation (early stopping) parts.

    The split is made over *units* (subjects), so the runs (or trials) of one subject stay on
    the same side, and stratified by class when every unit has one class.

    Parameters
    ----------
    y : ndarray of shape (n,)
        Class index of each training sample.
    units : array-like of shape (n,)
        Subject of each sample.
    val_fraction : float
        Fraction of units held out for validation; 0 gives no validation set.
    seed : int
        Seed of the split.

    Returns
    -------
    fit_index, val_index : ndarray of int
        Positions into ``y``. ``val_index`` is empty when ``val_fraction`` is 0 or there are too
        few units to hold any out.
    """
    from sklearn.model_selection import train_test_split

    y = np.asarray(y)
    units = np.asarray(units, dtype=object)
    everything = np.arange(len(y))
    if val_fraction <= 0:
        return everything, np.array([], dtype=int)
    unique_units, first = np.unique(units, return_index=True)
    unit_labels = y[first]
    n_val = int(round(val_fraction * len(unique_units)))
    if n_val < 1 or len(unique_units) - n_val < 2:
        LOGGER.warning(
            "Only %d training subjects: no validation split for early stopping in this fold.",
            len(unique_units),
        )
        return everything, np.array([], dtype=int)
    _, unit_of = np.unique(units, return_inverse=True)
    if (y != unit_labels[unit_of]).any():
        # classes within subjects (single trials): every unit holds several classes, so there
        # is no class to stratify the units by
        fit_units, val_units = train_test_split(unique_units, test_size=n_val, random_state=seed)
        in_val = np.isin(units, val_units)
        return everything[~in_val], everything[in_val]
    try:
        fit_units, val_units = train_test_split(
            unique_units, test_size=n_val, stratify=unit_labels, random_state=seed
        )
    except ValueError:
        LOGGER.warning(
            "A class has too few training subjects to stratify the validation split; "
            "using an unstratified split."
        )
        fit_units, val_units = train_test_split(unique_units, test_size=n_val, random_state=seed)
    in_val = np.isin(units, val_units)
    return everything[~in_val], everything[in_val]


@contextlib.contextmanager
def deterministic_algorithms(device: str | torch.device = "cpu"):
    """Make training on ``device`` reproducible, restoring the global settings afterwards.

    Seeding (:func:`torch.manual_seed` and an explicit generator for the batch order) plus
    PyTorch's deterministic algorithms (warning only where none exists) and deterministic,
    non-benchmarking cuDNN. On the CPU the models' operations are deterministic anyway (the
    switch guards against future ones that are not); on CUDA some operations have no
    deterministic kernel (PyTorch warns), so GPU runs may differ in the last digits between
    runs (README, "Reproducibility").
    """
    previous = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
        torch.backends.cudnn.deterministic,
        torch.backends.cudnn.benchmark,
    )
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*deterministic.*")
            yield
    finally:
        torch.use_deterministic_algorithms(previous[0], warn_only=previous[1])
        torch.backends.cudnn.deterministic = previous[2]
        torch.backends.cudnn.benchmark = previous[3]


def predict_logits(model: nn.Module, X: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """Logits of ``model`` (left in its current mode) on ``X``, in chunks, without gradients."""
    if len(X) == 0:
        raise ValueError("predict_logits got no samples.")
    with torch.no_grad():
        return torch.cat([model(chunk) for chunk in torch.split(X, batch_size)])


#: Epochs of training at most, by default.
DEFAULT_EPOCHS = 100
#: With few samples an epoch is one or two mini-batches, and 100 epochs of one Adam step each
#: are too few for region-cnn's group lasso to settle (the demo's 40 subjects, in exploratory
#: runs: balanced accuracy 0.775 after 100 steps, 0.95 after 400): by default training
#: may take this many steps however few the samples. Early stopping still ends it sooner.
MIN_TRAINING_STEPS = 400


def max_epochs(n_samples: int, batch_size: int, epochs: int | None = None) -> int:
    """``epochs`` when given; else :data:`DEFAULT_EPOCHS`, or more when those epochs of
    ``n_samples`` in mini-batches of ``batch_size`` are fewer than :data:`MIN_TRAINING_STEPS`
    steps."""
    if epochs is not None:
        return int(epochs)
    batches = max(1, math.ceil(n_samples / batch_size))
    return max(DEFAULT_EPOCHS, math.ceil(MIN_TRAINING_STEPS / batches))


def train_model(
    model_name: str,
    model_kwargs: dict,
    X_fit: np.ndarray,
    y_fit: np.ndarray,
    X_val: np.ndarray,
    y_val: np.ndarray,
    n_classes: int,
    seed: int,
    epochs: int | None = None,
    batch_size: int = 32,
    learning_rate: float = 1e-3,
    weight_decay: float = 0.0,
    patience: int = 10,
    device: str | torch.device = "cpu",
) -> tuple[dict, dict]:
    """Train one model with Adam and early stopping on a validation set.

    The initialization and the order of the mini-batches depend only on ``seed``
    (Lewis et al. 2023, §2.4: the models of an ensemble differ only by their random initialization).

    Parameters
    ----------
    model_name : str
        Name for :func:`xaibids.models.build_model`.
    model_kwargs : dict
        Architecture options for :func:`~xaibids.models.build_model`.
    X_fit, y_fit : ndarray
        Standardized samples ``(n, T, F)`` (float32) and class indices to fit.
    X_val, y_val : ndarray
        Standardized validation samples and labels; may be empty (then no early stopping:
        all epochs are run and the final weights are kept).
    n_classes : int
        Number of classes.
    seed : int
        Seed of the initialization and of the mini-batch order.
    epochs : int, optional
        Maximum number of epochs; by default 100, or more when they would be fewer than
        :data:`MIN_TRAINING_STEPS` mini-batch steps (:func:`max_epochs`).
    batch_size : int, default=32
        Mini-batch size.
    learning_rate, weight_decay : float
        Adam settings.
    patience : int, default=10
        Stop after this many epochs without a lower validation loss; the weights of the best
        epoch are kept. For a penalized model (``model.penalized``: region-cnn, connectome) the
        validation loss includes it: early stopping watches the objective being minimized,
        else it stops on separable data before the penalty has made the model sparse.
    device : str or torch.device, default="cpu"

    Returns
    -------
    state_dict : dict
        Weights of the best epoch, on the CPU.
    info : dict
        ``val_loss`` (best validation loss, or final training loss when there is no
        validation set), ``has_validation``, ``best_epoch`` and ``epochs_run`` (1-based).
    """
    device = torch.device(device)
    n, T, F = X_fit.shape
    if n == 0:
        raise ValueError("train_model got no training samples.")
    epochs = max_epochs(n, batch_size, epochs)
    with deterministic_algorithms(device):
        torch.manual_seed(seed)
        model = build_model(model_name, n_features=F, n_timepoints=T, n_classes=n_classes,
                            **model_kwargs).to(device)
        optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate, weight_decay=weight_decay)
        criterion = nn.CrossEntropyLoss()
        penalized = getattr(model, "penalized", False)  # region-cnn's lasso, connectome's ridge
        generator = torch.Generator().manual_seed(seed)
        Xf = torch.as_tensor(X_fit, dtype=torch.float32, device=device)
        yf = torch.as_tensor(y_fit, dtype=torch.int64, device=device)
        has_val = len(y_val) > 0
        if has_val:
            Xv = torch.as_tensor(X_val, dtype=torch.float32, device=device)
            yv = torch.as_tensor(y_val, dtype=torch.int64, device=device)
        best_loss, best_state, best_epoch, waited, epoch = float("inf"), None, 0, 0, 0
        for epoch in range(1, epochs + 1):
            model.train()
            for batch in torch.randperm(n, generator=generator).split(batch_size):
                batch = batch.to(device)
                optimizer.zero_grad(set_to_none=True)
                loss = criterion(model(Xf[batch]), yf[batch])
                if penalized:
                    loss = loss + model.penalty()
                loss.backward()
                optimizer.step()
            if not has_val:
                continue
            model.eval()
            val_loss = float(criterion(predict_logits(model, Xv), yv))
            if penalized:  # stop on the objective being minimized, not on its data term
                val_loss += float(model.penalty().detach())
            if val_loss < best_loss:
                best_loss, best_epoch, waited = val_loss, epoch, 0
                best_state = copy.deepcopy(model.state_dict())
            else:
                waited += 1
                if waited >= patience:
                    break
        if best_state is not None:
            model.load_state_dict(best_state)
        else:  # no validation set: keep the final weights, report the training loss
            model.eval()
            best_loss, best_epoch = float(criterion(predict_logits(model, Xf), yf)), epoch
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    info = {
        "val_loss": best_loss,
        "has_validation": has_val,
        "best_epoch": best_epoch,
        "epochs_run": epoch,
    }
    return state, info


#: Models whose ensemble can be trained as one batched network (:func:`train_models_batched`):
#: no batch normalization (vmap cannot update its running statistics in place) and no LSTM (no
#: batching rule for its fused kernel).
BATCHABLE_MODELS = ("region-cnn", "stdnn", "linear", "connectome")


def _per_model_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of each model: ``logits (M, b, C)``, ``y (M, b)`` or ``(b,)`` → ``(M,)``."""
    y = y.expand(logits.shape[:2])
    loss = nn.functional.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="none")
    return loss.view(logits.shape[:2]).mean(dim=1)


def train_models_batched(
    model_name: str,
    model_kwargs: dict,
    X_fit: np.ndarray,
    y_fit: np.ndarray,
    X_val: np.ndarray,
    y_val: np.ndarray,
    n_classes: int,
    seeds: list[int],
    epochs: int | None = None,
    batch_size: int = 32,
    learning_rate: float = 1e-3,
    weight_decay: float = 0.0,
    patience: int = 10,
    device: str | torch.device = "cpu",
) -> list[tuple[dict, dict]]:
    """Train the models of ``seeds`` together, as one batched network (issue 10, throughput).

    What :func:`train_model` does for each seed, done for all of them at once: the parameters
    of the models are stacked (``torch.func.stack_module_state``) and every step runs one
    forward and backward pass vmapped over the models, so a GPU sees a few large kernels
    instead of ``len(seeds)`` small ones. Each model keeps what makes it a member of the
    ensemble (Lewis et al. 2023, §2.4): its initialization and mini-batch order come from its seed, and
    its early stopping from its own validation loss. Adam and its L2 weight decay act element
    by element, so one optimizer over the stacked parameters is the models' independent
    optimizers. The results equal :func:`train_model`'s up to floating-point rounding (batched
    kernels sum in another order), not bit for bit; with dropout the masks are drawn from
    other random numbers. Written here because no library trains a seeded ensemble this way.

    Parameters
    ----------
    model_name, model_kwargs, X_fit, y_fit, X_val, y_val, n_classes, epochs, batch_size,
    learning_rate, weight_decay, patience, device
        As for :func:`train_model`; ``model_name`` one of :data:`BATCHABLE_MODELS`.
    seeds : list of int
        One model per seed.

    Returns
    -------
    list of (dict, dict)
        Per seed, in order, what :func:`train_model` returns: the weights of the model's best
        epoch (on the CPU) and its ``val_loss``, ``has_validation``, ``best_epoch``,
        ``epochs_run``.
    """
    from torch.func import functional_call, stack_module_state, vmap

    if model_name not in BATCHABLE_MODELS:
        raise ValueError(f"Batched training supports {', '.join(BATCHABLE_MODELS)}, not "
                         f"{model_name!r}.")
    if not seeds:
        raise ValueError("train_models_batched needs at least one seed.")
    device = torch.device(device)
    n, T, F = X_fit.shape
    if n == 0:
        raise ValueError("train_models_batched got no training samples.")
    epochs = max_epochs(n, batch_size, epochs)
    n_models = len(seeds)
    with deterministic_algorithms(device):
        members = []
        for seed in seeds:  # the same initialization as train_model's
            torch.manual_seed(seed)
            members.append(build_model(model_name, n_features=F, n_timepoints=T,
                                       n_classes=n_classes, **model_kwargs))
        stacked, buffers = stack_module_state(members)
        params = {k: v.detach().to(device).requires_grad_() for k, v in stacked.items()}
        buffers = {k: v.to(device) for k, v in buffers.items()}
        skeleton = copy.deepcopy(members[0]).to("meta")
        penalized = getattr(skeleton, "penalized", False)  # region-cnn's lasso, connectome's ridge
        del members

        def call(p, b, x):
            return functional_call(skeleton, (p, b), (x,))

        train_forward = vmap(call, randomness="different")  # each model its own batch
        eval_forward = vmap(call, in_dims=(0, 0, None))      # every model the same samples

        def evaluate(X: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            skeleton.eval()
            with torch.no_grad():
                logits = torch.cat([eval_forward(params, buffers, chunk)
                                    for chunk in torch.split(X, 256)], dim=1)
            return _per_model_loss(logits, y)

        optimizer = torch.optim.Adam(params.values(), lr=learning_rate, weight_decay=weight_decay)
        generators = [torch.Generator().manual_seed(seed) for seed in seeds]
        Xf = torch.as_tensor(X_fit, dtype=torch.float32, device=device)
        yf = torch.as_tensor(y_fit, dtype=torch.int64, device=device)
        has_val = len(y_val) > 0
        if has_val:
            Xv = torch.as_tensor(X_val, dtype=torch.float32, device=device)
            yv = torch.as_tensor(y_val, dtype=torch.int64, device=device)
        best_loss = [float("inf")] * n_models
        best_state: list[dict | None] = [None] * n_models
        best_epoch, waited = [0] * n_models, [0] * n_models
        epochs_run = [epochs] * n_models
        active = [True] * n_models
        epoch = 0
        for epoch in range(1, epochs + 1):
            skeleton.train()
            order = torch.stack([torch.randperm(n, generator=g) for g in generators]).to(device)
            for start in range(0, n, batch_size):
                batch = order[:, start:start + batch_size]
                optimizer.zero_grad(set_to_none=True)
                # the sum of the models' losses: each model's gradient is that of its own loss
                loss = _per_model_loss(train_forward(params, buffers, Xf[batch]), yf[batch])
                if penalized:
                    loss = loss + skeleton.penalty(params["classifier.weight"])
                loss.sum().backward()
                optimizer.step()
            if not has_val:
                continue
            val_loss = evaluate(Xv, yv)
            if penalized:  # stop on the objective being minimized, not on its data term
                val_loss = val_loss + skeleton.penalty(params["classifier.weight"]).detach()
            val_loss = val_loss.tolist()
            for m in (m for m in range(n_models) if active[m]):
                if val_loss[m] < best_loss[m]:
                    best_loss[m], best_epoch[m], waited[m] = val_loss[m], epoch, 0
                    best_state[m] = {k: v[m].detach().clone() for k, v in params.items()}
                else:
                    waited[m] += 1
                    if waited[m] >= patience:  # the model stops here; the others go on
                        active[m], epochs_run[m] = False, epoch
            if not any(active):
                break
        if not has_val:  # keep the final weights, report the training loss
            best_loss = evaluate(Xf, yf).tolist()
            best_epoch = epochs_run = [epoch] * n_models
    out = []
    for m in range(n_models):
        weights = best_state[m] if best_state[m] is not None else {
            k: v[m].detach() for k, v in params.items()}
        state = {k: weights[k].cpu().clone() for k in stacked}
        state.update({k: v[m].cpu().clone() for k, v in buffers.items()})
        out.append((state, {"val_loss": float(best_loss[m]), "has_validation": has_val,
                            "best_epoch": int(best_epoch[m]),
                            "epochs_run": int(epochs_run[m] if has_val else epoch)}))
    return out


def checkpoint_paths(checkpoint_dir: str | os.PathLike, fold: int, seed: int) -> tuple[Path, Path]:
    """``checkpoint_dir/fold-{fold}/model-{seed}.pt`` and its ``.json`` sidecar."""
    folder = Path(checkpoint_dir) / f"fold-{fold}"
    return folder / f"model-{seed}.pt", folder / f"model-{seed}.json"


def save_checkpoint(state_dict: dict, info: dict, pt_path: Path, json_path: Path) -> None:
    """Write a state dict and its JSON sidecar atomically (temporary file + ``os.replace``).

    The sidecar is written last, so a checkpoint counts as complete only when it exists.
    """
    atomic_write_bytes(Path(pt_path), lambda handle: torch.save(state_dict, handle))
    text = json.dumps(info, indent=2, sort_keys=True).encode()
    atomic_write_bytes(Path(json_path), lambda handle: handle.write(text))


def load_checkpoint(pt_path: Path, json_path: Path, fingerprint: str) -> tuple[dict, dict] | None:
    """Load a finished checkpoint made for ``fingerprint``, or return None to retrain.

    The state dict is read with ``torch.load(..., weights_only=True)`` on the CPU. A missing
    sidecar (interrupted run) or one whose fingerprint differs (other data or settings) makes
    the checkpoint stale.
    """
    pt_path, json_path = Path(pt_path), Path(json_path)
    if not (pt_path.is_file() and json_path.is_file()):
        return None
    try:
        info = json.loads(json_path.read_text())
    except (OSError, ValueError):
        LOGGER.warning("Checkpoint sidecar %s is unreadable; retraining that model.", json_path)
        return None
    if info.get("fingerprint") != fingerprint:
        LOGGER.warning(
            "Checkpoint %s was trained on other data or settings; retraining that model.", pt_path
        )
        return None
    try:
        state = torch.load(pt_path, map_location="cpu", weights_only=True)
    except Exception as err:  # corrupt file: retrain rather than fail the whole run
        LOGGER.warning("Checkpoint %s is unreadable (%s); retraining that model.", pt_path, err)
        return None
    return state, info
