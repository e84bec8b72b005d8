"""Stabilization of saliency maps over an ensemble of seeds (Lewis et al. 2023, §2.4).

Hand-written (no library implements it). Lewis et al. 2023, §2.4 and figure 3: single models' maps "vary
widely with the initial randomization", so many models are trained with different random
initializations; for each (test) sample the map of every model is computed, the average map over
models is formed, and "we select the map that is closest (the distances are weighted by the loss
for that subject/model pair to give more importance to better performing models) to the average
map over all models for that sample, using Euclidean distance. Then, the selected maps are
normalized by the sum." Maps are passed through ReLU or an absolute value "to avoid relying on
both positive and negative derivatives" (§2.5-2.6).

Reading of the weighting
------------------------
Figure 3 says the distance "is weighted by the loss of that subject/model pair, giving more
importance (shorter distances) to more accurate model/subject pairs". We therefore *multiply*
the Euclidean distance of model ``m``'s map to the mean map by that model's loss on that sample
(the cross-entropy of its prediction for the sample's true class) and pick the model with the
smallest product: a low loss shrinks the distance. The mean map and the distances use the signed
(raw) maps; the absolute value / ReLU and the normalization by the sum are applied to the selected
map afterwards, in the order of the seed's text.
"""

from __future__ import annotations

import numpy as np

STABILIZE_METHODS = ("closest", "mean", "median", "none")
POSITIVE_METHODS = ("abs", "relu", "none")


def make_positive(a: np.ndarray, positive: str = "abs") -> np.ndarray:
    """Absolute value or ReLU of a map (Lewis et al. 2023, §2.5-2.6); ``none`` keeps the signed map.

    Signed maps are what Strock et al. 2025's ROI score (``|median over time|``) needs: it relies on
    attributions of opposite sign cancelling over time.
    """
    if positive == "abs":
        return np.abs(a)
    if positive == "relu":
        return np.maximum(a, 0)
    if positive == "none":
        return a
    raise ValueError(f"positive must be one of {', '.join(POSITIVE_METHODS)}, got {positive!r}.")


def normalize_sum(a: np.ndarray) -> np.ndarray:
    """Divide a map by the sum of its magnitudes (Lewis et al. 2023, §2.4: by its sum, for the
    non-negative maps there); an all-zero map stays zero."""
    total = float(np.sum(np.abs(a)))
    if total > 0 and np.isfinite(total):
        return a / total
    return np.zeros_like(a)


def stabilize(
    maps: np.ndarray,
    losses: np.ndarray | None,
    how: str = "closest",
    positive: str = "abs",
) -> tuple[np.ndarray, int | None]:
    """Stabilize one sample's attribution maps over the models of an ensemble (Lewis et al. 2023, §2.4).

    Parameters
    ----------
    maps : ndarray of shape (n_models, n_timepoints, n_features)
        The sample's raw (signed) maps, one per model. Any number of trailing dimensions
        works; the first axis indexes models.
    losses : ndarray of shape (n_models,) or None
        Each model's loss on this sample (cross-entropy for its true class); non-negative and
        finite. Required for ``how="closest"``, ignored otherwise.
    how : {"closest", "mean", "median", "none"}, default="closest"
        ``closest``: the model map with the smallest loss-weighted Euclidean distance
        ``losses[m] * ||maps[m] - mean(maps)||`` to the mean map (Lewis et al. 2023, §2.4; see the module
        docstring for this reading of the weighting); ties go to the smaller unweighted
        distance, then to the lowest index.
        ``mean`` / ``median``: the element-wise mean / median over models.
        ``none``: the first model's map (a single model, for comparison).
    positive : {"abs", "relu", "none"}, default="abs"
        Applied to the chosen map before normalizing it by its sum (``none``: signed map,
        normalized by the sum of its magnitudes).

    Returns
    -------
    stabilized : ndarray of shape (n_timepoints, n_features)
        Float64 map whose magnitudes sum to 1, non-negative unless ``positive="none"`` (all
        zeros if the map is identically zero).
    selected : int or None
        Index of the selected model for ``closest`` (``0`` for ``none``), None for ``mean``
        and ``median``.
    """
    maps = np.asarray(maps, dtype=np.float64)
    if maps.ndim < 2 or maps.shape[0] < 1:
        raise ValueError(
            f"stabilize needs maps of shape (n_models, n_timepoints, n_features), got {maps.shape}."
        )
    if how not in STABILIZE_METHODS:
        raise ValueError(f"how must be one of {', '.join(STABILIZE_METHODS)}, got {how!r}.")
    if positive not in POSITIVE_METHODS:
        raise ValueError(f"positive must be one of {', '.join(POSITIVE_METHODS)}, got {positive!r}.")
    if not np.all(np.isfinite(maps)):
        raise ValueError("stabilize got maps with NaN or infinite values.")
    selected: int | None
    if how == "closest":
        if losses is None:
            raise ValueError("stabilize(how='closest') needs the per-model losses of the sample.")
        losses = np.asarray(losses, dtype=np.float64)
        if losses.shape != (maps.shape[0],):
            raise ValueError(
                f"stabilize needs one loss per model: maps have {maps.shape[0]} models, "
                f"losses have shape {losses.shape}."
            )
        if not np.all(np.isfinite(losses)) or np.any(losses < 0):
            raise ValueError("stabilize needs finite, non-negative losses.")
        mean_map = maps.mean(axis=0)
        distances = np.sqrt(np.sum((maps - mean_map) ** 2, axis=tuple(range(1, maps.ndim))))
        # ties (e.g. several models with a loss that underflowed to 0) go to the smaller
        # distance, then to the lower index
        selected = int(np.lexsort((np.arange(len(losses)), distances, losses * distances))[0])
        chosen = maps[selected]
    elif how == "mean":
        chosen, selected = maps.mean(axis=0), None
    elif how == "median":
        chosen, selected = np.median(maps, axis=0), None
    else:
        chosen, selected = maps[0], 0
    return normalize_sum(make_positive(chosen, positive)), selected
