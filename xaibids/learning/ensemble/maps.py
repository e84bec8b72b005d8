"""Out-of-fold attribution: a fold's test samples streamed through all its models, each batch
stabilized before the next (Lewis et al. 2023, §2.4), with the streaming stability statistics
and each model's feature importance.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from xaibids.attribution.ig import ADAPTIVE, adaptive_integrated_gradients, make_baseline
from xaibids.attribution.registry import METHODS, attribute, check_supported, map_keys, resolve_params
from xaibids.attribution.reliability import (
    pairwise_model_correlation,
    pearson_per_sample,
)
from xaibids.attribution.stabilize import (
    make_positive,
    stabilize,
)
from xaibids.learning.dataset import TimeseriesDataset
from xaibids.learning.ensemble.config import (
    AUTO_STEPS, EnsembleConfig, attribution_settings, method_params,
)
from xaibids.learning.ensemble.fitting import _build_trained, _load_state
from xaibids.learning.ensemble.folds import (
    _check_fold, _check_inputs, dataset_hash, _FoldPlan, _plan_fold, _prepare_device,
    ensemble_folds,
)

LOGGER = logging.getLogger("xaibids")

#: Test samples of a fold on which ``ig_steps=0`` measures the completeness error.
IG_CALIBRATION_SAMPLES = 32


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
    plan = _plan_fold(dataset, config, folds, fold, dataset_hash(dataset))
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
