"""Softmax regression on the flattened input (Gotsopoulos et al. 2018, §2.7).

Gotsopoulos et al. 2018's classifier "had no hidden layers" and "utilized softmax activation function in the
output layer", trained with cross-entropy. Here it is a single linear layer on the flattened
``(time, features)`` input returning logits; the softmax lives in the cross-entropy loss (and in
the probabilities the ensemble reports).
"""

from __future__ import annotations

import torch
from torch import nn


class LinearSoftmax(nn.Module):
    """Linear (softmax-regression) classifier for ``(batch, time, features)`` input.

    Parameters
    ----------
    n_features : int
        Number of features per time step.
    n_timepoints : int
        Number of time steps; the input must have exactly this length (the weights are per
        time step and feature).
    n_classes : int
        Number of output classes (logits).

    Notes
    -----
    The gradient of a logit with respect to the input is that class's weight map, so
    Integrated Gradients without input multiplication returns the weights themselves
    (the "W" importance of Gotsopoulos et al. 2018, §2.8).
    """

    def __init__(self, n_features: int, n_timepoints: int, n_classes: int) -> None:
        super().__init__()
        self.n_features = n_features
        self.n_timepoints = n_timepoints
        self.n_classes = n_classes
        self.linear = nn.Linear(n_features * n_timepoints, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return class logits for ``x`` of shape ``(batch, n_timepoints, n_features)``."""
        if x.shape[1:] != (self.n_timepoints, self.n_features):
            raise ValueError(
                f"linear model expects input of shape (batch, {self.n_timepoints}, "
                f"{self.n_features}), got {tuple(x.shape)}."
            )
        return self.linear(x.flatten(1))
