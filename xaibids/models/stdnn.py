"""Spatiotemporal deep neural network (stDNN), a two-layer 1D CNN (Strock et al. 2025, Methods).

Strock et al. 2025 ("stDNN classifier model for the simulated fMRI datasets"): a 1D convolution over time
that integrates all regions by summing over input channels, ReLU and average pooling; a second 1D
convolution and ReLU; adaptive average pooling that reduces each channel to a single time step;
flattening and a linear classification layer. For ABIDE the seed uses max pooling and dropout,
available here through ``pool="max"`` and ``dropout``.
"""

from __future__ import annotations

import torch
from torch import nn


class STDNN(nn.Module):
    """Two-block 1D CNN over time for ``(batch, time, features)`` input (Strock et al. 2025, Methods).

    Parameters
    ----------
    n_features : int
        Number of input features (regions); they are the convolution's input channels.
    n_timepoints : int
        Number of time steps. Any length works (same-padding and adaptive pooling); the value
        is kept for a uniform :func:`xaibids.models.build_model` interface.
    n_classes : int
        Number of output classes (logits).
    channels : tuple of int, default=(32, 32)
        Output channels of the first and second convolution.
    kernel_size : int, default=5
        Temporal kernel width of both convolutions (zero "same" padding, odd sizes keep the
        length exactly).
    pool : {"avg", "max"}, default="avg"
        Pooling after the first block: average for the simulated data, max for ABIDE (Strock et al. 2025).
    pool_size : int, default=2
        Width of that pooling window (skipped when the series is shorter than it).
    dropout : float, default=0.0
        Dropout before the linear classifier.
    """

    def __init__(
        self,
        n_features: int,
        n_timepoints: int,
        n_classes: int,
        channels: tuple[int, int] = (32, 32),
        kernel_size: int = 5,
        pool: str = "avg",
        pool_size: int = 2,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        channels = tuple(channels)
        if len(channels) != 2 or not all(isinstance(c, int) and c > 0 for c in channels):
            raise ValueError(f"stdnn option channels must be two positive integers, got {channels!r}.")
        if not isinstance(kernel_size, int) or kernel_size < 1:
            raise ValueError(f"stdnn option kernel_size must be a positive integer, got {kernel_size!r}.")
        if pool not in ("avg", "max"):
            raise ValueError(f"stdnn option pool must be 'avg' or 'max', got {pool!r}.")
        if not isinstance(pool_size, int) or pool_size < 1:
            raise ValueError(f"stdnn option pool_size must be a positive integer, got {pool_size!r}.")
        if not 0.0 <= float(dropout) < 1.0:
            raise ValueError(f"stdnn option dropout must be in [0, 1), got {dropout!r}.")
        self.n_features = n_features
        self.n_timepoints = n_timepoints
        self.n_classes = n_classes
        padding = kernel_size // 2
        pool_layer = nn.AvgPool1d if pool == "avg" else nn.MaxPool1d
        use_pool = pool_size > 1 and n_timepoints >= pool_size
        self.block1 = nn.Sequential(
            nn.Conv1d(n_features, channels[0], kernel_size, padding=padding),
            nn.ReLU(),
            pool_layer(pool_size) if use_pool else nn.Identity(),
        )
        self.block2 = nn.Sequential(
            nn.Conv1d(channels[0], channels[1], kernel_size, padding=padding),
            nn.ReLU(),
            nn.AdaptiveAvgPool1d(1),  # each channel reduced to a single time step
        )
        self.dropout = nn.Dropout(float(dropout))
        self.classifier = nn.Linear(channels[1], n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return class logits for ``x`` of shape ``(batch, time, features)``."""
        h = self.block1(x.transpose(1, 2))  # Conv1d wants (batch, channels=features, time)
        h = self.block2(h).flatten(1)
        return self.classifier(self.dropout(h))
