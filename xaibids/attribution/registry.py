"""Registry of attribution methods behind one call signature (the method papers (Lewis et al. 2023, Strock et al. 2025, Kan et al. 2020, Gotsopoulos et al. 2018)).

:data:`METHODS` maps a lowercase alphanumeric key (it becomes the BIDS ``desc-`` entity of the
maps) to an :class:`AttributionMethod`: the function, its parameters with their defaults, the
models it supports, a one-line description and BibTeX citation keys for the methods text.
:func:`attribute` is the only way the ensemble calls a method; :func:`resolve_params` gives the
full parameter set actually used (defaults filled in) for the provenance record.

Every method takes and returns the ensemble's layout ``(batch, n_timepoints, n_features)``; for
the volume model ``cnn3d`` (Kan et al. 2020) that is ``(batch, 1, X*Y*Z)``, and :attr:`models` says which
methods support it (Meaningful Perturbation, ``mp``, supports only it; the Gotsopoulos et al. 2018 linear-model
importances and the per-element output difference do not).

With several IG baselines (Strock et al. 2025, Fig 7) the IG maps are keyed ``igZero``, ``igMean``,
``igMedian``, ``igRandom`` (:func:`map_keys`); every other baseline-taking method uses the first
baseline.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from xaibids.attribution import methods as _m
from xaibids.attribution.ig import BASELINES, integrated_gradients
from xaibids.attribution.perturbation import meaningful_perturbation

ALL_MODELS = ("region-cnn", "lstm-attn", "stdnn", "linear", "connectome", "cnn3d")
#: The timeseries models (everything but the volume model ``cnn3d``).
SERIES_MODELS = ("region-cnn", "lstm-attn", "stdnn", "linear", "connectome")


@dataclass(frozen=True)
class AttributionMethod:
    """One registered attribution method.

    Attributes
    ----------
    key : str
        Lowercase alphanumeric name (the BIDS ``desc-`` value).
    function : callable
        ``function(model, inputs, target, baseline=..., **params) -> Tensor`` shaped like inputs.
    name : str
        Human-readable name for reports.
    description : str
        One sentence for the methods text.
    citations : tuple of str
        BibTeX keys (``boilerplate/references.bib``).
    defaults : dict
        Every parameter with its default (what :func:`resolve_params` fills in).
    models : tuple of str
        Model names of :data:`xaibids.models.MODEL_NAMES` the method supports.
    uses_baseline : bool
        Whether the method takes the (first) baseline.
    captum : str or None
        The Captum class doing the work, None where hand-written.
    """

    key: str
    function: Callable
    name: str
    description: str
    citations: tuple[str, ...]
    models: tuple[str, ...] = ALL_MODELS
    uses_baseline: bool = False
    captum: str | None = None
    defaults: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        sig = inspect.signature(self.function)
        params = {k: p.default for k, p in list(sig.parameters.items())[4:]}
        object.__setattr__(self, "defaults", params)


def _entry(key, function, name, description, citations, **kw) -> AttributionMethod:
    return AttributionMethod(key=key, function=function, name=name, description=description,
                             citations=tuple(citations), **kw)


_ENTRIES = [
    _entry("ig", integrated_gradients, "Integrated Gradients",
           "Gradient of the true class's logit integrated along the straight path from a baseline to "
           "the input, by default not multiplied by the input (Lewis et al. 2023).",
           ("sundararajan2017", "lewis2023"), uses_baseline=True,
           captum="IntegratedGradients"),
    _entry("saliency", _m.saliency, "Saliency",
           "Absolute gradient of the true class's logit with respect to the input.",
           ("simonyan2014deep",), captum="Saliency"),
    _entry("inputxgradient", _m.inputxgradient, "Input x Gradient",
           "Gradient of the true class's logit multiplied element-wise by the input.",
           ("shrikumar2016not",), captum="InputXGradient"),
    _entry("deeplift", _m.deeplift, "DeepLIFT",
           "Difference of the true class's logit from its value at the baseline, distributed over the "
           "inputs with the Rescale rule.", ("shrikumar2017learning",), uses_baseline=True,
           captum="DeepLift"),
    _entry("guidedbackprop", _m.guidedbackprop, "Guided Backpropagation",
           "Gradient in which ReLU layers pass back only positive gradients of positive activations.",
           ("springenberg2015striving",), captum="GuidedBackprop"),
    _entry("deconvolution", _m.deconvolution, "Deconvolution",
           "Backward pass in which ReLU layers rectify the gradient instead of gating it by the input.",
           ("zeiler2014visualizing",), captum="Deconvolution"),
    _entry("gradcam", _m.gradcam, "Grad-CAM",
           "Channels of the last convolutional layer weighted by their gradient averaged over "
           "positions, summed, rectified and upsampled to the input: linearly over time (the same "
           "value for all features) for 1D convolutions, trilinearly to the volume's grid for 3D "
           "convolutions.", ("selvaraju2017gradcam",), models=("stdnn", "cnn3d"),
           captum="LayerGradCam"),
    _entry("guidedgradcam", _m.guidedgradcam, "Guided Grad-CAM",
           "Guided Backpropagation multiplied element-wise by the upsampled Grad-CAM map.",
           ("selvaraju2017gradcam", "springenberg2015striving"), models=("stdnn", "cnn3d"),
           captum="LayerGradCam, GuidedBackprop"),
    _entry("occlusion", _m.occlusion, "Occlusion",
           "Drop of the true class's logit when a sliding patch (a time x feature window, or a cube "
           "of voxels for volumes) is replaced by the baseline.", ("zeiler2014visualizing",),
           uses_baseline=True, captum="Occlusion"),
    _entry("ablation", _m.ablation, "Feature ablation",
           "Drop of the true class's logit when a group of inputs (by default one region over all "
           "time points; for volumes an atlas region or a cubic block of voxels) is replaced by "
           "the baseline.", ("captum",), uses_baseline=True, captum="FeatureAblation"),
    _entry("lrp", _m.lrp, "Layer-wise relevance propagation",
           "The true class's logit redistributed layer by layer onto the inputs with the epsilon rule.",
           ("bach2015pixel",), models=("stdnn", "linear", "cnn3d"), captum="LRP"),
    _entry("shapleysampling", _m.shapleysampling, "Shapley value sampling",
           "Shapley values of input groups (by default regions) estimated from random orderings, absent "
           "groups set to the baseline.", ("castro2009polynomial", "strumbelj2010efficient"),
           uses_baseline=True, captum="ShapleyValueSampling"),
    _entry("gradientshap", _m.gradientshap, "GradientSHAP",
           "Expected gradients at random points between baseline and input, times the input's "
           "difference from the baseline.", ("lundberg2017unified",), uses_baseline=True,
           captum="GradientShap"),
    _entry("smoothgrad", _m.smoothgrad, "SmoothGrad",
           "Saliency averaged over copies of the input with added Gaussian noise.",
           ("smilkov2017smoothgrad",), captum="NoiseTunnel, Saliency"),
    _entry("weight", _m.weight, "Weights (W)",
           "Weights of the linear classifier for the true class.",
           ("pereira2009machine", "gotsopoulos2018"), models=("linear",)),
    _entry("weightxinput", _m.weightxinput, "Weights x input (WX)",
           "Weights of the linear classifier for the true class times the input.",
           ("polyn2005category", "gotsopoulos2018"), models=("linear",)),
    _entry("outputdiff", _m.outputdiff, "Output difference (OD)",
           "Drop of the true class's softmax probability when one input value is removed (set to zero).",
           ("gotsopoulos2018",), models=SERIES_MODELS, captum="FeatureAblation"),
    _entry("mp", meaningful_perturbation, "Meaningful Perturbation",
           "One minus the smallest smooth mask (optimized at low resolution with Adam, L1 and "
           "total-variation penalties and random jitter) whose replacement of the volume by its "
           "Gaussian blur lowers the true class's softmax probability.",
           ("fong2017interpretable", "kan2020"), models=("cnn3d",)),
]

#: Registered methods by key.
METHODS: dict[str, AttributionMethod] = {e.key: e for e in _ENTRIES}

#: BibTeX keys of Captum and of every method (for the boilerplate).
CITATIONS = tuple(dict.fromkeys(["captum"] + [c for e in _ENTRIES for c in e.citations]))


def model_name(model: torch.nn.Module) -> str | None:
    """The :data:`~xaibids.models.MODEL_NAMES` name of a model instance, None for other modules."""
    from xaibids.models import CNN3D, Connectome, LinearSoftmax, LSTMAttention, RegionCNN, STDNN

    for cls, name in ((RegionCNN, "region-cnn"), (LSTMAttention, "lstm-attn"), (STDNN, "stdnn"),
                      (LinearSoftmax, "linear"), (Connectome, "connectome"), (CNN3D, "cnn3d")):
        if isinstance(model, cls):
            return name
    return None


def check_supported(method: str, model: str | torch.nn.Module) -> None:
    """Raise a ValueError when ``method`` does not support ``model`` (a name or an instance).

    Modules that are none of xaibids' models are not checked by name; the method itself then
    raises if a layer it needs is missing (e.g. Grad-CAM without ``Conv1d``).
    """
    entry = _get(method)
    name = model if isinstance(model, str) else model_name(model)
    if name is not None and name not in entry.models:
        raise ValueError(
            f"Attribution method {method!r} ({entry.name}) does not support the {name!r} model; "
            f"it supports: {', '.join(entry.models)}."
        )


def _get(method: str) -> AttributionMethod:
    if method not in METHODS:
        raise ValueError(
            f"Unknown attribution method {method!r}; available: {', '.join(sorted(METHODS))}."
        )
    return METHODS[method]


def resolve_params(method: str, /, **params) -> dict:
    """All parameters of ``method`` with defaults filled in (the record of what was used).

    Raises a ValueError naming the accepted parameters when one is unknown.
    """
    entry = _get(method)
    unknown = sorted(set(params) - set(entry.defaults))
    if unknown:
        raise ValueError(
            f"Attribution method {method!r} has no parameter(s) {', '.join(unknown)}; "
            f"accepted: {', '.join(entry.defaults) or 'none'}."
        )
    out = dict(entry.defaults)
    out.update(params)
    return out


def map_keys(methods, baselines=("zero",)) -> list[tuple[str, str, str | None]]:
    """Keys of the maps an ensemble produces: ``(key, method, baseline name or None)``.

    With one baseline every method keeps its key. With several, ``ig`` gives one map per
    baseline keyed ``ig`` + capitalized baseline name (``igZero``, ``igMean``, ``igMedian``,
    ``igRandom``); other baseline-taking methods use the first baseline; methods without a
    baseline get ``None``.
    """
    baselines = (baselines,) if isinstance(baselines, str) else tuple(baselines)
    if not baselines:
        raise ValueError("map_keys needs at least one baseline.")
    out = []
    for method in methods:
        entry = _get(method)
        if not entry.uses_baseline:
            out.append((method, method, None))
        elif method == "ig" and len(baselines) > 1:
            out.extend((f"ig{b.capitalize()}", "ig", b) for b in baselines)
        else:
            out.append((method, method, baselines[0]))
    return out


def attribute(
    method: str,
    /,
    model: torch.nn.Module,
    inputs: torch.Tensor,
    target: torch.Tensor | int,
    baseline="zero",
    **params,
) -> torch.Tensor:
    """Compute attribution maps with a registered method.

    Parameters
    ----------
    method : str
        A key of :data:`METHODS`.
    model : torch.nn.Module
        Classifier returning logits, in ``eval()`` mode.
    inputs : torch.Tensor of shape (batch, n_timepoints, n_features)
        For a volume model (``cnn3d``): ``(batch, 1, X*Y*Z)``, flattened volumes.
    target : torch.Tensor of shape (batch,) or int
        Class whose output is explained.
    baseline : "zero", float or torch.Tensor, default="zero"
        Reference input of baseline-taking methods (:func:`~xaibids.attribution.make_baseline`);
        ignored by the others.
    **params
        Method parameters (see ``METHODS[method].defaults``), e.g. ``n_steps`` and ``method``
        (the integration rule) for ``ig``, ``window`` (timeseries) or ``patch`` (volumes) for
        ``occlusion``, ``feature_mask`` (a NIfTI label image for volumes) for ``ablation``.
        The first argument is positional-only so that IG's ``method`` parameter can be passed
        by name.

    Returns
    -------
    torch.Tensor of shape (batch, n_timepoints, n_features)
        Detached map on the inputs' device, in the inputs' layout (``(batch, 1, X*Y*Z)`` for
        volume models).
    """
    entry = _get(method)
    check_supported(method, model)
    if isinstance(baseline, str) and baseline not in BASELINES:
        raise ValueError(f"Unknown baseline {baseline!r}; choose one of {', '.join(BASELINES)}.")
    kwargs = resolve_params(method, **params)
    out = entry.function(model, inputs, target, baseline if entry.uses_baseline else 0.0, **kwargs)
    if tuple(out.shape) != tuple(inputs.shape):
        raise RuntimeError(f"{method} returned a map of shape {tuple(out.shape)} for inputs "
                           f"{tuple(inputs.shape)}.")
    return out.contiguous()
