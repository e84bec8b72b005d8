"""Deep classifiers for ``(batch, time, features)`` timeseries, built by name.

``lstm-attn``
    Bidirectional LSTM with additive temporal attention (seed 000, §2.2).
``stdnn``
    Two-layer 1D convolutional network (seed 001, Methods).
``linear``
    Softmax regression on the flattened input (seed 004, §2.7).

All models return logits of shape ``(batch, n_classes)``.
"""

from __future__ import annotations

import inspect

import torch

from xaibids.models.linear import LinearSoftmax
from xaibids.models.lstm_attn import LSTMAttention
from xaibids.models.stdnn import STDNN

MODEL_NAMES = ("lstm-attn", "stdnn", "linear")

_CLASSES = {"lstm-attn": LSTMAttention, "stdnn": STDNN, "linear": LinearSoftmax}

__all__ = ["MODEL_NAMES", "build_model", "LSTMAttention", "STDNN", "LinearSoftmax"]


def build_model(name: str, n_features: int, n_timepoints: int, n_classes: int, **kw) -> torch.nn.Module:
    """Build a classifier by name.

    Parameters
    ----------
    name : {"lstm-attn", "stdnn", "linear"}
        Model architecture (see :data:`MODEL_NAMES`).
    n_features : int
        Features (regions, components) per time step.
    n_timepoints : int
        Time steps per sample.
    n_classes : int
        Number of classes (at least 2).
    **kw
        Architecture options of the chosen model, e.g. ``hidden_size`` for ``lstm-attn`` or
        ``channels`` for ``stdnn`` (see :class:`LSTMAttention`, :class:`STDNN`).

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
