"""Integrated Gradients through Captum, by default without input multiplication (seed 000, §2.3).

Seed 000, §2.3: IG integrates the gradient of the *correct* class along a straight path from a
baseline to the input, with a zero-valued "blank" baseline, and -- unlike the original
formulation -- the integrated gradients are *not* multiplied element-wise by the input, "to ensure
no information from the input is enforced upon the gradient maps". Captum's
``IntegratedGradients(model, multiply_by_inputs=False)`` computes exactly this (its default
Gauss-Legendre rule approximates the path integral with ``n_steps`` points).

Seed 001 (Methods, "Integrated Gradients") additionally compares mean, median and random
baselines; :func:`make_baseline` builds those from reference (training) data.
"""

from __future__ import annotations

import numpy as np
import torch
from captum.attr import IntegratedGradients

BASELINES = ("zero", "mean", "median", "random")

#: Integration rules of Captum's ``IntegratedGradients.attribute(method=...)``.
IG_RULES = ("gausslegendre", "riemann_trapezoid", "riemann_left", "riemann_right", "riemann_middle")


def make_baseline(
    name: str, reference: np.ndarray | None = None, seed: int = 0
) -> float | torch.Tensor:
    """Build an IG baseline by name (seed 000 §2.3; seed 001 Methods).

    Parameters
    ----------
    name : {"zero", "mean", "median", "random"}
        ``zero``: the all-zero "blank" input (seed 000). ``mean`` / ``median``: one scalar, the
        mean / median of the reference signal across features, time points and samples
        (seed 001, baselines (1)-(2)). ``random``: one ``(time, features)`` draw from a normal
        distribution centred on zero with the variance of the reference (seed 001, (4)).
    reference : ndarray of shape (n_samples, n_timepoints, n_features), optional
        Data the baseline is computed from -- the *training* samples of a fold, never the
        test samples. Needed for every baseline except ``zero``. NaNs are ignored.
    seed : int, default=0
        Seed of the ``random`` baseline.

    Returns
    -------
    float or torch.Tensor
        A scalar (``zero``, ``mean``, ``median``) or a float32 tensor of shape
        ``(1, n_timepoints, n_features)`` (``random``), either of which Captum broadcasts
        over the batch.
    """
    if name not in BASELINES:
        raise ValueError(f"Unknown IG baseline {name!r}; choose one of {', '.join(BASELINES)}.")
    if name == "zero":
        return 0.0
    if reference is None:
        raise ValueError(f"The {name!r} IG baseline needs reference data (the training samples).")
    reference = np.asarray(reference, dtype=float)
    if reference.ndim != 3:
        raise ValueError(
            f"IG baseline reference must have shape (n_samples, n_timepoints, n_features), "
            f"got {reference.shape}."
        )
    if name == "mean":
        return float(np.nanmean(reference))
    if name == "median":
        return float(np.nanmedian(reference))
    std = float(np.nanstd(reference))
    rng = np.random.default_rng(seed)
    noise = rng.normal(0.0, std, size=(1,) + reference.shape[1:])
    return torch.as_tensor(noise, dtype=torch.float32)


