"""Integrated Gradients through Captum, by default without input multiplication (Lewis et al. 2023, §2.3).

Lewis et al. 2023, §2.3: IG integrates the gradient of the *correct* class along a straight path from a
baseline to the input, with a zero-valued "blank" baseline, and -- unlike the original
formulation -- the integrated gradients are *not* multiplied element-wise by the input, "to ensure
no information from the input is enforced upon the gradient maps". Captum's
``IntegratedGradients(model, multiply_by_inputs=False)`` computes exactly this (its default
Gauss-Legendre rule approximates the path integral with ``n_steps`` points).

Strock et al. 2025 (Methods, "Integrated Gradients") additionally compares mean, median and random
baselines; :func:`make_baseline` builds those from reference (training) data.

Converging the path integral cheaply (issue #10): :func:`converged_ig_steps` chooses one
Gauss-Legendre count from a calibration batch; :func:`adaptive_integrated_gradients` instead
subdivides the path per sample until the completeness error of the batch is within a tolerance
(``n_steps="adaptive"``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from captum.attr import IntegratedGradients

BASELINES = ("zero", "mean", "median", "random")

#: Integration rules of Captum's ``IntegratedGradients.attribute(method=...)``.
IG_RULES = ("gausslegendre", "riemann_trapezoid", "riemann_left", "riemann_right", "riemann_middle")

#: ``n_steps`` value that subdivides the path per sample (:func:`adaptive_integrated_gradients`).
ADAPTIVE = "adaptive"


def make_baseline(
    name: str, reference: np.ndarray | None = None, seed: int = 0
) -> float | torch.Tensor:
    """Build an IG baseline by name (Lewis et al. 2023 §2.3; Strock et al. 2025 Methods).

    Parameters
    ----------
    name : {"zero", "mean", "median", "random"}
        ``zero``: the all-zero "blank" input (Lewis et al. 2023). ``mean`` / ``median``: one scalar, the
        mean / median of the reference signal across features, time points and samples
        (Strock et al. 2025, baselines (1)-(2)). ``random``: one ``(time, features)`` draw from a normal
        distribution centred on zero with the variance of the reference (Strock et al. 2025, (4)).
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
    completeness_tolerance: float = 0.01,
) -> torch.Tensor:
    """Integrated Gradients of the target class, not multiplied by the input (Lewis et al. 2023, §2.3).

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
    n_steps : int or "adaptive", default=50
        Number of points approximating the path integral, or ``"adaptive"``: Gauss-Legendre
        panels subdivided per sample until the batch's completeness error is within
        ``completeness_tolerance`` (:func:`adaptive_integrated_gradients`).
    internal_batch_size : int, optional
        Passed to Captum to bound memory (``batch * n_steps`` rows at once when None).
    method : str, default="gausslegendre"
        Integration rule of the path integral, one of :data:`IG_RULES` (Captum's ``method``):
        Gauss-Legendre quadrature or a Riemann sum (left, right, middle or trapezoid points).
        Note: Captum 0.9's ``riemann_trapezoid`` weights sum to ``(n_steps - 1) / n_steps``, so
        even for a linear model its maps are scaled by that factor (checked in the tests);
        ``riemann_middle`` and ``gausslegendre`` are exact there.
    multiply_by_inputs : bool, default=False
        False (Lewis et al. 2023, §2.3): the path-averaged gradient. True: the original IG of
        Sundararajan et al. (2017), ``(x - baseline) *`` path-averaged gradient, which satisfies
        completeness and is comparable with Input x Gradient and DeepLIFT (Strock et al. 2025).
    completeness_tolerance : float, default=0.01
        Tolerance of ``n_steps="adaptive"``; unused with a fixed count.

    Returns
    -------
    torch.Tensor of shape (batch, n_timepoints, n_features)
        Path-averaged gradients (detached), same device as ``inputs``.

    Notes
    -----
    On CUDA, cuDNN cannot run the backward pass of an LSTM in ``eval()`` mode; call this
    inside ``torch.backends.cudnn.flags(enabled=False)`` there (the ensemble does).
    """
    if method not in IG_RULES:
        raise ValueError(f"IG method (integration rule) must be one of {', '.join(IG_RULES)}, got {method!r}.")
    if not isinstance(multiply_by_inputs, bool):
        raise ValueError(f"IG multiply_by_inputs must be True or False, got {multiply_by_inputs!r}.")
    if inputs.ndim != 3:
        raise ValueError(
            f"IG inputs must have shape (batch, n_timepoints, n_features), got {tuple(inputs.shape)}."
        )
    if n_steps == ADAPTIVE:
        if method != "gausslegendre":
            raise ValueError(f"Adaptive IG integrates with Gauss-Legendre panels; it cannot use "
                             f"the {method!r} rule.")
        return adaptive_integrated_gradients(
            model, inputs, target, baseline, tolerance=completeness_tolerance,
            multiply_by_inputs=multiply_by_inputs, internal_batch_size=internal_batch_size,
        ).attributions
    if not isinstance(n_steps, int) or isinstance(n_steps, bool) or n_steps < 1:
        raise ValueError(f"IG n_steps must be a positive integer or {ADAPTIVE!r}, got {n_steps!r}.")
    baseline = baseline_value(baseline, inputs)
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
    n_steps: int | str = 50,
    method: str = "gausslegendre",
    internal_batch_size: int | None = None,
    completeness_tolerance: float = 0.01,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample completeness gap of IG with ``n_steps`` points, and the output change it splits.

    Completeness (Sundararajan et al. 2017, §3 "Axiom: Completeness"; Lewis et al. 2023 §2.3 computes
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

    With ``n_steps="adaptive"`` both come from :func:`adaptive_integrated_gradients` with
    ``completeness_tolerance``.
    """
    if n_steps == ADAPTIVE:
        result = adaptive_integrated_gradients(model, inputs, target, baseline,
                                               tolerance=completeness_tolerance,
                                               internal_batch_size=internal_batch_size)
        return result.delta, result.change
    baseline = baseline_value(baseline, inputs)
    ig = IntegratedGradients(model, multiply_by_inputs=True)
    _, delta = ig.attribute(inputs, baselines=baseline, target=target, n_steps=n_steps,
                            method=method, internal_batch_size=internal_batch_size,
                            return_convergence_delta=True)
    with torch.no_grad():
        reference = torch.zeros_like(inputs) + baseline
        index = torch.arange(len(inputs), device=inputs.device)
        target = _target_vector(target, len(inputs), inputs.device)
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
    multiplied by the input, so the error measures the convergence of Lewis et al. 2023's non-multiplied
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


#: Gauss-Legendre points per panel of :func:`adaptive_integrated_gradients`.
PANEL_POINTS = 2
#: Equal panels every sample starts with.
INITIAL_PANELS = 4
#: Each refinement round splits the worst panels until the error left in the others would be
#: at most this share of the tolerance, so that a round usually suffices to finish.
REFINE_AIM = 0.8


@dataclass
class AdaptiveIG:
    """Result of :func:`adaptive_integrated_gradients`.

    Attributes
    ----------
    attributions : torch.Tensor, shaped like the inputs
        The IG maps (path-averaged gradients, or multiplied by ``inputs - baseline``).
    points : torch.Tensor of shape (batch,)
        Gradient evaluations spent per sample, including those of panels later split.
    forward_passes : torch.Tensor of shape (batch,)
        Forward-only evaluations per sample (the path's end points and panel boundaries).
    delta : torch.Tensor of shape (batch,)
        Completeness gap ``Σ IG(x)·(x - baseline) - (F(x) - F(baseline))`` of the final maps.
    change : torch.Tensor of shape (batch,)
        ``F(x) - F(baseline)``, the target logit's change.
    converged : bool
        Whether ``Σ|delta| <= tolerance · Σ|change|``; False only when ``max_points`` stopped it.
    """

    attributions: torch.Tensor
    points: torch.Tensor
    forward_passes: torch.Tensor
    delta: torch.Tensor
    change: torch.Tensor
    converged: bool

    @property
    def completeness_error(self) -> float:
        """``Σ|delta| / Σ|change|`` over the batch, as :func:`completeness_error` defines it."""
        total = float(self.change.abs().sum())
        return float(self.delta.abs().sum()) / total if total > 0 else 0.0


def adaptive_integrated_gradients(
    model: torch.nn.Module,
    inputs: torch.Tensor,
    target: torch.Tensor | int,
    baseline: str | float | torch.Tensor = "zero",
    tolerance: float = 0.01,
    panel_points: int = PANEL_POINTS,
    initial_panels: int = INITIAL_PANELS,
    max_points: int = 256,
    multiply_by_inputs: bool = False,
    internal_batch_size: int | None = None,
) -> AdaptiveIG:
    """IG whose path is subdivided per sample until completeness holds within ``tolerance``.

    IG is the path integral ``∫_0^1 ∇F(γ(α)) dα`` along ``γ(α) = b + α (x - b)``
    (Sundararajan et al. 2017, §3; Lewis et al. 2023 §2.3). For any panel ``[a, c]`` of the path, the
    fundamental theorem of calculus gives the exact value of its share of the completeness sum,
    ``∫_a^c ∇F(γ(α))·(x - b) dα = F(γ(c)) - F(γ(a))``, from two forward passes. So the
    quadrature error of every panel is *measured*, not estimated, and points can go where the
    integrand needs them. Each sample's path starts as ``initial_panels`` equal panels of
    ``panel_points`` Gauss-Legendre points. While the batch's completeness error
    ``Σ_samples |Σ_panels error| / Σ |F(x) - F(b)|`` (:func:`completeness_error`'s measure)
    exceeds ``tolerance``, the panels with the largest absolute error, over all samples, are
    halved; each round splits as many as needed for the error left in the others to be at most
    :data:`REFINE_AIM` × the tolerance. A panel is halved only while its sample stays within
    ``max_points`` gradient evaluations.

    Each panel is one call of Captum's ``IntegratedGradients`` from ``γ(a)`` to ``γ(c)`` (all of
    a round's panels in one call): its Gauss-Legendre average gradient over the panel, times the
    panel's length, is the panel's share of the map. The subdivision itself is written here;
    Captum has no adaptive rule. On the LSTM of Lewis et al. 2023's boxes this reaches 1 % with fewer than
    half the points of one Gauss-Legendre rule for the whole batch (``docs/benchmarks.md``).

    Parameters
    ----------
    model, inputs, target, baseline, multiply_by_inputs, internal_batch_size
        As in :func:`integrated_gradients`.
    tolerance : float, default=0.01
        Completeness error the batch must reach, in (0, 1).
    panel_points : int, default=2
        Gauss-Legendre points per panel.
    initial_panels : int, default=4
        Equal panels every path starts with.
    max_points : int, default=256
        Most gradient evaluations spent on one sample.

    Returns
    -------
    AdaptiveIG
        The maps and, per sample, the points spent, the forward passes and the completeness
        terms; ``converged`` False (with the best maps reached) when ``max_points`` stopped it.

    Notes
    -----
    Every panel's map share is kept until the end, since any panel may still be split: memory
    grows with the panels (at most ``max_points / panel_points`` per sample) times the input size.
    """
    if not 0 < tolerance < 1:
        raise ValueError(f"IG completeness tolerance must be in (0, 1), got {tolerance!r}.")
    for name, value in (("panel_points", panel_points), ("initial_panels", initial_panels),
                        ("max_points", max_points)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"Adaptive IG {name} must be a positive integer, got {value!r}.")
    if max_points < panel_points * initial_panels:
        raise ValueError(f"Adaptive IG max_points ({max_points}) is below the first panels' "
                         f"{panel_points * initial_panels} points.")
    if inputs.ndim < 2:
        raise ValueError(f"IG inputs need a batch dimension, got shape {tuple(inputs.shape)}.")
    n, device = len(inputs), inputs.device
    start = torch.zeros_like(inputs) + baseline_value(baseline, inputs)
    span = inputs - start
    target = _target_vector(target, n, device)

    def on_path(alpha: torch.Tensor, owner: torch.Tensor) -> torch.Tensor:
        return start[owner] + alpha.reshape((-1,) + (1,) * (inputs.ndim - 1)) * span[owner]

    def logit(alpha: torch.Tensor, owner: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return model(on_path(alpha, owner))[torch.arange(len(owner), device=device), target[owner]]

    # the first panels, [j / P, (j + 1) / P] for every sample, and F at their boundaries
    grid = torch.linspace(0, 1, initial_panels + 1, device=device)
    f_grid = logit(grid.repeat(n), torch.arange(n, device=device).repeat_interleave(len(grid)))
    f_grid = f_grid.reshape(n, len(grid))
    change = f_grid[:, -1] - f_grid[:, 0]
    forward_passes = torch.full((n,), initial_panels + 1, dtype=torch.long, device=device)
    new = {"owner": torch.arange(n, device=device).repeat_interleave(initial_panels),
           "lower": grid[:-1].repeat(n), "upper": grid[1:].repeat(n),
           "f_lower": f_grid[:, :-1].reshape(-1), "f_upper": f_grid[:, 1:].reshape(-1)}
    panels = {key: value[:0] for key, value in new.items()}
    panels["error"] = change[:0]
    shares = inputs.new_empty((0,) + tuple(inputs.shape[1:]))
    points = torch.zeros(n, dtype=torch.long, device=device)
    allowed = tolerance * float(change.abs().sum())
    ig = IntegratedGradients(model, multiply_by_inputs=False)
    while True:
        # one Captum call for every new panel: its average gradient times its length
        owner = new["owner"]
        average = ig.attribute(on_path(new["upper"], owner), baselines=on_path(new["lower"], owner),
                               target=target[owner], n_steps=panel_points, method="gausslegendre",
                               internal_batch_size=internal_batch_size).detach()
        share = average * (new["upper"] - new["lower"]).reshape((-1,) + (1,) * (inputs.ndim - 1))
        new["error"] = (share * span[owner]).flatten(1).sum(1) - (new["f_upper"] - new["f_lower"])
        points += torch.bincount(owner, minlength=n) * panel_points
        panels = {key: torch.cat([panels[key], new[key]]) for key in panels}
        shares = torch.cat([shares, share])
        delta = torch.zeros(n, dtype=change.dtype, device=device).index_add_(
            0, panels["owner"], panels["error"])
        excess = float(delta.abs().sum()) - allowed
        # halving a panel costs 2 x panel_points evaluations; a sample may not pass max_points
        candidates = _within_budget(torch.argsort(panels["error"].abs(), descending=True),
                                    panels["owner"], (max_points - points) // (2 * panel_points))
        if excess <= 0 or not len(candidates):
            break
        # halve the worst panels until the error left in the others is REFINE_AIM x tolerance
        reach = torch.cumsum(panels["error"].abs()[candidates], 0) >= excess + (1 - REFINE_AIM) * allowed
        count = int(reach.int().argmax()) + 1 if bool(reach.any()) else len(candidates)
        chosen = torch.zeros(len(panels["owner"]), dtype=torch.bool, device=device)
        chosen[candidates[:count]] = True
        split = {key: value[chosen] for key, value in panels.items()}
        middle = (split["lower"] + split["upper"]) / 2
        f_middle = logit(middle, split["owner"])
        forward_passes += torch.bincount(split["owner"], minlength=n)
        new = {"owner": split["owner"].repeat(2),
               "lower": torch.cat([split["lower"], middle]),
               "upper": torch.cat([middle, split["upper"]]),
               "f_lower": torch.cat([split["f_lower"], f_middle]),
               "f_upper": torch.cat([f_middle, split["f_upper"]])}
        panels = {key: value[~chosen] for key, value in panels.items()}
        shares = shares[~chosen]
    attributions = torch.zeros_like(inputs).index_add_(0, panels["owner"], shares)
    if multiply_by_inputs:
        attributions = attributions * span
    return AdaptiveIG(attributions=attributions, points=points, forward_passes=forward_passes,
                      delta=delta, change=change, converged=excess <= 0)


def _within_budget(order: torch.Tensor, owner: torch.Tensor, budget: torch.Tensor) -> torch.Tensor:
    """The panels of ``order`` (indices, worst first) that their sample can still afford: at most
    ``budget[sample]`` per sample, the worst ones, in the same order."""
    owners = owner[order]
    grouped, position = torch.sort(owners, stable=True)  # by sample, worst first within each
    rank = torch.empty_like(position)
    rank[position] = torch.arange(len(owners), device=owners.device) - torch.searchsorted(grouped, grouped)
    return order[rank < budget[owners]]


def baseline_value(baseline, inputs: torch.Tensor) -> float | torch.Tensor:
    """A baseline as Captum takes it: ``"zero"`` → 0.0, a number stays a float, a tensor moves to
    the inputs' device and dtype; another name needs :func:`make_baseline` first."""
    if isinstance(baseline, str):
        if baseline != "zero":
            raise ValueError(
                f"Baseline {baseline!r} needs reference data; build it with "
                "xaibids.attribution.make_baseline(name, reference) and pass the result."
            )
        return 0.0
    if isinstance(baseline, torch.Tensor):
        return baseline.to(device=inputs.device, dtype=inputs.dtype)
    return float(baseline)


def _target_vector(target, n: int, device) -> torch.Tensor:
    """An int, a ``(batch,)`` tensor or a ``(batch, 1)`` column as one class index per sample."""
    return torch.as_tensor(target, device=device).long().reshape(-1).expand(n)
