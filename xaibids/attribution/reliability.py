"""Reliability report card of attribution maps (the method papers (Lewis et al. 2023, Strock et al. 2025, Kan et al. 2020, Thibeau-Sutre et al. 2023, Gotsopoulos et al. 2018)).

Plain functions returning :class:`pandas.DataFrame`; only :func:`write_reliability` writes files.

- Stability across seeds (Lewis et al. 2023, §2.4): computed while the ensemble streams its maps
  (:func:`xaibids.learning.ensemble.attribute_fold`) with :func:`pairwise_model_correlation` and
  :func:`pearson_per_sample`; the result is ``EnsembleResult.stability``.
- Method agreement (Strock et al. 2025, Fig 6): :func:`method_agreement`, the mean over samples of the
  Pearson correlation between two methods' stabilized maps of a sample; :func:`method_dice`, the
  Dice coefficient (Kan et al. 2020, Table 3) of the maps binarized at a documented level.
- Baseline agreement of IG (Strock et al. 2025, Fig 7): :func:`baseline_agreement`.
- Model-parameter randomization (Thibeau-Sutre et al. 2023; Adebayo et al., 2018, §3.1 "cascading
  randomization"): :func:`randomization_check`.
- Faithfulness and robustness: :func:`faithfulness` -- infidelity (Yeh et al., 2019, Def. 2.1)
  and max-sensitivity (Yeh et al., 2019, Def. 3.1) via :mod:`captum.metrics`, and the IG
  completeness error (Sundararajan et al., 2017, Prop. 1; Captum's convergence delta).
- Permutation-based significance and reproducibility (Gotsopoulos et al. 2018, §2.9):
  :func:`xaibids.learning.ensemble.permutation_test` trains the label-shuffled ensembles and
  calls :func:`permutation_reproducibility` here.

Dice threshold (Kan et al. 2020, Table 3)
---------------------------------
Kan et al. 2020 binarizes each method's map with its own absolute threshold (0.65 for Grad-CAM and
Meaningful Perturbations, 0.04 for Guided Backpropagation) because the methods' value ranges
differ. Absolute levels do not transfer between methods, models and datasets, so we keep the
seed's intent -- comparable masks across methods -- with a rank threshold: the ``top_fraction``
(default 10 %) of a map's elements with the largest absolute values form its mask (exactly
``max(1, round(top_fraction * n))`` elements; ties broken by position). Both masks then have
the same size ``k`` and the Dice coefficient ``2 |A ∩ B| / (|A| + |B|)`` equals ``|A ∩ B| / k``.
Kan et al. 2020 also chooses its thresholds "to nullify all values outside the brain": for volume maps
pass the brain mask as ``mask`` (to :func:`method_dice` and :func:`method_agreement`), so that
only voxels inside it are ranked and compared.

Volume maps
-----------
Every function here takes maps of any shape with a leading sample axis; the maps of a volume
model (``cnn3d``) are ``(n_samples, 1, X*Y*Z)`` -- one "time point" -- and are compared voxel by
voxel. The randomization check re-initializes ``Conv3d``, ``BatchNorm3d`` and ``Linear`` layers
alike (a batch norm's ``reset_parameters`` restores its identity affine map and running
statistics, its initial state).
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from xaibids.attribution.ig import completeness_terms
from xaibids.attribution.registry import attribute, map_keys, resolve_params
from xaibids.fileio import atomic_path

__all__ = [
    "RELIABILITY_FILES",
    "baseline_agreement",
    "dice",
    "faithfulness",
    "method_agreement",
    "method_dice",
    "pairwise_model_correlation",
    "pearson_per_sample",
    "permutation_reproducibility",
    "randomization_check",
    "randomization_layers",
    "relmat",
    "top_mask",
    "write_reliability",
]

#: File names :func:`write_reliability` writes, by table name (``permutation`` is a dict of
#: tables by map key, written to ``desc-<key>_permutation.tsv``).
RELIABILITY_FILES = {
    "metrics": "desc-reliability_metrics.tsv",
    "method_agreement": "desc-methodAgreement_relmat.tsv",
    "method_dice": "desc-methodDice_relmat.tsv",
    "baseline_agreement": "desc-baselineAgreement_relmat.tsv",
    "randomization": "desc-randomization_metrics.tsv",
    "permutation": "desc-{key}_permutation.tsv",
}


# --------------------------------------------------------------------------- basic statistics


def _flat(maps: np.ndarray) -> np.ndarray:
    maps = np.asarray(maps, dtype=np.float64)
    if maps.ndim < 2:
        raise ValueError(f"Maps need a leading sample axis, got shape {maps.shape}.")
    return maps.reshape(len(maps), -1)


def pearson_per_sample(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson correlation of the flattened maps ``a[i]`` and ``b[i]`` for every sample ``i``.

    Parameters
    ----------
    a, b : ndarray of shape (n_samples, ...)
        Maps of the same shape.

    Returns
    -------
    ndarray of shape (n_samples,)
        NaN where either map is constant.
    """
    a, b = _flat(a), _flat(b)
    if a.shape != b.shape:
        raise ValueError(f"pearson_per_sample needs maps of equal shape, got {a.shape} and {b.shape}.")
    a = a - a.mean(axis=1, keepdims=True)
    b = b - b.mean(axis=1, keepdims=True)
    den = np.sqrt((a * a).sum(axis=1) * (b * b).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (a * b).sum(axis=1) / den
    r[den == 0] = np.nan
    return np.clip(r, -1.0, 1.0)


def pairwise_model_correlation(maps: np.ndarray) -> float:
    """Mean Pearson correlation over all pairs of models' maps of one sample (Lewis et al. 2023, §2.4).

    Parameters
    ----------
    maps : ndarray of shape (n_models, ...)
        One sample's maps, one per model.

    Returns
    -------
    float
        Mean of the ``n_models * (n_models - 1) / 2`` pairwise correlations (pairs with a constant
        map are left out); NaN with fewer than two models.
    """
    z = _flat(maps)
    if len(z) < 2:
        return float("nan")
    z = z - z.mean(axis=1, keepdims=True)
    norm = np.sqrt((z * z).sum(axis=1))
    ok = norm > 0
    z = z[ok] / norm[ok, None]
    if len(z) < 2:
        return float("nan")
    c = z @ z.T
    iu = np.triu_indices(len(z), k=1)
    return float(np.mean(np.clip(c[iu], -1.0, 1.0)))


def top_mask(maps: np.ndarray, top_fraction: float = 0.1) -> np.ndarray:
    """Binary masks of the ``top_fraction`` largest absolute values of each sample's map.

    Exactly ``max(1, round(top_fraction * n))`` elements per sample are True (ties broken by
    position, first come first); see the module docstring for this reading of Kan et al. 2020.
    """
    if not (isinstance(top_fraction, (int, float)) and 0 < top_fraction <= 1):
        raise ValueError(f"top_fraction must be in (0, 1], got {top_fraction!r}.")
    flat = np.abs(_flat(maps))
    k = max(1, int(round(top_fraction * flat.shape[1])))
    order = np.argsort(-flat, axis=1, kind="stable")[:, :k]
    mask = np.zeros(flat.shape, dtype=bool)
    np.put_along_axis(mask, order, True, axis=1)
    return mask.reshape(np.shape(maps))


def dice(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Dice coefficient ``2|A∩B| / (|A|+|B|)`` of boolean masks per sample (NaN if both empty)."""
    a, b = _flat(a).astype(bool), _flat(b).astype(bool)
    if a.shape != b.shape:
        raise ValueError(f"dice needs masks of equal shape, got {a.shape} and {b.shape}.")
    den = a.sum(axis=1) + b.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, 2.0 * (a & b).sum(axis=1) / den, np.nan)


def relmat(values: np.ndarray, names: list[str]) -> pd.DataFrame:
    """A square relation matrix as a table: column ``method``, then one column per name."""
    values = np.asarray(values, dtype=float)
    if values.shape != (len(names), len(names)):
        raise ValueError(f"relmat needs a {len(names)}x{len(names)} matrix, got {values.shape}.")
    table = pd.DataFrame(values, columns=list(names))
    table.insert(0, "method", list(names))
    return table


def _check_maps(maps: dict, keys) -> list[str]:
    if not isinstance(maps, dict) or not maps:
        raise ValueError("Expected a non-empty dict of maps by method key.")
    keys = list(maps) if keys is None else list(keys)
    missing = [k for k in keys if k not in maps]
    if missing:
        raise ValueError(f"No maps for {missing}; available: {', '.join(maps)}.")
    shapes = {np.shape(maps[k]) for k in keys}
    if len(shapes) != 1:
        raise ValueError(f"Maps of different shapes cannot be compared: {sorted(shapes)}.")
    return keys


def _element_mask(mask, sample_shape: tuple) -> np.ndarray | None:
    """A boolean mask of one sample's map, broadcast to ``sample_shape`` (None: everything)."""
    if mask is None:
        return None
    arr = np.asarray(mask)
    if arr.dtype != bool:
        if not np.all(np.isin(arr, (0, 1))):
            raise ValueError("mask must be boolean (or 0/1): True for the elements to compare.")
        arr = arr.astype(bool)
    n = int(np.prod(sample_shape))
    if arr.size == n and arr.shape != tuple(sample_shape):
        arr = arr.reshape(sample_shape)
    try:
        arr = np.broadcast_to(arr, sample_shape)
    except ValueError:
        raise ValueError(f"mask of shape {np.shape(mask)} does not fit maps of shape {tuple(sample_shape)} "
                         "per sample (e.g. a flattened brain mask of the volume grid).") from None
    if not arr.any():
        raise ValueError("mask selects no element of the maps.")
    return arr


def _select(maps: dict, keys: list[str], mask) -> dict:
    """Maps flattened to ``(n_samples, n_selected)`` elements (all elements without ``mask``)."""
    sample_shape = np.shape(maps[keys[0]])[1:]
    m = _element_mask(mask, sample_shape)
    if m is None:
        return maps
    flat = m.reshape(-1)
    return {k: _flat(maps[k])[:, flat] for k in keys}


def _square(maps: dict, keys: list[str], pairwise) -> pd.DataFrame:
    n = len(keys)
    out = np.eye(n)
    for i in range(n):
        for j in range(i + 1, n):
            out[i, j] = out[j, i] = float(np.nanmean(pairwise(maps[keys[i]], maps[keys[j]])))
    return relmat(out, keys)


def method_agreement(maps: dict, keys=None, level: str = "sample", mask=None) -> pd.DataFrame:
    """Correlation matrix between methods' maps (Strock et al. 2025, Fig 6).

    Parameters
    ----------
    maps : dict of str to ndarray of shape (n_samples, n_timepoints, n_features)
        Stabilized maps by key (``EnsembleResult.maps``); for volume models
        ``(n_samples, 1, X*Y*Z)``.
    keys : list of str, optional
        Which maps, in this order (default: all).
    level : {"sample", "feature"}, default="sample"
        ``sample``: mean over samples of the per-sample Pearson r of the flattened maps.
        ``feature``: Pearson r of the group-level feature profiles (maps summed over time and
        averaged over samples), the region-level comparison of Strock et al. 2025 (for volumes: the
        voxel profile of the mean map).
    mask : array of bool, optional
        Elements of one sample's map to compare, of shape ``(n_timepoints, n_features)`` or
        broadcastable to it (e.g. the flattened brain mask ``(X*Y*Z,)`` of volume maps); at the
        ``feature`` level a feature is kept where the mask is True at any time point. Default:
        all elements.

    Returns
    -------
    pandas.DataFrame
        Square relmat: column ``method`` then one column per key; 1 on the diagonal.
    """
    keys = _check_maps(maps, keys)
    if level == "sample":
        return _square(_select(maps, keys, mask), keys, pearson_per_sample)
    if level == "feature":
        profiles = {k: np.asarray(maps[k], dtype=float).sum(axis=1).mean(axis=0)[None] for k in keys}
        sample_shape = np.shape(maps[keys[0]])[1:]
        m = _element_mask(mask, sample_shape)
        if m is not None:
            features = m.reshape(sample_shape[0], -1).any(axis=0) if len(sample_shape) > 1 else m
            profiles = {k: v[:, features] for k, v in profiles.items()}
        return _square(profiles, keys, pearson_per_sample)
    raise ValueError(f"level must be 'sample' or 'feature', got {level!r}.")


def method_dice(maps: dict, keys=None, top_fraction: float = 0.1, mask=None) -> pd.DataFrame:
    """Dice coefficients between methods' thresholded maps (Kan et al. 2020, Table 3).

    Each sample's map is binarized to its ``top_fraction`` largest absolute values
    (:func:`top_mask`; the module docstring explains this threshold); the table holds the mean
    over samples of the per-sample Dice of two methods' masks. ``mask`` (as in
    :func:`method_agreement`, e.g. the flattened brain mask of volume maps) restricts both the
    ranking and the comparison to its elements (Kan et al. 2020 thresholds only inside the brain).
    """
    keys = _check_maps(maps, keys)
    selected = _select(maps, keys, mask)
    masks = {k: top_mask(selected[k], top_fraction) for k in keys}
    return _square(masks, keys, dice)


def baseline_agreement(maps: dict, level: str = "sample") -> pd.DataFrame:
    """Correlation matrix between IG maps of different baselines (Strock et al. 2025, Fig 7).

    Uses the keys ``igZero``, ``igMean``, ``igMedian``, ``igRandom`` present in ``maps`` (the
    ensemble makes them when several baselines are requested); at least two are needed.
    """
    keys = [k for k, _, _ in map_keys(["ig"], ("zero", "mean", "median", "random")) if k in maps]
    if len(keys) < 2:
        raise ValueError(
            "baseline_agreement needs IG maps of at least two baselines (keys igZero, igMean, "
            f"igMedian, igRandom); got {', '.join(maps) or 'none'}."
        )
    return method_agreement(maps, keys, level=level)


# --------------------------------------------------------------------------- randomization check


def randomization_layers(model: torch.nn.Module) -> list[str]:
    """Names of the layers with parameters, from the output layer down (Adebayo et al., 2018).

    The order is the reverse of the modules' registration order, which for xaibids' models is
    the order of the forward pass.
    """
    names = [name for name, m in model.named_modules()
             if name and any(True for _ in m.parameters(recurse=False))]
    if not names:
        raise ValueError(f"{type(model).__name__} has no layer with parameters to randomize.")
    return names[::-1]


def _spearman_abs(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    from scipy.stats import rankdata

    ra = rankdata(np.abs(_flat(a)), axis=1)
    rb = rankdata(np.abs(_flat(b)), axis=1)
    return pearson_per_sample(ra, rb)


def randomization_check(
    model: torch.nn.Module,
    inputs: torch.Tensor,
    target,
    methods=("ig",),
    baseline=0.0,
    method_params: dict | None = None,
    seed: int = 0,
) -> pd.DataFrame:
    """Cascading model-parameter randomization (Thibeau-Sutre et al. 2023; Adebayo et al., 2018, §3.1).

    Starting from the trained model, the layers with parameters are re-initialized one at a time
    from the output layer down (each with its own ``reset_parameters``, i.e. drawn from its
    initialization distribution), cumulatively. At every step the maps of the randomized copy are
    compared with those of the trained model by the Spearman rank correlation of the absolute
    values (Adebayo et al. use absolute maps), per sample, averaged over samples. A method that
    depends on the learned parameters -- a method that passes the check -- shows a drop.

    Parameters
    ----------
    model : torch.nn.Module
        Trained classifier (not modified: a copy is randomized).
    inputs : torch.Tensor of shape (batch, n_timepoints, n_features)
        Samples to explain (standardized test samples); ``(batch, 1, X*Y*Z)`` for volume models.
    target : torch.Tensor of shape (batch,) or int
        Explained class (the true class in xaibids).
    methods : sequence of str
        Keys of :data:`~xaibids.attribution.METHODS`.
    baseline : float or torch.Tensor, default=0.0
        Baseline of baseline-taking methods.
    method_params : dict of str to dict, optional
        Parameters per method (as for :func:`~xaibids.attribution.attribute`).
    seed : int, default=0
        Seed of the re-initialization (step ``s`` uses ``seed + s``).

    Returns
    -------
    pandas.DataFrame
        Columns ``method``, ``step`` (0 = trained model, then 1..n_layers), ``layer`` (the layer
        randomized at this step; ``"none"`` at step 0), ``spearman`` (mean over samples),
        ``spearman_sd`` (SD over samples) and ``n_samples``.
    """
    method_params = dict(method_params or {})
    for m in methods:
        resolve_params(m, **method_params.get(m, {}))
    model = model.eval()
    original = {m: attribute(m, model, inputs, target, baseline, **method_params.get(m, {})).cpu().numpy()
                for m in methods}
    rows = []
    for m in methods:
        r = _spearman_abs(original[m], original[m])
        rows.append({"method": m, "step": 0, "layer": "none", "spearman": float(np.nanmean(r)),
                     "spearman_sd": float(np.nanstd(r)), "n_samples": len(r)})
    randomized = copy.deepcopy(model).eval()
    modules = dict(randomized.named_modules())
    for step, name in enumerate(randomization_layers(model), start=1):
        layer = modules[name]
        if not hasattr(layer, "reset_parameters"):
            raise ValueError(f"Layer {name!r} ({type(layer).__name__}) cannot be re-initialized.")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(seed) + step)
            layer.reset_parameters()
        for m in methods:
            maps = attribute(m, randomized, inputs, target, baseline, **method_params.get(m, {})).cpu().numpy()
            r = _spearman_abs(original[m], maps)
            rows.append({"method": m, "step": step, "layer": name, "spearman": float(np.nanmean(r)),
                         "spearman_sd": float(np.nanstd(r)), "n_samples": len(r)})
    return pd.DataFrame(rows, columns=["method", "step", "layer", "spearman", "spearman_sd", "n_samples"])


# --------------------------------------------------------------------------- faithfulness


def faithfulness(
    model: torch.nn.Module,
    inputs: torch.Tensor,
    target,
    methods=("ig",),
    baseline=0.0,
    method_params: dict | None = None,
    n_perturb_samples: int = 10,
    noise_sd: float = 0.1,
    sensitivity_radius: float = 0.02,
    seed: int = 0,
) -> pd.DataFrame:
    """Infidelity, max-sensitivity and the IG completeness error of each method.

    - ``infidelity`` (Yeh et al., 2019, Def. 2.1; :func:`captum.metrics.infidelity`):
      ``E_I[(I · Φ(x) - (f(x) - f(x - I)))²]`` with Gaussian perturbations ``I`` of SD
      ``noise_sd`` (standardized units), ``f`` the target logit, ``n_perturb_samples`` draws per
      sample, unnormalized; mean over samples. It suits maps that approximate a local linear
      model (gradients, non-multiplied IG); multiplicative maps are scored as they are.
    - ``max_sensitivity`` (Yeh et al., 2019, Def. 3.1; :func:`captum.metrics.sensitivity_max`):
      the largest ``||Φ(x + δ) - Φ(x)|| / ||Φ(x)||`` over ``n_perturb_samples`` perturbations
      drawn uniformly from the L∞ ball of radius ``sensitivity_radius``; mean over samples.
    - ``completeness_error`` (IG only): mean ``|Σ IG(x) - (f(x) - f(baseline))|`` of the
      *input-multiplied* IG with the method's integration rule and steps (Captum's
      ``return_convergence_delta``, computed by :func:`xaibids.attribution.ig.completeness_terms`;
      the Lewis et al. 2023 IG without multiplication has no completeness property), and
      ``relative_completeness_error``, that divided by mean ``|f(x) - f(baseline)|`` (NaN when
      that is 0).

    Parameters
    ----------
    model, inputs, target, methods, baseline, method_params
        As in :func:`randomization_check`.
    n_perturb_samples : int, default=10
    noise_sd : float, default=0.1
    sensitivity_radius : float, default=0.02
        Captum's default radius.
    seed : int, default=0
        Seed of the perturbations (a fixed generator: the same noise on every call).

    Returns
    -------
    pandas.DataFrame
        Long table, columns ``method``, ``metric``, ``value``, ``n_samples``.
    """
    from captum.metrics import infidelity, sensitivity_max

    if isinstance(n_perturb_samples, bool) or not isinstance(n_perturb_samples, int) or n_perturb_samples < 1:
        raise ValueError(f"n_perturb_samples must be a positive integer, got {n_perturb_samples!r}.")
    for name, value in (("noise_sd", noise_sd), ("sensitivity_radius", sensitivity_radius)):
        if not (isinstance(value, (int, float)) and value > 0):
            raise ValueError(f"{name} must be positive, got {value!r}.")
    method_params = dict(method_params or {})
    model = model.eval()
    n = len(inputs)
    rows = []
    for m in methods:
        params = method_params.get(m, {})
        resolve_params(m, **params)
        attr = attribute(m, model, inputs, target, baseline, **params)
        generator = torch.Generator(device=inputs.device).manual_seed(int(seed))

        def perturb(x):
            noise = noise_sd * torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
            return noise, x - noise

        inf = infidelity(model, perturb, inputs, attr, target=target, n_perturb_samples=n_perturb_samples,
                         normalize=False)
        rows.append({"method": m, "metric": "infidelity", "value": float(inf.mean()), "n_samples": n})

        def explain(x, target=None):
            # Captum passes the inputs as a 1-tuple and expects the same structure back
            single = isinstance(x, tuple)
            out = attribute(m, model, x[0] if single else x, target, baseline, **params)
            return (out,) if single else out

        with torch.random.fork_rng(devices=[inputs.device] if inputs.device.type == "cuda" else []):
            torch.manual_seed(int(seed))
            sens = sensitivity_max(explain, inputs, target=target, n_perturb_samples=n_perturb_samples,
                                   perturb_radius=float(sensitivity_radius))
        rows.append({"method": m, "metric": "max_sensitivity", "value": float(sens.mean()), "n_samples": n})
        if m == "ig":
            full = resolve_params("ig", **params)
            # ig.completeness_error's own computation, taken per sample because this table also
            # reports the absolute error (mean |delta|), not only the relative one
            delta, change = completeness_terms(
                model, inputs, target, baseline, n_steps=full["n_steps"], method=full["method"],
                internal_batch_size=full["internal_batch_size"],
                completeness_tolerance=full["completeness_tolerance"],
            )
            gap = change.abs()
            err = float(delta.abs().mean())
            rows.append({"method": m, "metric": "completeness_error", "value": err, "n_samples": n})
            rel = err / float(gap.mean()) if float(gap.mean()) > 0 else float("nan")
            rows.append({"method": m, "metric": "relative_completeness_error", "value": rel, "n_samples": n})
    return pd.DataFrame(rows, columns=["method", "metric", "value", "n_samples"])


# --------------------------------------------------------------------------- permutations (Gotsopoulos et al. 2018)


def permutation_reproducibility(
    real: np.ndarray,
    null: np.ndarray,
    reproducibility_null: np.ndarray,
    alpha: float = 0.05,
    feature_names: list[str] | None = None,
    classes: list[str] | None = None,
) -> tuple[pd.DataFrame, int]:
    """Per-feature null thresholds and reproducibility counts (Gotsopoulos et al. 2018, §2.9.1-2.9.3).

    Parameters
    ----------
    real : ndarray of shape (n_runs, n_classes, n_features)
        Importance of each feature for each class in each real (correctly labelled) run.
    null : ndarray of shape (n_null_runs, n_classes, n_features)
        The same from the label-permuted runs that give the null distribution (§2.9.1).
    reproducibility_null : ndarray of shape (n_sets, n_runs, n_classes, n_features)
        The same from a *second* set of permuted runs, in sets of ``n_runs`` runs like the real
        runs (§2.9.3, "reproducibility permutations").
    alpha : float, default=0.05
        Significance level: a feature is significant in a run when its importance exceeds the
        ``1 - alpha`` quantile of its null distribution (§2.9.2).
    feature_names, classes : list of str, optional
        Labels of the output rows (default ``feature-<j>`` / ``<c>``).

    Returns
    -------
    table : pandas.DataFrame
        One row per class and feature: ``class``, ``feature``, ``null_threshold``,
        ``reproducibility`` (number of real runs in which the feature is significant),
        ``reproducible`` (``reproducibility > reproducibility_threshold``),
        ``reproducibility_threshold`` and ``n_runs``.
    reproducibility_threshold : int
        The maximum reproducibility reached by any feature (and class) in any set of the second
        permutations (§2.9.3): "the lowest reproducibility value where no voxels appear
        significant" is one above it, so a real feature is reproducible when it exceeds it.
    """
    real, null = np.asarray(real, dtype=float), np.asarray(null, dtype=float)
    rnull = np.asarray(reproducibility_null, dtype=float)
    if real.ndim != 3 or null.ndim != 3 or rnull.ndim != 4:
        raise ValueError("permutation_reproducibility needs real (runs, classes, features), null "
                         "(runs, classes, features) and reproducibility_null (sets, runs, classes, features).")
    if null.shape[1:] != real.shape[1:] or rnull.shape[1:] != real.shape:
        raise ValueError(f"Inconsistent shapes: real {real.shape}, null {null.shape}, "
                         f"reproducibility_null {rnull.shape}.")
    if not (isinstance(alpha, float) and 0 < alpha < 1):
        raise ValueError(f"alpha must be a float in (0, 1), got {alpha!r}.")
    if len(null) < 1 or len(rnull) < 1:
        raise ValueError("permutation_reproducibility needs at least one null run and one reproducibility set.")
    threshold = np.quantile(null, 1 - alpha, axis=0)  # (classes, features)
    reproducibility = (real > threshold).sum(axis=0)
    repro_threshold = int((rnull > threshold).sum(axis=1).max())
    n_classes, n_features = real.shape[1:]
    feature_names = feature_names or [f"feature-{j}" for j in range(n_features)]
    classes = classes or [str(c) for c in range(n_classes)]
    if len(feature_names) != n_features or len(classes) != n_classes:
        raise ValueError("feature_names / classes do not match the importance arrays.")
    rows = [{"class": classes[c], "feature": feature_names[j], "null_threshold": float(threshold[c, j]),
             "reproducibility": int(reproducibility[c, j]),
             "reproducible": bool(reproducibility[c, j] > repro_threshold),
             "reproducibility_threshold": repro_threshold, "n_runs": len(real)}
            for c in range(n_classes) for j in range(n_features)]
    return pd.DataFrame(rows), repro_threshold


# --------------------------------------------------------------------------- output


def write_reliability(group_dir: str | Path, tables: dict) -> list[Path]:
    """Write reliability tables as tab-separated TSVs (``n/a`` for missing) into ``group_dir``.

    Parameters
    ----------
    group_dir : str or Path
        The ``group/`` folder of the output dataset (created when missing).
    tables : dict
        Any of the keys of :data:`RELIABILITY_FILES`: ``metrics`` (long table with at least
        ``method``, ``metric``, ``value``), ``method_agreement``, ``method_dice``,
        ``baseline_agreement`` (relmats with a first column ``method``), ``randomization``
        and ``permutation`` (a dict of tables by map key). A value of None is skipped.

    Returns
    -------
    list of Path
        The files written.
    """
    unknown = sorted(set(tables) - set(RELIABILITY_FILES))
    if unknown:
        raise ValueError(f"write_reliability got unknown table(s) {unknown}; known: {', '.join(RELIABILITY_FILES)}.")
    group_dir = Path(group_dir)
    group_dir.mkdir(parents=True, exist_ok=True)
    required = {"metrics": ["method", "metric", "value"], "randomization": ["method", "step", "layer", "spearman"]}
    written = []

    def write(table, name):
        if not isinstance(table, pd.DataFrame):
            raise ValueError(f"write_reliability: {name} must be a pandas DataFrame.")
        path = group_dir / name
        with atomic_path(path) as tmp:
            table.to_csv(tmp, sep="\t", index=False, na_rep="n/a")
        written.append(path)

    for key, table in tables.items():
        if table is None:
            continue
        if key == "permutation":
            if not isinstance(table, dict):
                raise ValueError("write_reliability: permutation must be a dict of tables by map key.")
            for map_key, sub in table.items():
                if not str(map_key).isalnum():
                    raise ValueError(f"Map key {map_key!r} is not alphanumeric (BIDS desc- entity).")
                write(sub, RELIABILITY_FILES["permutation"].format(key=map_key))
            continue
        if key in required:
            missing = [c for c in required[key] if c not in getattr(table, "columns", [])]
            if missing:
                raise ValueError(f"write_reliability: {key} table lacks column(s) {missing}.")
        elif list(getattr(table, "columns", []))[:1] != ["method"]:
            raise ValueError(f"write_reliability: {key} must be a relmat with first column 'method'.")
        write(table, RELIABILITY_FILES[key])
    return written