def integrated_gradients(
    model: torch.nn.Module,
    inputs: torch.Tensor,
    target: torch.Tensor | int,
    baseline: str | float | torch.Tensor = "zero",
    n_steps: int = 50,
    internal_batch_size: int | None = None,
    method: str = "gausslegendre",
    multiply_by_inputs: bool = False,
) -> torch.Tensor:
    """Integrated Gradients of the target class, not multiplied by the input (seed 000, §2.3).

    Parameters
    ----------
    model : torch.nn.Module
        Classifier returning logits ``(batch, n_classes)``; put it in ``eval()`` mode first.
    inputs : torch.Tensor of shape (batch, n_timepoints, n_features)
        Samples to explain (on the model's device).
    target : torch.Tensor of shape (batch,) or int
        Class whose logit is explained -- the *true* class of each sample in xaibids.
    baseline : "zero", float or torch.Tensor, default="zero"
        ``"zero"`` for the blank baseline, or a value from :func:`make_baseline`.
    n_steps : int, default=50
        Number of points approximating the path integral.
    internal_batch_size : int, optional
        Passed to Captum to bound memory (``batch * n_steps`` rows at once when None).
    method : str, default="gausslegendre"
        Integration rule of the path integral, one of :data:`IG_RULES` (Captum's ``method``):
        Gauss-Legendre quadrature or a Riemann sum (left, right, middle or trapezoid points).
        Note: Captum 0.9's ``riemann_trapezoid`` weights sum to ``(n_steps - 1) / n_steps``, so
        even for a linear model its maps are scaled by that factor (checked in the tests);
        ``riemann_middle`` and ``gausslegendre`` are exact there.
    multiply_by_inputs : bool, default=False
        False (seed 000, §2.3): the path-averaged gradient. True: the original IG of
        Sundararajan et al. (2017), ``(x - baseline) *`` path-averaged gradient, which satisfies
        completeness and is comparable with Input x Gradient and DeepLIFT (seed 001).

    Returns
    -------
    torch.Tensor of shape (batch, n_timepoints, n_features)
        Path-averaged gradients (detached), same device as ``inputs``.

    Notes
    -----
    On CUDA, cuDNN cannot run the backward pass of an LSTM in ``eval()`` mode; call this
    inside ``torch.backends.cudnn.flags(enabled=False)`` there (the ensemble does).
    """
    if not isinstance(n_steps, int) or isinstance(n_steps, bool) or n_steps < 1:
        raise ValueError(f"IG n_steps must be a positive integer, got {n_steps!r}.")
    if method not in IG_RULES:
        raise ValueError(f"IG method (integration rule) must be one of {', '.join(IG_RULES)}, got {method!r}.")
    if not isinstance(multiply_by_inputs, bool):
        raise ValueError(f"IG multiply_by_inputs must be True or False, got {multiply_by_inputs!r}.")
    if inputs.ndim != 3:
        raise ValueError(
            f"IG inputs must have shape (batch, n_timepoints, n_features), got {tuple(inputs.shape)}."
        )
    if isinstance(baseline, str):
        if baseline != "zero":
            raise ValueError(
                f"IG baseline {baseline!r} needs reference data; build it with "
                "make_baseline(name, reference) and pass the result."
            )
        baseline = 0.0
    if isinstance(baseline, torch.Tensor):
        baseline = baseline.to(device=inputs.device, dtype=inputs.dtype)
    ig = IntegratedGradients(model, multiply_by_inputs=multiply_by_inputs)
    attributions = ig.attribute(
        inputs,
        baselines=baseline,
        target=target,
        n_steps=n_steps,
        method=method,
        internal_batch_size=internal_batch_size,
    )
    return attributions.detach()


#: Step counts tried by :func:`converged_ig_steps`, smallest first.
STEP_LADDER = (4, 8, 16, 32, 64, 128, 256)


