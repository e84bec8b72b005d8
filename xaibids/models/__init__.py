"""Deep classifiers for ``(batch, time, features)`` samples, built by name (``region-cnn`` is
the default of the group level).

``region-cnn``
    Temporal filters shared by all regions, log-power pooling per region and a linear
    classifier (after Schirrmeister et al. 2017's ShallowConvNet, without mixing regions).
``lstm-attn``
    Bidirectional LSTM with additive temporal attention (Lewis et al. 2023, §2.2).
``stdnn``
    Two-layer 1D convolutional network (Strock et al. 2025, Methods).
``linear``
    Softmax regression on the flattened input (Gotsopoulos et al. 2018, §2.7).
``connectome``
    The correlation matrix of the regions' timecourses (Fisher z), computed inside the network,
    and a ridge-penalized linear classifier on its edges: nilearn's connectome and a logistic
    regression as one network, so attributions reach the timecourses through the correlation.
``cnn3d``
    Three-block 3D CNN for volumes (Kan et al. 2020, §3.2); a volume on a grid ``(X, Y, Z)`` is one
    sample of shape ``(1, X*Y*Z)`` (``n_timepoints = 1``, C-order flattening) and the model
    needs the option ``grid=(X, Y, Z)``.

All models return logits of shape ``(batch, n_classes)``.
"""

from __future__ import annotations

import inspect

import torch

from xaibids.models.cnn3d import CNN3D
from xaibids.models.connectome import Connectome
from xaibids.models.linear import LinearSoftmax
from xaibids.models.lstm_attn import LSTMAttention
from xaibids.models.region_cnn import RegionCNN
from xaibids.models.stdnn import STDNN

MODEL_NAMES = ("region-cnn", "lstm-attn", "stdnn", "linear", "connectome", "cnn3d")

_CLASSES = {"region-cnn": RegionCNN, "lstm-attn": LSTMAttention, "stdnn": STDNN,
            "linear": LinearSoftmax, "connectome": Connectome, "cnn3d": CNN3D}

__all__ = ["MODEL_NAMES", "build_model", "model_options", "CNN3D", "Connectome", "LSTMAttention",
           "RegionCNN", "STDNN", "LinearSoftmax"]


def model_options(name: str, **kw) -> dict:
    """The architecture options a model of ``name`` is built with: its defaults updated by ``kw``
    (for the methods text, which states the values actually used)."""
    parameters = inspect.signature(_CLASSES[name].__init__).parameters
    return {key: p.default for key, p in parameters.items()
            if p.default is not inspect.Parameter.empty} | dict(kw)


def build_model(name: str, n_features: int, n_timepoints: int, n_classes: int, **kw) -> torch.nn.Module:
    """Build a classifier by name.

    Parameters
    ----------
    name : {"region-cnn", "lstm-attn", "stdnn", "linear", "connectome", "cnn3d"}
        Model architecture (see :data:`MODEL_NAMES`).
    n_features : int
        Features (regions, components) per time step.
    n_timepoints : int
        Time steps per sample.
    n_classes : int
        Number of classes (at least 2).
    **kw
        Architecture options of the chosen model, e.g. ``hidden_size`` for ``lstm-attn``,
        ``channels`` for ``stdnn`` or the required ``grid=(X, Y, Z)`` for ``cnn3d`` (see
        :class:`LSTMAttention`, :class:`STDNN`, :class:`CNN3D`).

    Returns
    -------
    torch.nn.Module
        A freshly initialized model (use :func:`torch.manual_seed` before calling for a
        reproducible initialization) mapping ``(batch, n_timepoints, n_features)`` to logits
        ``(batch, n_classes)``.
    """
    if name not in _CLASSES:
        raise ValueError(f"Unknown model {name!r}; choose one of {', '.join(MODEL_NAMES)}.")
    for arg, value, minimum in (("n_features", n_features, 1), ("n_timepoints", n_timepoints, 1),
                                ("n_classes", n_classes, 2)):
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ValueError(f"build_model needs {arg} to be an integer >= {minimum}, got {value!r}.")
    cls = _CLASSES[name]
    accepted = [p for p in inspect.signature(cls.__init__).parameters
                if p not in ("self", "n_features", "n_timepoints", "n_classes")]
    unknown = sorted(set(kw) - set(accepted))
    if unknown:
        raise ValueError(
            f"Model {name!r} has no option(s) {', '.join(unknown)}; "
            f"accepted options are: {', '.join(accepted) or 'none'}."
        )
    return cls(n_features=n_features, n_timepoints=n_timepoints, n_classes=n_classes, **kw)