def completeness_terms(
    model: torch.nn.Module,
    inputs: torch.Tensor,
    target: torch.Tensor | int,
    baseline: str | float | torch.Tensor = "zero",
    n_steps: int = 50,
    method: str = "gausslegendre",
    internal_batch_size: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample completeness gap of IG with ``n_steps`` points, and the output change it splits.

    Completeness (Sundararajan et al. 2017, §3 "Axiom: Completeness"; seed 000 §2.3 computes
    the same path integral): the attributions of IG multiplied by ``inputs - baseline`` sum to
    ``F(x) - F(baseline)``, the target logit's change along the path, when the integral is
    exact. This is the one implementation behind :func:`completeness_error` and the
    completeness metrics of :func:`xaibids.attribution.reliability.faithfulness`.

    Returns
    -------
    delta : torch.Tensor of shape (batch,)
        Captum's convergence delta ``Σ IG(x) - (F(x) - F(baseline))`` of the input-multiplied IG
        with the given integration rule and step count.
    change : torch.Tensor of shape (batch,)
        ``F(x) - F(baseline)``, the target logit's change.
    """
    if isinstance(baseline, str):
        if baseline != "zero":
            raise ValueError(f"IG baseline {baseline!r} needs reference data (make_baseline).")
        baseline = 0.0
    if isinstance(baseline, torch.Tensor):
        baseline = baseline.to(device=inputs.device, dtype=inputs.dtype)
    ig = IntegratedGradients(model, multiply_by_inputs=True)
    _, delta = ig.attribute(inputs, baselines=baseline, target=target, n_steps=n_steps,
                            method=method, internal_batch_size=internal_batch_size,
                            return_convergence_delta=True)
    with torch.no_grad():
        reference = torch.zeros_like(inputs) + baseline
        index = torch.arange(len(inputs), device=inputs.device)
        # an int, a (batch,) tensor or a (batch, 1) column: one class index per sample
        target = torch.as_tensor(target, device=inputs.device).long().reshape(-1).expand(len(inputs))
        change = model(inputs)[index, target] - model(reference)[index, target]
    return delta.detach(), change


def completeness_error(
    model: torch.nn.Module,
    inputs: torch.Tensor,
    target: torch.Tensor | int,
    baseline: str | float | torch.Tensor = "zero",
    n_steps: int = 50,
    method: str = "gausslegendre",
    internal_batch_size: int | None = None,
) -> float:
    """Relative completeness error of IG with ``n_steps`` points on a batch of samples.

    From the per-sample gaps of :func:`completeness_terms` (Captum's convergence delta), this
    returns ``sum |delta| / sum |F(x) - F(baseline)|`` over the batch, so samples whose output
    barely changes cannot dominate. The quadrature is the same whether or not the maps are
    multiplied by the input, so the error measures the convergence of seed 000's non-multiplied
    maps too.
    """
    delta, change = completeness_terms(model, inputs, target, baseline, n_steps, method, internal_batch_size)
    total = float(change.abs().sum())
    return float(delta.abs().sum()) / total if total > 0 else 0.0


def converged_ig_steps(
    model: torch.nn.Module,
    inputs: torch.Tensor,
    target: torch.Tensor | int,
    baselines=("zero",),
    tolerance: float = 0.01,
    method: str = "gausslegendre",
    ladder: tuple[int, ...] = STEP_LADDER,
    internal_batch_size: int | None = None,
) -> tuple[int, list[dict]]:
    """The smallest IG step count whose completeness error is within ``tolerance``.

    Tries the step counts of ``ladder`` in order on ``inputs`` (a calibration batch) and returns
    the first whose :func:`completeness_error` is at most ``tolerance`` for every baseline. When
    none is (models with many ReLU/max-pooling kinks reach a floor of a few tenths of a percent),
    it returns the count with the smallest error, not necessarily the largest; the caller warns. Gauss-Legendre
    quadrature (Captum's default rule) converges much faster than the Riemann sums for the
    smooth paths of these models, which is where the saving over a fixed 50-step Riemann sum
    comes from.

    Returns
    -------
    n_steps : int
    trials : list of dict
        ``{"n_steps", "baseline" (index), "completeness_error"}`` for every step count tried.
    """
    if not 0 < tolerance < 1:
        raise ValueError(f"IG completeness tolerance must be in (0, 1), got {tolerance!r}.")
    if not ladder or any(not isinstance(s, int) or s < 1 for s in ladder):
        raise ValueError(f"IG step ladder must hold positive integers, got {ladder!r}.")
    trials, worst = [], {}
    for n_steps in ladder:
        errors = [completeness_error(model, inputs, target, base, n_steps, method,
                                     internal_batch_size) for base in baselines]
        trials += [{"n_steps": n_steps, "baseline": i, "completeness_error": e}
                   for i, e in enumerate(errors)]
        worst[n_steps] = max(errors)
        if worst[n_steps] <= tolerance:
            return n_steps, trials
    return min(worst, key=worst.get), trials
